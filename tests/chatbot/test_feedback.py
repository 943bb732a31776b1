"""Ratings of replies (thumbs up/down with a reason), through the public API on a real
worker, gateway and Postgres: one rating per assistant turn, replaced by a second PUT,
removed by DELETE; only the session's owner rates, and another user's session or turn is
404 as if it did not exist. Operators see them (`chatbot ops feedback`) and export them
for evaluation (`chatbot feedback export --since`, JSON lines).

One stack (database, worker, gateway) serves the whole module: each test makes sessions
of its own, so they share nothing else."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from activities.llm import build_openai_client
from chatbot.app import create_app
from loadtest.fakes import FakeOpenAIServer, ServerThread
from shared.config import Settings, load_settings
from shared.db import migrate
from shared.db.engine import create_engine, engine_from_settings
from shared.redis import redis_from_settings
from shared.temporal_client import connect_temporal
from tests.chatbot.api_support import auth, run_chatbot, say
from workers import versioning
from workers.main import build_worker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
async def module_database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A database of this module's own, migrated by our Alembic code, dropped after it."""
    name = f"t_fb_{uuid.uuid4().hex[:10]}"
    dsn = make_url(postgres_server_url).set(drivername="postgresql")
    admin = await asyncpg.connect(dsn.render_as_string(hide_password=False))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = make_url(postgres_server_url).set(database=name).render_as_string(False)
        engine = create_engine(url, pool_size=1, max_overflow=0)
        await migrate.upgrade(engine)
        await engine.dispose()
        yield url
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(scope="module")
def stack(
    temporal_address: str, module_database_url: str, redis_url: str, fake_llm: FakeOpenAIServer
) -> Settings:
    """The settings conftest's `settings` gives a test, for the whole module."""
    fake_llm.reset()
    queue = f"tq-fb-{uuid.uuid4().hex[:8]}"
    return load_settings(
        embedder="openai",
        temporal_address=temporal_address,
        database_url=module_database_url,
        redis_url=redis_url,
        openai_base_url=fake_llm.url,
        openai_api_key="test-key",
        temporal_task_queue=queue,
        worker_deployment_name=f"chatbot-{queue}",
        jwt_secret="test-secret-" + "x" * 32,
        rate_limit_per_minute=1000,
        intent_llm_fallback=False,
        tool_calling="off",
        workflow_sandbox=True,
    )


@pytest.fixture(scope="module")
async def module_worker(stack: Settings) -> AsyncIterator[Worker]:
    temporal = await connect_temporal(stack)
    redis_client = redis_from_settings(stack)
    engine = engine_from_settings(stack)
    llm_client = build_openai_client(stack)
    w = build_worker(
        temporal, stack, redis=redis_client, engine=engine, llm_client=llm_client, data_engine=None
    )
    async with w:
        await versioning.promote(temporal, stack, only_if_none=True)
        yield w
    await llm_client.close()
    await redis_client.aclose()
    await engine.dispose()


@pytest.fixture(scope="module")
def module_gateway(stack: Settings, module_worker: Worker) -> Iterator[str]:
    server = ServerThread(create_app(stack), lifespan="on").start()
    yield server.url
    server.stop()


@pytest.fixture
async def db(stack: Settings) -> AsyncIterator[AsyncEngine]:
    assert stack.database_url is not None
    engine = create_engine(stack.database_url.get_secret_value(), pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


def _client(gateway: str, settings: Settings, user: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"{gateway}/v1", headers=auth(settings, user), timeout=60)


@pytest.fixture
async def ann(module_gateway: str, stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(module_gateway, stack, "ann") as client:
        yield client


@pytest.fixture
async def ben(module_gateway: str, stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(module_gateway, stack, "ben") as client:
        yield client


def new_session() -> str:
    return f"fb-{uuid.uuid4().hex[:10]}"


def feedback_path(session: str, turn_id: str) -> str:
    return f"/sessions/{session}/turns/{turn_id}/feedback"


async def stored(db: AsyncEngine, turn_id: str) -> list[dict[str, Any]]:
    async with db.connect() as conn:
        rows = await conn.execute(
            text("SELECT * FROM feedback WHERE turn_id = CAST(:t AS uuid)"), {"t": turn_id}
        )
        return [dict(r) for r in rows.mappings()]


def cli_env(settings: Settings) -> dict[str, str]:
    assert settings.database_url is not None
    return {
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "TEMPORAL_ADDRESS": settings.temporal_address,
    }


async def test_a_rating_is_one_row_per_turn_replaced_by_a_second_put_and_deleted(
    ann: httpx.AsyncClient, db: AsyncEngine
) -> None:
    session = new_session()
    turn = await say(ann, session, "hello")
    path = feedback_path(session, turn["turn_id"])

    up = await ann.put(path, json={"rating": "up"})
    assert up.status_code == 200, up.text
    first = up.json()
    assert first["turn_id"] == turn["turn_id"] and first["session_id"] == session
    assert first["rating"] == "up" and first["reason"] is None

    down = await ann.put(path, json={"rating": "down", "reason": "It did not name a company."})
    assert down.status_code == 200, down.text
    second = down.json()
    assert second["rating"] == "down" and second["reason"] == "It did not name a company."
    assert datetime.fromisoformat(second["updated_at"]) > datetime.fromisoformat(
        first["updated_at"]
    )
    (row,) = await stored(db, turn["turn_id"])  # replaced, not a second row
    assert (row["rating"], row["reason"], row["user_id"]) == (
        "down",
        "It did not name a company.",
        "ann",
    )
    assert row["session_id"] == session and row["created_at"] <= row["updated_at"]

    # The history shows it beside the reply (what a reloaded page draws).
    history = (await ann.get(f"/sessions/{session}/messages")).json()["items"]
    assert [m["feedback"] for m in history] == [
        None,
        {"rating": "down", "reason": "It did not name a company."},
    ]

    gone = await ann.delete(path)
    assert gone.status_code == 204 and gone.content == b""
    assert await stored(db, turn["turn_id"]) == []
    history = (await ann.get(f"/sessions/{session}/messages")).json()["items"]
    assert [m["feedback"] for m in history] == [None, None]
    again = await ann.delete(path)  # nothing left to remove: the state asked for holds
    assert again.status_code == 204


async def test_only_the_owner_rates_an_assistant_turn_of_that_session(
    ann: httpx.AsyncClient, ben: httpx.AsyncClient, db: AsyncEngine
) -> None:
    session, other = new_session(), new_session()
    turn = await say(ann, session, "hello")
    elsewhere = await say(ann, other, "another chat")
    path = feedback_path(session, turn["turn_id"])
    body = {"rating": "down", "reason": "not mine"}

    # Another user's session and turn do not exist for ben, whatever he does.
    for resp in (await ben.put(path, json=body), await ben.delete(path)):
        assert resp.status_code == 404, resp.text
        assert resp.json()["error"]["code"] == "not_found"
        assert resp.json()["error"]["message"] == f"session {session!r} not found"
    ben_session = new_session()
    await say(ben, ben_session, "my own")
    crossed = await ben.put(feedback_path(ben_session, turn["turn_id"]), json=body)
    assert crossed.status_code == 404, crossed.text

    # Ann's own turn, but of another session; a turn id nobody has.
    misplaced = await ann.put(feedback_path(session, elsewhere["turn_id"]), json=body)
    assert misplaced.status_code == 404, misplaced.text
    message = misplaced.json()["error"]["message"]
    assert elsewhere["turn_id"] in message and "no assistant turn" in message
    unknown = await ann.put(feedback_path(session, str(uuid.uuid4())), json=body)
    assert unknown.status_code == 404 and "no assistant turn" in unknown.text
    assert (await ann.delete(feedback_path(session, str(uuid.uuid4())))).status_code == 404
    assert await stored(db, turn["turn_id"]) == []
    assert await stored(db, elsewhere["turn_id"]) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rating": "meh"}, "rating"),
        ({}, "rating"),
        ({"rating": "up", "reason": "bad\u0000byte"}, "reason"),
        ({"rating": "up", "reason": "x" * 1001}, "reason"),
        ({"rating": "up", "stars": 5}, "stars"),
    ],
    ids=["bad-rating", "no-rating", "nul-in-reason", "long-reason", "extra-field"],
)
async def test_a_body_that_is_not_a_rating_is_422(
    ann: httpx.AsyncClient, db: AsyncEngine, body: dict[str, Any], field: str
) -> None:
    session = new_session()
    turn = await say(ann, session, "hello")
    resp = await ann.put(feedback_path(session, turn["turn_id"]), json=body)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["code"] == "invalid_request"
    assert field in resp.json()["error"]["message"]
    assert await stored(db, turn["turn_id"]) == []


async def test_a_turn_id_that_is_not_a_uuid_is_422(ann: httpx.AsyncClient) -> None:
    resp = await ann.put(feedback_path(new_session(), "not-a-turn"), json={"rating": "up"})
    assert resp.status_code == 422, resp.text


async def test_the_table_refuses_other_ratings_and_goes_with_its_session(
    ann: httpx.AsyncClient, db: AsyncEngine
) -> None:
    session = new_session()
    turn = await say(ann, session, "hello")
    rated = await ann.put(feedback_path(session, turn["turn_id"]), json={"rating": "up"})
    assert rated.status_code == 200, rated.text
    with pytest.raises(IntegrityError, match="ck_feedback_rating"):
        async with db.begin() as conn:
            await conn.execute(
                text("UPDATE feedback SET rating = 'meh' WHERE turn_id = CAST(:t AS uuid)"),
                {"t": turn["turn_id"]},
            )
    assert (await ann.delete(f"/sessions/{session}")).status_code == 204
    assert await stored(db, turn["turn_id"]) == []


async def test_ops_feedback_shows_the_latest_ratings_and_the_counts(
    ann: httpx.AsyncClient, ben: httpx.AsyncClient, stack: Settings
) -> None:
    session, ben_session = new_session(), new_session()
    liked = await say(ann, session, "hello")
    disliked = await say(ann, session, "and then?")
    bens = await say(ben, ben_session, "hi")
    long_reason = "The answer ignored my question about suppliers in Ohio entirely. " * 3
    for client, sid, turn, body in (
        (ann, session, liked, {"rating": "up"}),
        (ann, session, disliked, {"rating": "down", "reason": long_reason}),
        (ben, ben_session, bens, {"rating": "down", "reason": "ben's"}),
    ):
        resp = await client.put(feedback_path(sid, turn["turn_id"]), json=body)
        assert resp.status_code == 200, resp.text

    code, out, err = await run_chatbot("ops", "feedback", "--user", "ann", env=cli_env(stack))
    assert code == 0, err
    header, *rows = out.splitlines()
    assert header.split() == ["WHEN", "USER", "SESSION", "TURN", "RATING", "REASON"]
    table = [r for r in rows if session in r]
    assert len(table) == 2, out
    newest, older = table  # latest first
    assert disliked["turn_id"] in newest and " down " in newest
    assert "The answer ignored my question" in newest and long_reason.strip() not in newest
    assert newest.rstrip().endswith("…")
    assert liked["turn_id"] in older and " up " in older
    assert "ben" not in out.replace("ben's", "")  # --user: ann's alone
    assert "ratings: 1 up, 1 down" in out

    code, out, err = await run_chatbot("ops", "feedback", "--limit", "1", env=cli_env(stack))
    assert code == 0, err
    assert bens["turn_id"] in out and session not in out  # only the newest row ...
    up, down = _counts(out)
    assert up >= 1 and down >= 2  # ... but every rating counted

    code, _, err = await run_chatbot("ops", "feedback", "--limit", "0", env=cli_env(stack))
    assert code == 1 and "--limit must be at least 1" in err


def _counts(out: str) -> tuple[int, int]:
    line = next(line for line in out.splitlines() if line.startswith("ratings:"))
    words = line.replace(",", "").split()
    return int(words[1]), int(words[3])


async def test_export_writes_a_json_line_per_rating_since_a_time(
    ann: httpx.AsyncClient, stack: Settings, tmp_path: Path
) -> None:
    session = new_session()
    first = await say(ann, session, "hello there")
    second = await say(ann, session, "tell me more")
    rated = await ann.put(
        feedback_path(session, second["turn_id"]), json={"rating": "down", "reason": "vague"}
    )
    assert rated.status_code == 200, rated.text
    rated_at = datetime.fromisoformat(rated.json()["updated_at"])
    before = (rated_at - timedelta(seconds=1)).isoformat()

    out_file = tmp_path / "feedback.jsonl"
    code, out, err = await run_chatbot(
        "feedback", "export", "--since", before, "--output", str(out_file), env=cli_env(stack)
    )
    assert code == 0, err
    lines = [json.loads(line) for line in out_file.read_text().splitlines()]
    (record,) = [r for r in lines if r["turn_id"] == second["turn_id"]]
    assert record["session_id"] == session and record["user_id"] == "ann"
    assert record["rating"] == "down" and record["reason"] == "vague"
    assert datetime.fromisoformat(record["rated_at"]) == rated_at
    assert record["user_text"] == "tell me more"
    assert record["reply"] == second["reply"] == "Fake reply to: tell me more"
    assert record["status"] == "complete" and record["intent"] == second["intent"]
    for key in ("tool_calls", "tool_results", "citations", "findings"):
        assert key in record, key
    assert set(record["tokens"]) == {"prompt_tokens", "completion_tokens"}
    prompt = record["prompt"]
    assert prompt["source"] == "recent" and prompt["user_text"] == "tell me more"
    assert prompt["recent"] == [
        {"role": "user", "content": "hello there"},
        {"role": "assistant", "content": first["reply"]},
    ]
    assert f"exported {len(lines)} rating" in err

    # To stdout, with --until; a --since after the rating leaves it out.
    after = (rated_at + timedelta(milliseconds=1)).isoformat()
    code, out, err = await run_chatbot(
        "feedback", "export", "--since", after, "--output", "-", env=cli_env(stack)
    )
    assert code == 0, err
    assert second["turn_id"] not in out
    code, out, err = await run_chatbot(
        "feedback", "export", "--since", before, "--until", after, env=cli_env(stack)
    )
    assert code == 0, err
    assert second["turn_id"] in {json.loads(line)["turn_id"] for line in out.splitlines()}
    # A date alone is midnight UTC: the whole day of the rating.
    day = rated_at.date().isoformat()
    code, out, err = await run_chatbot("feedback", "export", "--since", day, env=cli_env(stack))
    assert code == 0 and second["turn_id"] in out, err


@pytest.mark.parametrize(
    "args",
    [
        ["--since", "yesterday"],
        ["--since", "2026-13-01"],
        ["--since", "2026-01-02", "--until", "soon"],
        [],
    ],
    ids=["word", "month-13", "bad-until", "missing"],
)
async def test_export_refuses_a_since_that_is_not_a_date(args: list[str]) -> None:
    code, out, err = await run_chatbot("feedback", "export", *args)
    assert code == 2 and out == ""
    assert "usage: chatbot feedback export" in err
    assert "--since" in err or "--until" in err


async def test_export_refuses_an_until_before_since() -> None:
    code, _, err = await run_chatbot(
        "feedback", "export", "--since", "2026-02-01", "--until", "2026-01-01"
    )
    assert code == 2 and "--until must be after --since" in err
