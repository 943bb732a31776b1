"""MAX_SESSIONS_PER_USER: a user over the limit gets 409 `session_limit_reached`, whether
the session is created explicitly or by a first message; existing sessions keep working."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatbot import repository
from chatbot.errors import NotFound, SessionLimitReached
from shared.config import Settings
from shared.db.engine import create_engine


@pytest.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=20, max_overflow=0)
    yield engine
    await engine.dispose()


async def _count(engine: AsyncEngine, user: str) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM sessions WHERE user_id = :u"), {"u": user}
        )
        return int(found.scalar_one())


async def test_create_and_first_message_stop_at_the_limit(engine: AsyncEngine) -> None:
    await repository.create_session(engine, session_id="a", user_id="u1", title="", max_sessions=2)
    await repository.ensure_session(engine, session_id="b", user_id="u1", max_sessions=2)
    with pytest.raises(SessionLimitReached, match="delete sessions"):
        await repository.create_session(
            engine, session_id="c", user_id="u1", title="", max_sessions=2
        )
    with pytest.raises(SessionLimitReached):
        await repository.ensure_session(engine, session_id="c", user_id="u1", max_sessions=2)
    # At the limit, a message to a session that exists is fine, and other users are not held.
    await repository.ensure_session(engine, session_id="a", user_id="u1", max_sessions=2)
    await repository.create_session(engine, session_id="d", user_id="u2", title="", max_sessions=2)
    # Another user's id is still 404, never a hint about the limit.
    with pytest.raises(NotFound):
        await repository.ensure_session(engine, session_id="d", user_id="u1", max_sessions=2)
    # Deleting one makes room again; 0 means no limit.
    await repository.delete_session(engine, session_id="a", user_id="u1")
    await repository.ensure_session(engine, session_id="c", user_id="u1", max_sessions=2)
    for sid in ("e", "f", "g"):
        await repository.create_session(
            engine, session_id=sid, user_id="u1", title="", max_sessions=0
        )
    assert await _count(engine, "u1") == 5


async def test_concurrent_first_messages_never_fail_otherwise(engine: AsyncEngine) -> None:
    """The count is in the INSERT's own statement: a burst of one user's creations may pass
    the limit together by at most the burst's size, and each either creates its session or
    gets session_limit_reached, nothing else."""
    results = await asyncio.gather(
        *(
            repository.ensure_session(engine, session_id=f"s{i}", user_id="burst", max_sessions=3)
            for i in range(12)
        ),
        return_exceptions=True,
    )
    refused = [r for r in results if r is not None]
    assert all(isinstance(r, SessionLimitReached) for r in refused), refused
    assert await _count(engine, "burst") == 12 - len(refused) >= 3
    # Once the burst is over the limit holds exactly.
    with pytest.raises(SessionLimitReached):
        await repository.ensure_session(engine, session_id="late", user_id="burst", max_sessions=3)


async def test_the_api_answers_409_session_limit_reached(
    alice: httpx.AsyncClient, settings: Settings
) -> None:
    settings.max_sessions_per_user = 1
    assert (await alice.post("/sessions", json={"id": "only"})).status_code == 201
    for resp in (
        await alice.post("/sessions", json={"id": "second"}),
        await alice.post("/sessions/second/messages", json={"text": "hi"}),
    ):
        assert resp.status_code == 409
        error = resp.json()["error"]
        assert error["code"] == "session_limit_reached"
        assert "limit of 1 session" in error["message"] and "delete" in error["message"]
