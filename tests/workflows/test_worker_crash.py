"""A worker killed with SIGKILL mid-generation: a new worker finishes the turn, it is
persisted exactly once, charged once, and the client that waited gets the answer."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.db.engine import create_engine
from shared.models import turn_id_for
from shared.streams import stream_key
from tests.support import assert_eventually, worker_process

pytestmark = pytest.mark.timeout(180)


async def test_killed_worker_mid_generation_the_turn_completes_once(
    gateway: str,
    alice: httpx.AsyncClient,
    settings: Settings,
    llm: FakeOpenAIServer,
    redis: Redis,
    tmp_path: Path,
) -> None:
    llm.tokens_per_second = 20
    words = " ".join(f"w{i}" for i in range(60))  # ~3 s of streaming
    cmid = f"crash-{uuid.uuid4().hex[:6]}"
    turn_id = turn_id_for("crash", cmid)
    first = await worker_process(settings, tmp_path / "worker1.log")
    second = None
    try:
        request = asyncio.create_task(
            alice.post(
                "/sessions/crash/messages",
                json={"text": words, "client_message_id": cmid},
                timeout=120,
            )
        )

        async def streaming() -> None:
            assert await redis.xlen(stream_key(turn_id)) >= 3

        await assert_eventually(streaming, within=60)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        second = await worker_process(settings, tmp_path / "worker2.log")
        resp = await asyncio.wait_for(request, 120)
        assert resp.status_code == 200, resp.text
        assert resp.json()["reply"] == f"Fake reply to: {words}"
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
    assert second is not None and second.returncode == 0  # SIGTERM: a graceful exit
    types = [fields["type"] for _, fields in await redis.xrange(stream_key(turn_id))]
    assert "restart" in types and types[-1] == "final"
    assert settings.database_url is not None
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1, max_overflow=0)
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text("SELECT role FROM messages WHERE turn_id = :t ORDER BY seq"),
                {"t": uuid.UUID(turn_id)},
            )
        ).all()
        count = (
            await conn.execute(text("SELECT turn_count FROM sessions WHERE id = 'crash'"))
        ).scalar()
        charged = (
            await conn.execute(
                text(
                    "SELECT step, status, completion_tokens FROM usage_ledger "
                    "WHERE turn_id = :t AND step = 'reply'"
                ),
                {"t": turn_id},
            )
        ).all()
    await engine.dispose()
    assert [r.role for r in rows] == ["user", "assistant"]
    assert count == 1
    # Both attempts reserved under the turn's key: one charge, for the reply delivered
    # (the router's LLM layer, on in the worker process, has a step of its own).
    assert [(c.step, c.status) for c in charged] == [("reply", "settled")]
    assert charged[0].completion_tokens == resp.json()["usage"]["completion_tokens"] > 0
