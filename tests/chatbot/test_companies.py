"""`chatbot companies import` and the Postgres company search it feeds."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from openai import AsyncOpenAI
from sqlalchemy import text

from activities.company_search import PostgresCompanySearch
from activities.embeddings import LocalEmbedder, OpenAIEmbedder
from chatbot.companies import IMPORT_FORMAT, SAMPLE_FILE, embed_missing, import_companies
from loadtest.fakes import FakeOpenAIServer
from shared.db import migrate
from shared.db.engine import create_engine
from shared.tools import SearchCompaniesInput

GOOD = {"name": "Acme PCB", "description": "Circuit boards", "location": "Dayton, OH"}


def _write_jsonl(path: Path) -> None:
    lines = [
        json.dumps(GOOD),
        "{not json",
        json.dumps({"description": "no name"}),
        json.dumps(["a", "list"]),
        json.dumps({"name": "x" * 301}),
        "",
        json.dumps({"name": "Second Co", "capabilities": ["welding", "cutting"]}),
    ]
    path.write_text("\n".join(lines) + "\n")


async def _count(url: str) -> int:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        n = (await conn.execute(text("SELECT count(*) FROM companies"))).scalar_one()
    await engine.dispose()
    return int(n)


async def test_import_reports_bad_rows_by_line_and_keeps_every_good_one(
    migrated_database_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "companies.jsonl"
    _write_jsonl(source)
    engine = create_engine(migrated_database_url, pool_size=1, max_overflow=0)
    try:
        report = await import_companies(engine, source, embedder=None)
        assert report.imported == 2
        assert [n for n, _ in report.rejected] == [2, 3, 4, 5]
        reasons = dict(report.rejected)
        assert reasons[2].startswith("not valid JSON")
        assert reasons[3] == "name: Field required"
        assert reasons[4] == "not a JSON object"
        assert "at most 300 characters" in reasons[5]
        again = await import_companies(engine, source, embedder=None)  # idempotent
        assert again.imported == 2
        async with engine.connect() as conn:
            caps = await conn.execute(
                text("SELECT capabilities FROM companies WHERE name = 'Second Co'")
            )
            assert caps.scalar_one() == "welding, cutting"
    finally:
        await engine.dispose()
    assert await _count(migrated_database_url) == 2


async def test_cli_imports_csv_and_fails_clearly(
    migrated_database_url: str, tmp_path: Path
) -> None:
    csv_file = tmp_path / "c.csv"
    csv_file.write_text(
        "name,description,location,capabilities\n"
        'Alpha Ltd,Metal stamping,"Buffalo, NY",stamping\n'
        ",missing name,Ohio,\n"
        "Beta Inc,Powder coating,Pittsburgh,coating\n"
    )
    env = {**os.environ, "DATABASE_URL": migrated_database_url}

    async def chatbot(*args: str) -> tuple[int, str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatbot",
            "companies",
            "import",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode(), err.decode()

    code, out, err = await chatbot(str(csv_file))
    assert code == 0, err
    assert "imported 2 companies" in out
    assert "line 3: name: String should have at least 1 character" in out
    assert "full-text only" in out
    code, _, err = await chatbot(str(tmp_path / "missing.csv"))
    assert code == 2 and "is not a file" in err
    code, out, _ = await chatbot("--sample")
    assert code == 0 and "imported 30 companies" in out


async def test_postgres_search_by_keyword_with_location_filter(migrated_database_url: str) -> None:
    engine = create_engine(migrated_database_url, pool_size=2, max_overflow=0)
    try:
        await import_companies(engine, SAMPLE_FILE, embedder=None, source="sample")
        search = PostgresCompanySearch(engine, embedder=None)
        found = await search.search(SearchCompaniesInput(query="who does powder coating?"))
        assert found.companies[0].name == "Keystone Industrial Coatings"
        assert found.sample and found.mode == "full-text only (no embeddings)"
        in_ohio = await search.search(
            SearchCompaniesInput(query="metal parts machining stamping", location="OH")
        )
        assert in_ohio.companies and all("OH" in c.location for c in in_ohio.companies)
        assert "Empire Steel Stamping" not in [c.name for c in in_ohio.companies]
        # The stemmer keeps "pcbs"; the plural still finds the PCB shop.
        plural = await search.search(SearchCompaniesInput(query="Which suppliers make PCBs?"))
        assert plural.companies[0].name == "Buckeye Circuit Works"
        assert all(c.sample for c in plural.companies)  # each row says it is sample data
    finally:
        await engine.dispose()


async def test_hybrid_search_embeds_on_import_and_fuses_vector_hits(
    vector_database_url: str, fake_llm: FakeOpenAIServer
) -> None:
    engine = create_engine(vector_database_url, pool_size=2, max_overflow=0)
    client = AsyncOpenAI(base_url=fake_llm.url, api_key="test-key", max_retries=0)
    try:
        await migrate.upgrade(engine)
        embedder = OpenAIEmbedder(client, "text-embedding-3-small")
        report = await import_companies(engine, SAMPLE_FILE, embedder=embedder, source="sample")
        assert report.embedded and report.imported == 30
        async with engine.connect() as conn:
            missing = await conn.execute(
                text("SELECT count(*) FROM companies WHERE embedding IS NULL")
            )
            assert missing.scalar_one() == 0
        search = PostgresCompanySearch(engine, embedder)
        found = await search.search(SearchCompaniesInput(query="cheese and dairy wholesale"))
        assert found.mode == "hybrid (full-text + openai:text-embedding-3-small)"
        assert found.embedder == "openai:text-embedding-3-small"
        assert found.companies[0].name == "Badger State Cheese Supply"
    finally:
        await client.close()
        await engine.dispose()


async def test_local_embedder_finds_by_meaning_and_takes_over_other_vectors(
    vector_database_url: str, fake_llm: FakeOpenAIServer
) -> None:
    """The default embedder where the embed extra is installed: no embeddings API at all.
    Rows embedded by another embedder are never compared with its vectors, and are
    embedded again by it (`embed_missing`, run by `chatbot dev` and every import)."""
    engine = create_engine(vector_database_url, pool_size=2, max_overflow=0)
    client = AsyncOpenAI(base_url=fake_llm.url, api_key="test-key", max_retries=0)
    try:
        await migrate.upgrade(engine)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM companies"))
        openai_embedder = OpenAIEmbedder(client, "text-embedding-3-small")
        await import_companies(engine, SAMPLE_FILE, embedder=openai_embedder, source="sample")
        local = LocalEmbedder()
        search = PostgresCompanySearch(engine, local)
        # Only OpenAI's vectors are stored: the local search compares none of them.
        before = await search.search(SearchCompaniesInput(query="keep our servers off-site"))
        assert "Alamo Data Center Services" not in [c.name for c in before.companies]
        assert await embed_missing(engine, local) == 30
        assert await embed_missing(engine, local) == 0  # nothing left to do
        found = await search.search(
            SearchCompaniesInput(query="somewhere to keep our servers off-site")
        )
        assert found.embedder == local.name and local.name in found.mode
        # No word in common with "Colocation, managed hosting and disaster recovery".
        assert found.companies[0].name == "Alamo Data Center Services"
        async with engine.connect() as conn:
            models = await conn.execute(text("SELECT DISTINCT embedding_model FROM companies"))
            assert models.scalars().all() == [local.name]
    finally:
        await client.close()
        await engine.dispose()


async def test_the_formats_shown_in_help_import_as_shown(
    migrated_database_url: str, tmp_path: Path
) -> None:
    examples = [line.strip() for line in IMPORT_FORMAT.split("Examples:")[1].splitlines()]
    header, row, _, jsonl = examples[1:5]
    (tmp_path / "c.csv").write_text(f"{header}\n{row}\n")
    (tmp_path / "c.jsonl").write_text(jsonl + "\n")
    engine = create_engine(migrated_database_url, pool_size=1, max_overflow=0)
    try:
        for name in ("c.csv", "c.jsonl"):
            report = await import_companies(engine, tmp_path / name, embedder=None)
            assert (report.imported, report.rejected) == (1, []), name
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT location, capabilities FROM companies"))).all()
    finally:
        await engine.dispose()
    assert [tuple(r) for r in rows] == [("Columbus, OH", "PCB, SMT")]  # the same company twice
