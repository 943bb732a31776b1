"""`chatbot companies import FILE`: load companies from CSV or JSON lines into Postgres.

Every row is validated; bad rows are reported with their line number and reason and
never stop the good ones. Rows are upserted on the company key (name + location), so an
import can be re-run. With embeddings configured, rows are embedded in batches for vector
search; without, search stays full-text, and the command says so."""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pydantic import BaseModel, Field, ValidationError, field_validator
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from activities.embeddings import (
    BATCH,
    Embedder,
    EmbedderUnavailable,
    build_embedder,
    vector_literal,
)
from activities.llm import build_openai_client
from shared.config import Settings
from shared.db.engine import engine_from_settings
from shared.db.schema import has_column

SAMPLE_FILE = Path(__file__).with_name("data") / "sample_companies.jsonl"


class CompanyRecord(BaseModel):
    name: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=5000)
    industry: str = Field(default="", max_length=200)
    location: str = Field(default="", max_length=200)
    contact: str = Field(default="", max_length=300)
    capabilities: str = Field(default="", max_length=5000)

    @field_validator("capabilities", mode="before")
    @classmethod
    def _join_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return ", ".join(str(v).strip() for v in value if str(v).strip())
        return value

    @field_validator("name", "location", mode="after")
    @classmethod
    def _strip(cls, value: str) -> str:
        return " ".join(value.split())

    def document(self) -> str:
        return (
            f"{self.name}. {self.description} Industry: {self.industry}. "
            f"Capabilities: {self.capabilities}. Location: {self.location}."
        )


@dataclass
class ImportReport:
    imported: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    embedded: bool = False
    embedder: str | None = None
    no_vectors: bool = False  # the database has no pgvector: nothing to store vectors in
    reembedded: int = 0  # earlier rows without a vector of this embedder, embedded now

    def summary(self) -> str:
        lines = [f"imported {self.imported} companies"]
        if self.embedded:
            lines.append(f"embedded with {self.embedder}: search by meaning and full text")
            if self.reembedded:
                lines.append(f"embedded {self.reembedded} earlier companies with it too")
        elif self.no_vectors:
            lines.append("this Postgres has no pgvector: search uses full-text only")
        else:
            lines.append(
                "no embedder (EMBEDDER=none, or auto without the embed extra or "
                "OPENAI_API_KEY): search uses full-text only"
            )
        if self.rejected:
            lines.append(f"rejected {len(self.rejected)} rows:")
            lines += [f"  line {n}: {reason}" for n, reason in self.rejected]
        return "\n".join(lines)


def _raw_rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line number, row) pairs; a row that cannot be read at all is its error text."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                yield reader.line_num, {k.strip().lower(): v for k, v in row.items() if k}
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as err:
                yield number, f"not valid JSON ({err.msg})"
                continue
            yield number, value if isinstance(value, dict) else "not a JSON object"


def read_companies(path: Path, report: ImportReport) -> list[CompanyRecord]:
    records: dict[tuple[str, str], CompanyRecord] = {}
    for number, row in _raw_rows(path):
        if isinstance(row, str):
            report.rejected.append((number, row))
            continue
        try:
            record = CompanyRecord.model_validate(row)
        except ValidationError as err:
            reason = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in err.errors()
            )
            report.rejected.append((number, reason))
            continue
        records[(record.name, record.location)] = record  # the last row of a key wins
    return list(records.values())


_UPSERT = text(
    """
    INSERT INTO companies (name, description, industry, location, contact, capabilities, source)
    VALUES (:name, :description, :industry, :location, :contact, :capabilities, :source)
    ON CONFLICT (name, location) DO UPDATE SET
        description = EXCLUDED.description, industry = EXCLUDED.industry,
        contact = EXCLUDED.contact, capabilities = EXCLUDED.capabilities,
        source = EXCLUDED.source
    """
)


async def import_companies(
    engine: AsyncEngine,
    path: Path,
    *,
    embedder: Embedder | None,
    source: str = "import",
    progress: TextIO | None = None,
) -> ImportReport:
    report = ImportReport()
    records = read_companies(path, report)
    vectors_stored = await has_column(engine, "companies", "embedding_model")
    embed = embedder is not None and vectors_stored
    report.embedded, report.no_vectors = embed, not vectors_stored
    report.embedder = embedder.name if embed and embedder is not None else None
    for start in range(0, len(records), BATCH):
        batch = records[start : start + BATCH]
        vectors = await embedder.embed([r.document() for r in batch]) if embed and embedder else []
        async with engine.begin() as conn:
            await conn.execute(_UPSERT, [{**r.model_dump(), "source": source} for r in batch])
            for record, vector in zip(batch, vectors, strict=False):
                await conn.execute(
                    text(
                        "UPDATE companies SET embedding = CAST(:v AS vector), "
                        "embedding_model = :model WHERE name = :name AND location = :location"
                    ),
                    {
                        "v": vector_literal(vector),
                        "model": report.embedder,
                        "name": record.name,
                        "location": record.location,
                    },
                )
        report.imported += len(batch)
        if progress is not None:
            done = report.imported
            bar = "#" * (20 * done // len(records))
            progress.write(f"\r[{bar:<20}] {done}/{len(records)}")
            progress.flush()
    if progress is not None and records:
        progress.write("\n")
    if embed:
        report.reembedded = await embed_missing(engine, embedder)
    return report


_TEXT_COLUMNS = ("name", "description", "industry", "location", "contact", "capabilities")


async def embed_missing(engine: AsyncEngine, embedder: Embedder | None) -> int:
    """Embed the companies this embedder has no vector for (imported without one, or by
    another embedder): after a switch of EMBEDDER, search by meaning covers them again."""
    if embedder is None or not await has_column(engine, "companies", "embedding_model"):
        return 0
    done = 0
    while True:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT id, name, description, industry, location, contact, "
                        "capabilities FROM companies WHERE embedding_model IS DISTINCT FROM :m "
                        "ORDER BY id LIMIT :n"
                    ),
                    {"m": embedder.name, "n": BATCH},
                )
            ).all()
        if not rows:
            return done
        # As stored, unvalidated: only their text is embedded.
        records = [
            CompanyRecord.model_construct(None, **{k: r._mapping[k] or "" for k in _TEXT_COLUMNS})
            for r in rows
        ]
        vectors = await embedder.embed([r.document() for r in records])
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE companies SET embedding = CAST(:v AS vector), embedding_model = :m "
                    "WHERE id = :id"
                ),
                [
                    {"v": vector_literal(v), "m": embedder.name, "id": r.id}
                    for r, v in zip(rows, vectors, strict=True)
                ],
            )
        done += len(rows)


async def load_sample_if_empty(engine: AsyncEngine, embedder: Embedder | None) -> int:
    """`chatbot dev` starts with the sample dataset, labelled as sample in answers."""
    async with engine.connect() as conn:
        count = (await conn.execute(text("SELECT count(*) FROM companies"))).scalar_one()
    if count:
        return 0
    report = await import_companies(engine, SAMPLE_FILE, embedder=embedder, source="sample")
    return report.imported


IMPORT_FORMAT = """\
columns (CSV header row) or keys (one JSON object per line):
  name          required, at most 300 characters
  description   what they do (searched by full text and, with embeddings, by meaning)
  industry      e.g. "Electronics Manufacturing"
  location      e.g. "Columbus, OH"; "in Ohio" in a question filters on it
  contact       an email, phone or URL
  capabilities  CSV: one cell, comma-separated ("PCB fabrication, SMT assembly");
                JSONL: a string like that or a list of strings
other columns are ignored. Examples:
  name,description,industry,location,contact,capabilities
  Acme PCB,Quick-turn boards,Electronics,"Columbus, OH",sales@acme.example,"PCB, SMT"

  {"name": "Acme PCB", "location": "Columbus, OH", "capabilities": ["PCB", "SMT"]}
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="companies_command", required=True, metavar="ACTION")
    load = sub.add_parser(
        "import",
        help="import companies from a CSV or JSON lines file",
        description="Import companies for company search. Bad rows are reported by line and "
        "skipped; re-running upserts on (name, location).",
        epilog=IMPORT_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    load.add_argument("file", nargs="?", type=Path, help="a .csv or .jsonl file")
    load.add_argument("--sample", action="store_true", help="import the shipped sample data")


def run(args: argparse.Namespace, settings: Settings) -> int:
    path: Path | None = SAMPLE_FILE if args.sample else args.file
    if path is None:
        sys.stderr.write("error: give a FILE to import, or --sample\n")
        return 2
    if not path.is_file():
        sys.stderr.write(f"error: {path} is not a file\n")
        return 2
    if settings.database_url is None:
        sys.stderr.write("error: DATABASE_URL is not set; point it at your Postgres\n")
        return 2

    async def main() -> ImportReport:
        engine = engine_from_settings(settings)
        client = build_openai_client(settings)
        try:
            return await import_companies(
                engine,
                path,
                embedder=build_embedder(client, settings),
                source="sample" if args.sample else "import",
                progress=sys.stderr,
            )
        finally:
            await client.close()
            await engine.dispose()

    try:
        report = asyncio.run(main())
    except EmbedderUnavailable as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    sys.stdout.write(report.summary() + "\n")
    return 1 if report.rejected and not report.imported else 0
