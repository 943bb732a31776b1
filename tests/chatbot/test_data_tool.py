"""The query_data tool through the public API, on a real worker, gateway and Postgres
loaded with the sample maintenance data, the fake provider playing both the chat model
(which calls the tool) and the SQL model (which writes the query): the right number, a
failed query retried with its error, hostile queries stopped (and by what), a huge result
cut at the limit, a chart, files only their owner can read, a Spanish question."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from activities.sql.sample import SCHEMA
from chatbot.client import ChatClient
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import run_chatbot, token
from tests.chatbot.data_support import ask_tool, sql_reply, with_sample_data
from tests.workflows.tool_support import answer

pytestmark = pytest.mark.timeout(120)

DUE = (
    "SELECT count(DISTINCT e.id) AS machines FROM equipment e JOIN maintenance_schedules m "
    "ON m.equipment_id = e.id WHERE m.kind = 'preventive' AND e.status <> 'retired' "
    "AND m.next_due < date_trunc('month', current_date) + interval '1 month'"
)


@pytest.fixture
async def settings(settings: Settings) -> Settings:
    return await with_sample_data(
        settings, sql_timeout_seconds=1.0, sql_max_rows=500, max_sql_retries=3
    )


BY_STATUS = "SELECT status, count(*) AS orders FROM work_orders GROUP BY status ORDER BY status"


def sql_requests(llm: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [
        r["body"]
        for r in llm.requests
        if r["endpoint"] == "chat" and not r["body"].get("stream") and "tools" not in r["body"]
    ]


async def ask(client: httpx.AsyncClient, session: str, question: str) -> dict[str, Any]:
    resp = await client.post(f"/sessions/{session}/messages", json={"text": question})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def sid() -> str:
    return f"data-{uuid.uuid4().hex[:8]}"


async def test_the_right_number_with_a_table_and_a_csv_only_its_owner_reads(
    worker: Worker,
    alice: httpx.AsyncClient,
    bob: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    question = "How many machines need preventive maintenance this month?"
    llm.script(ask_tool(question), sql_reply(DUE), answer("They are in the table."))
    session = sid()
    turn = await ask(alice, session, question)

    (found,) = turn["tool_results"]
    async with engine.connect() as conn:  # the same count, written another way
        expected = await conn.scalar(
            text(
                f"SELECT count(*) FROM {SCHEMA}.equipment e WHERE e.status != 'retired' AND "
                f"EXISTS (SELECT 1 FROM {SCHEMA}.maintenance_schedules m WHERE "
                "m.equipment_id = e.id AND m.kind = 'preventive' AND "
                "m.next_due < date_trunc('month', current_date) + interval '1 month')"
            )
        )
    assert found["columns"] == ["machines"] and found["rows"] == [[expected]]
    assert found["sample"] is True and found["sql_attempts"] == 1
    assert turn["data_timings"]["sql_attempts"] == 1 and turn["data_timings"]["sql_ms"] > 0
    # The SQL model was told the schema; the chat model got the table and the sample note.
    (asked,) = sql_requests(llm)
    system = asked["messages"][0]["content"]
    assert "Table sample_maintenance.maintenance_schedules" in system and "SAMPLE DATA" in system
    assert asked["messages"][1]["content"] == question
    tool_message = json.dumps(llm.requests[-1]["body"]["messages"][-1])
    assert f"| {expected} |" in tool_message and "SAMPLE DATA" in tool_message

    listed = (await alice.get(f"/sessions/{session}/artifacts")).json()["items"]
    assert [a["name"] for a in listed] == ["result.csv"]
    (csv_file,) = listed
    got = await alice.get(csv_file["download_url"].removeprefix("/v1"))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.text.splitlines() == ["machines", str(expected)]
    assert 'filename="result.csv"' in got.headers["content-disposition"]
    # Bob can neither list nor read them: to him they do not exist.
    assert (await bob.get(f"/sessions/{session}/artifacts")).status_code == 404
    theirs = await bob.get(csv_file["download_url"].removeprefix("/v1"))
    assert theirs.status_code == 404 and theirs.json()["error"]["code"] == "not_found"
    assert (await alice.get("/artifacts/not-an-id")).status_code == 422


async def test_a_failed_query_goes_back_to_the_model_with_its_error(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    question = "How many pumps are down?"
    good = "SELECT count(*) FROM equipment WHERE category = 'pump' AND status = 'down'"
    llm.script(
        ask_tool(question),
        sql_reply("SELECT count(*) FROM equipment WHERE kind = 'pump'"),
        sql_reply(good),
        answer("Some pumps are down."),
    )
    turn = await ask(alice, sid(), question)
    (found,) = turn["tool_results"]
    assert [a.get("error") for a in found["attempts"]] == [
        'column "kind" does not exist',
        None,
    ]
    assert turn["data_timings"]["sql_attempts"] == 2
    second = sql_requests(llm)[1]["messages"]
    assert 'That query failed: column "kind" does not exist' in second[-1]["content"]


async def test_hostile_queries_are_stopped_and_the_model_told_by_what(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, engine: AsyncEngine
) -> None:
    llm.script(
        ask_tool("Clean up the old work orders"),
        sql_reply("DELETE FROM work_orders WHERE status = 'done'"),  # the checker
        sql_reply("SELECT 1; DROP TABLE sites"),  # the checker: one statement only
        sql_reply("SELECT pg_sleep(60)"),  # the statement timeout (1 s here)
        sql_reply("SELECT * FROM public.sessions"),  # the checker (and the role)
        answer("I cannot do that."),
    )
    turn = await ask(alice, sid(), "Clean up the old work orders")
    (found,) = turn["tool_results"]
    errors = [a["error"] for a in found["attempts"]]
    assert errors[0] == "only a SELECT may run here, not DELETE"
    assert errors[1] == "write exactly one statement, not 2"
    assert errors[2].startswith("the query ran past its 1 s limit")
    assert errors[3].startswith("public.sessions is outside the data this tool reads")
    assert turn["tool_calls"][0]["status"] == "error"  # no query worked: the tool says so
    async with engine.connect() as conn:  # nothing was deleted or dropped
        assert await conn.scalar(text(f"SELECT count(*) FROM {SCHEMA}.work_orders")) == 3000
        assert await conn.scalar(text(f"SELECT count(*) FROM {SCHEMA}.sites")) == 8


async def test_a_huge_result_is_cut_at_the_limit(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    question = "Every work order against every machine at every site"
    # 3000 x 600 x 8 = 14.4 million rows, streamed (a generate_series would be built whole
    # before the limit applies, racing the 1 s timeout on a busy machine).
    huge = (
        "SELECT w.id AS order_id, e.id AS machine_id, s.id AS site_id "
        "FROM work_orders w CROSS JOIN equipment e CROSS JOIN sites s"
    )
    llm.script(
        ask_tool(question),
        sql_reply(huge),
        answer("Here they are."),
    )
    session = sid()
    turn = await ask(alice, session, question)
    (found,) = turn["tool_results"]
    assert found["row_count"] == 500 and found["truncated"] is True
    assert len(found["rows"]) == 10  # HEAD_ROWS to the model
    (csv_file,) = (await alice.get(f"/sessions/{session}/artifacts")).json()["items"]
    got = await alice.get(csv_file["download_url"].removeprefix("/v1"))
    assert len(got.text.splitlines()) == 501  # the header and the 500 rows kept


async def test_a_comparison_comes_with_a_chart(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    question = "Compare open work orders by site"
    sql = (
        "SELECT s.name AS site, count(*) AS open_orders FROM work_orders w "
        "JOIN equipment e ON e.id = w.equipment_id JOIN sites s ON s.id = e.site_id "
        "WHERE w.status = 'open' GROUP BY s.name ORDER BY open_orders DESC"
    )
    llm.script(
        ask_tool(question),
        sql_reply(sql, "bar", "site", "open_orders"),
        answer("North Plant leads."),
    )
    session = sid()
    turn = await ask(alice, session, question)
    (found,) = turn["tool_results"]
    assert found["chart_ms"] > 0 and turn["data_timings"]["chart_ms"] > 0
    listed = (await alice.get(f"/sessions/{session}/artifacts")).json()["items"]
    assert sorted(a["name"] for a in listed) == ["chart.png", "result.csv"]
    (chart,) = [a for a in listed if a["name"] == "chart.png"]
    png = await alice.get(chart["download_url"].removeprefix("/v1"))
    assert png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    image.verify()  # a whole, valid PNG
    assert image.format == "PNG" and image.size[0] > 400


async def test_a_spanish_question_is_passed_as_asked_and_answered_in_spanish(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    question = "¿Cuántas máquinas necesitan mantenimiento preventivo este mes?"
    reply = "Este mes necesitan mantenimiento preventivo las máquinas de la tabla."
    llm.script(ask_tool(question), sql_reply(DUE), answer(reply))
    turn = await ask(alice, sid(), question)
    (asked,) = sql_requests(llm)
    assert asked["messages"][1]["content"] == question  # the SQL over the English schema
    assert "they are English, whatever language the question is in" in " ".join(
        asked["messages"][0]["content"].split()
    )
    last = json.dumps(llm.requests[-1]["body"]["messages"][-1], ensure_ascii=False)
    assert "Answer in the language of the user's question." in last
    assert turn["reply"] == reply and turn["tool_results"][0]["rows"][0][0] > 0


async def test_the_cli_prints_the_rows_and_saves_the_files_where_it_says(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer, tmp_path: Path
) -> None:
    question = "Compare open work orders by site"
    sql = (
        "SELECT s.name AS site, count(*) AS open_orders FROM work_orders w "
        "JOIN equipment e ON e.id = w.equipment_id JOIN sites s ON s.id = e.site_id "
        "WHERE w.status = 'open' GROUP BY s.name ORDER BY s.name"
    )
    llm.script(ask_tool(question), sql_reply(sql, "bar", "site", "open_orders"), answer("Done."))
    files = tmp_path / "files"
    session = sid()
    args = ("--url", gateway, "--token", token(settings, "carol"), "--files-dir", str(files))
    code, out, err = await run_chatbot("send", session, question, *args)
    assert code == 0, err

    saved = dict(re.findall(r"^\[file\] saved (\S+/[^/\s]+-(\S+)) \(\d+ bytes\)$", err, re.M))
    saved = {name: Path(path) for path, name in saved.items()}
    assert sorted(saved) == ["chart.png", "result.csv"], err
    assert all(p.parent == files / session for p in saved.values())
    with saved["result.csv"].open() as f:
        table = list(csv.reader(f))
    assert table[0] == ["site", "open_orders"] and len(table) > 2
    Image.open(saved["chart.png"]).verify()
    # The rows are printed under the reply, as the page's table shows them.
    lines = out.splitlines()
    head = lines.index(f"Data (sample data): {len(table) - 1} rows:")
    assert re.match(r"^  site\s+\| open_orders$", lines[head + 1]), out
    first_site, first_count = table[1]
    assert re.match(rf"^  {re.escape(first_site)}\s+\| {first_count}$", lines[head + 2]), out

    # --no-files: nothing downloaded, nothing said about files.
    llm.script(ask_tool(question), sql_reply(sql), answer("Again."))
    code, out, err = await run_chatbot("send", sid(), question, *args[:4], "--no-files")
    assert code == 0, err
    assert "[file]" not in err


async def test_a_file_name_from_the_server_cannot_leave_the_folder(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer, tmp_path: Path
) -> None:
    """The names come from the server; a hostile one ("../../x") is saved inside anyway."""
    llm.script(ask_tool("orders by status"), sql_reply(BY_STATUS), answer("Here."))
    client = ChatClient(gateway, token(settings, "dave"), notes=io.StringIO(), files_dir=None)
    try:
        # In a thread: the worker runs on this test's event loop.
        turn = await asyncio.to_thread(client.send, sid(), "orders by status", io.StringIO())
        (ref,) = turn["tool_results"][0]["artifacts"]
        ref.update(name="../../../outside.csv", turn_id="../..")
        (line,) = await asyncio.to_thread(client.save_files, turn, tmp_path / "in")
    finally:
        client.close()
    (path,) = (tmp_path / "in").iterdir()
    assert line == f"[file] saved {path} ({path.stat().st_size} bytes)"
    assert path.name.endswith("outside.csv") and "/" not in path.name
    assert not (tmp_path / "outside.csv").exists()
    assert path.read_text().startswith("status,orders")
