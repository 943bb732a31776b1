"""A worker SIGKILLed while an approved side-effecting call is in flight, its write
landing after it died: the call is retried on a new worker under the same idempotency key,
the turn completes, and there is exactly one ticket in Postgres."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from loadtest.fakes import FakeOpenAIServer, ToolCallStep
from shared.config import Settings
from shared.db.engine import create_engine
from shared.models import workflow_id
from tests.support import assert_eventually, worker_env
from tests.workflows.tool_support import (
    answer,
    calls,
    decide,
    enable_tool_calling,
    start_turn,
    tickets,
    until,
)

pytestmark = pytest.mark.timeout(240)

TICKET = {"title": "Printer on fire", "description": "Third floor.", "priority": "urgent"}


@pytest.fixture(autouse=True)
def _tool_calling(settings: Settings) -> None:
    enable_tool_calling(settings)


async def _start_worker(settings: Settings, log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            env=worker_env(settings, TOOL_CALLING="on"),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )


async def test_worker_killed_during_an_approved_ticket_one_ticket_and_the_turn_completes(
    gateway: str,
    alice: httpx.AsyncClient,
    settings: Settings,
    llm: FakeOpenAIServer,
    temporal_client: Client,
    tmp_path: Path,
) -> None:
    llm.script(calls(ToolCallStep(name="create_ticket", arguments=TICKET)), answer("Filed it."))
    assert settings.database_url is not None
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=2, max_overflow=0)
    first = await _start_worker(settings, tmp_path / "worker1.log")
    second = None
    try:
        turn_id = await start_turn(alice, "crash-tool", "The printer is on fire; file a ticket.")
        asked = (await until(alice, turn_id, "approval_required"))[-1]
        assert asked.type == "approval_required", asked
        call_id = asked.data["call"]["id"]

        # The ticket's INSERT is held behind a row lock on its key (this uncommitted row),
        # so the worker dies with the statement sent and waiting.
        async with engine.connect() as lock:
            await lock.execute(
                text(
                    "INSERT INTO tickets (idempotency_key, session_id, user_id, title) "
                    "VALUES (:key, 'crash-tool', 'alice', 'placeholder')"
                ),
                {"key": f"{turn_id}:0"},
            )
            resp = await decide(alice, "crash-tool", turn_id, call_id, "approve")
            assert resp.status_code == 200, resp.text

            async def insert_waiting() -> None:
                async with engine.connect() as conn:
                    waiting = await conn.scalar(
                        text(
                            "SELECT count(*) FROM pg_stat_activity "
                            "WHERE wait_event_type = 'Lock' AND query ILIKE '%INSERT INTO tickets%'"
                        )
                    )
                assert waiting == 1

            await assert_eventually(insert_waiting, within=60)
            first.send_signal(signal.SIGKILL)
            await first.wait()
            await lock.rollback()  # the key is free: the dead worker's INSERT goes on

        # Its one statement commits without it, so the ticket exists and Temporal never
        # heard that the call ended: the case a retry must not open a second ticket for.
        async def opened() -> None:
            assert len(await tickets(settings, "crash-tool")) == 1

        await assert_eventually(opened, within=30)
        second = await _start_worker(settings, tmp_path / "worker2.log")
        final = (await until(alice, turn_id, "final", within=120))[-1]
        assert final.type == "final", final
        result = final.data["result"]
        assert result["status"] == "complete" and result["reply"] == "Filed it."
        [call] = result["tool_calls"]
        assert call["name"] == "create_ticket" and call["status"] == "ok", call
        assert call["approval"]["decision"] == "approve"
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
        await engine.dispose()
    assert [tuple(t) for t in await tickets(settings, "crash-tool")] == [
        (TICKET["title"], f"{turn_id}:0")
    ]
    # The call ran again on the second worker: its second attempt is the one that ended.
    history = await temporal_client.get_workflow_handle(workflow_id("crash-tool")).fetch_history()
    tool_calls = {
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        and e.activity_task_scheduled_event_attributes.activity_type.name == "call_tool"
    }
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
        and e.activity_task_started_event_attributes.scheduled_event_id in tool_calls
    ]
    assert attempts == [2], attempts
