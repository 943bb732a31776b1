"""Determinism: workflow histories replay through temporalio's Replayer against today's
code. `histories/*.json` were recorded from earlier versions of the workflow, so a change
that would break running sessions fails here. New histories recorded by this test are
written to test-artifacts/histories/ (copy them into histories/ when the workflow's
behaviour changes on purpose, in a compatible way)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, Worker

from loadtest.fakes import FakeOpenAIServer
from shared.models import workflow_id
from workflows.chat_session import ChatSessionWorkflow

HISTORIES = Path(__file__).with_name("histories")
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "histories"


def replayer() -> Replayer:
    return Replayer(workflows=[ChatSessionWorkflow], data_converter=pydantic_data_converter)


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


async def test_todays_histories_replay(
    temporal_client: Client, worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    """A session with a normal turn, a rejected one, a duplicate id and a cancel attempt."""
    sid = "replay-me"
    assert (
        await alice.post(f"/sessions/{sid}/messages", json={"text": "hello"})
    ).status_code == 200
    llm.script({"endpoint": "chat", "model": "gpt-4o-mini", "status": 400})
    assert (await alice.post(f"/sessions/{sid}/messages", json={"text": "bad"})).status_code == 502
    body = {"text": "once", "client_message_id": "r-1"}
    assert (await alice.post(f"/sessions/{sid}/messages", json=body)).status_code == 200
    bogus = "00000000-0000-0000-0000-000000000000"
    assert (await alice.post(f"/sessions/{sid}/turns/{bogus}/cancel")).status_code == 409
    handle = temporal_client.get_workflow_handle(workflow_id(sid))
    history = await handle.fetch_history()
    await replayer().replay_workflow(history)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "session_turns.json").write_text(history.to_json())


async def test_a_turn_schedules_only_the_generation_as_a_task(
    temporal_client: Client, worker: Worker, alice: httpx.AsyncClient
) -> None:
    """Loading the session and persisting turns are local activities (markers in the
    history); the generation alone goes through the task queue, with its heartbeats."""
    sid = "one-task-per-turn"
    for text in ("first", "second"):
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text})
        assert resp.status_code == 200, resp.text
    history = await temporal_client.get_workflow_handle(workflow_id(sid)).fetch_history()
    assert scheduled_activities(history) == ["generate_reply", "generate_reply"]
    markers = [e for e in history.events if e.HasField("marker_recorded_event_attributes")]
    # load_session, then per turn detect_intent, persist_turn, the final stream event; and
    # the patch markers.
    assert len(markers) >= 1 + 2 * 3


async def test_a_turn_rearms_the_idle_timer_once(
    temporal_client: Client, worker: Worker, alice: httpx.AsyncClient
) -> None:
    """The session's loop wakes when a turn ends (to restart its idle timer), not also
    when a message arrives: each wake cancels one timer and starts another."""
    sid = "one-timer-per-turn"
    for text in ("first", "second", "third"):
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text})
        assert resp.status_code == 200, resp.text
    history = await temporal_client.get_workflow_handle(workflow_id(sid)).fetch_history()
    started = [e for e in history.events if e.HasField("timer_started_event_attributes")]
    assert len(started) == 1 + 3  # the first wait, then one per turn
    await replayer().replay_workflow(history)
