"""Determinism: workflow histories replay through temporalio's Replayer against today's
code. `histories/*.json` were recorded from this shape of the workflow (there is one:
changes ship as new worker builds, runs Pinned to the build that started them, README
"Changing the workflow"), so an edit that would break a run still in flight on the
current build fails here, as the deliberately incompatible edit below does. New histories
recorded by this test go to test-artifacts/histories/; copy them into histories/ when
the workflow changes on purpose (a new build)."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker
from temporalio.workflow import NondeterminismError

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.models import workflow_id
from tests.support import assert_eventually
from tests.workflows.incompatible_edit import IncompatibleEdit
from workflows.chat_session import ChatSessionWorkflow

HISTORIES = Path(__file__).with_name("histories")
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "histories"


def replayer() -> Replayer:
    return Replayer(workflows=[ChatSessionWorkflow], data_converter=pydantic_data_converter)


def local_activity(event: Any) -> str | None:
    """The type of the local activity a marker records."""
    data = event.marker_recorded_event_attributes.details.get("data")
    if data is None or not data.payloads:
        return None
    return str(json.loads(data.payloads[0].data).get("activity_type"))


def scheduled_activities(history: WorkflowHistory) -> list[str]:
    """The activity types a history scheduled, in order (local activities are markers)."""
    return [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240
    await replayer().replay_workflow(history)


def test_there_are_recorded_histories() -> None:
    assert len(list(HISTORIES.glob("*.json"))) >= 1


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*.json")), ids=lambda p: p.stem)
async def test_an_incompatible_edit_fails_the_recorded_histories(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())  # noqa: ASYNC240
    edited = Replayer(workflows=[IncompatibleEdit], data_converter=pydantic_data_converter)
    with pytest.raises(NondeterminismError):
        await edited.replay_workflow(history)


async def test_todays_histories_replay(
    settings: Settings,
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    """A session with every kind of step: normal turns, a search that found nothing (the
    fixed reply), a rejected turn, a duplicate id, a cancel attempt, folds into the
    summary and retrieval (2 recent turns), a continue-as-new (after 4 turns) and an end."""
    settings.context_recent_turns, settings.turns_per_run = 2, 4
    sid = f"replay-{uuid.uuid4().hex[:6]}"

    async def send(text: str, status: int = 200, **extra: str) -> None:
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text, **extra})
        assert resp.status_code == status, resp.text

    await send("hello")
    await send("find a CNC machining shop in Ohio")  # no companies here: the fixed reply
    llm.script({"endpoint": "chat", "model": "gpt-4o-mini", "status": 400})
    await send("bad", status=502)
    await send("once", client_message_id="r-1")
    await send("once", client_message_id="r-1")  # replayed: the same turn again
    bogus = "00000000-0000-0000-0000-000000000000"
    assert (await alice.post(f"/sessions/{sid}/turns/{bogus}/cancel")).status_code == 409
    await send("what did I say first?")
    handle = temporal_client.get_workflow_handle(workflow_id(sid))

    async def runs_seen(n: int) -> list[Any]:
        query = f"WorkflowId = '{handle.id}'"
        found = [e async for e in temporal_client.list_workflows(query)]
        assert len(found) >= n  # visibility shows a new run a moment later
        return found

    await assert_eventually(lambda: runs_seen(2), within=30)  # the run continued as new
    await send("and then?")  # in the second run
    await handle.signal(ChatSessionWorkflow.end_session)  # closed runs: whole histories
    await asyncio.wait_for(handle.result(), 60)
    runs = await assert_eventually(lambda: runs_seen(2), within=30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for n, run in enumerate(sorted(runs, key=lambda r: r.start_time)):
        history = await temporal_client.get_workflow_handle(
            handle.id, run_id=run.run_id
        ).fetch_history()
        await replayer().replay_workflow(history)
        (ARTIFACTS / f"session_run_{n + 1}.json").write_text(history.to_json())
    first = await temporal_client.get_workflow_handle(
        handle.id, run_id=min(runs, key=lambda r: r.start_time).run_id
    ).fetch_history()
    kinds = scheduled_activities(first)
    assert "summarize" in kinds and "generate_reply" in kinds
    assert any(
        e.HasField("workflow_execution_continued_as_new_event_attributes") for e in first.events
    )


async def test_a_turn_schedules_only_the_generation_as_a_task(
    temporal_client: Client, worker: Worker, alice: httpx.AsyncClient
) -> None:
    """Loading the session and persisting turns are local activities (markers in the
    history); the generation alone goes through the task queue, with its heartbeats. The
    final stream event rides with persisting the turn: no step of its own."""
    sid = "one-task-per-turn"
    for text in ("first", "second"):
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text})
        assert resp.status_code == 200, resp.text
    history = await temporal_client.get_workflow_handle(workflow_id(sid)).fetch_history()
    assert scheduled_activities(history) == ["generate_reply", "generate_reply"]
    markers = [
        local_activity(e) for e in history.events if e.HasField("marker_recorded_event_attributes")
    ]
    per_turn = ["detect_intent", "persist_turn"]
    assert markers == ["load_session", *per_turn, *per_turn]


async def test_turns_do_not_rearm_the_idle_timer(
    temporal_client: Client, worker: Worker, alice: httpx.AsyncClient
) -> None:
    """A turn that ends does not wake the session's loop: the idle timer is armed once
    for the period, and no timer is cancelled, however many turns run in it."""
    sid = "one-timer-per-period"
    for text in ("first", "second", "third"):
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text})
        assert resp.status_code == 200, resp.text
    history = await temporal_client.get_workflow_handle(workflow_id(sid)).fetch_history()
    started = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    cancelled = [e for e in history.events if e.HasField("timer_canceled_event_attributes")]
    assert len(started) == 1 and not cancelled
    await replayer().replay_workflow(history)


async def test_a_turn_in_the_idle_period_postpones_idleness(
    settings: Settings, temporal_client: Client, worker: Worker, alice: httpx.AsyncClient
) -> None:
    """The timer armed when the run began fires after turns ran: the session waits out
    the rest of the period after its last turn, then is marked idle."""
    settings.inactivity_timeout_minutes = 0.05  # 3 s
    sid = f"idle-after-last-{uuid.uuid4().hex[:6]}"
    for text in ("first", "second"):
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text})
        assert resp.status_code == 200, resp.text
    handle = temporal_client.get_workflow_handle(workflow_id(sid))
    await asyncio.wait_for(handle.result(), 60)  # completes once idle
    history = await handle.fetch_history()

    def at(event: Any) -> float:
        return float(event.event_time.seconds + event.event_time.nanos / 1e9)

    last_turn = max(
        at(e)
        for e in history.events
        if e.HasField("workflow_execution_update_completed_event_attributes")
    )
    [mark_idle] = [
        e
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == "mark_idle"
    ]
    fired = [e for e in history.events if e.HasField("timer_fired_event_attributes")]
    assert len(fired) == 2  # the period's timer, then the rest of the period
    assert at(mark_idle) - last_turn >= 3.0 - 0.1
    await replayer().replay_workflow(history)
