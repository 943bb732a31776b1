"""Hostile edges of tool-calling turns with durable approvals: what a client gets from
POST .../approvals/{call_id}, GET .../approvals and a waiting JSON POST when it sends odd
input, races itself, cancels, queues behind a waiting turn, or the model asks oddly.

Every answer is a typed error with the right status (never a 500), and nothing is lost or
done twice."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.llm import build_openai_client
from chatbot.client import Event
from chatbot.errors import Conflict
from chatbot.turns import temporal_call
from loadtest.fakes import FakeOpenAIServer, ToolCallStep
from shared.config import Settings
from shared.db.engine import engine_from_settings
from shared.models import workflow_id
from shared.redis import redis_from_settings
from shared.temporal_client import connect_temporal
from shared.tool_calls import ApprovalDecision, ApprovalOutcome
from tests.support import assert_eventually
from tests.workflows.tool_support import (
    answer,
    calls,
    decide,
    enable_tool_calling,
    events,
    model_requests,
    start_turn,
    tickets,
    until,
)
from workers import versioning
from workers.main import build_worker
from workflows.chat_session import ChatSessionWorkflow

pytestmark = pytest.mark.timeout(120)

WAIT = 30.0  # the longest any single step of these tests may take
ACCEPTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED


@pytest.fixture(autouse=True)
def _tool_calling(settings: Settings) -> None:
    """Before the worker and the gateway are built from these settings."""
    enable_tool_calling(settings, approval_timeout=60)


def sid(prefix: str) -> str:
    """A session id of this run alone: Redis (idempotency keys, streams) is shared."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def ticket(title: str, *, id: str) -> ToolCallStep:
    return ToolCallStep(id=id, name="create_ticket", arguments={"title": title})


async def all_events(
    client: httpx.AsyncClient, turn_id: str, *, within: float = WAIT
) -> list[Event]:
    """The turn's events from the start up to its end (final or error)."""
    return await until(client, turn_id, "final", within=within)


async def final_result(client: httpx.AsyncClient, turn_id: str) -> dict[str, Any]:
    seen = await all_events(client, turn_id)
    assert seen and seen[-1].type == "final", [e.type for e in seen]
    return dict(seen[-1].data["result"])


def assert_typed_error(resp: httpx.Response, statuses: set[int]) -> None:
    assert resp.status_code in statuses, (resp.status_code, resp.text)
    body = resp.json()
    assert isinstance(body["error"]["code"], str) and body["error"]["message"], body


async def escalated(settings: Settings, session: str) -> Any:
    engine = engine_from_settings(settings)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(
                text("SELECT escalated_at FROM sessions WHERE id = :s"), {"s": session}
            )
    finally:
        await engine.dispose()


# --- hostile input to the decision endpoint --------------------------------------------


async def test_hostile_decisions_get_typed_errors_and_the_real_one_still_counts(
    worker: Worker,
    alice: httpx.AsyncClient,
    bob: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    s = sid("hx")
    llm.script(
        calls(ToolCallStep(id="call_h1", name="create_ticket", arguments={"title": "hostile"})),
        answer("Opened."),
    )
    turn_id = await start_turn(alice, s, "Open a ticket")
    await until(alice, turn_id, "approval_required")
    base = f"/sessions/{s}/turns/{turn_id}/approvals"
    ok = {"decision": "approve"}
    json_type = {"Content-Type": "application/json"}
    probes: list[tuple[str, str, dict[str, Any], set[int]]] = [
        # call ids the path refuses, or no call waits on
        ("odd chars", f"{base}/call$h1", {"json": ok}, {422}),
        ("space", f"{base}/call%20h1", {"json": ok}, {422}),
        ("NUL in id", f"{base}/call%00h1", {"json": ok}, {422}),
        ("unicode", f"{base}/c%C3%A4ll_h1", {"json": ok}, {422}),
        ("201 chars", f"{base}/{'c' * 201}", {"json": ok}, {422}),
        ("200 chars", f"{base}/{'c' * 200}", {"json": ok}, {404}),
        ("encoded slash", f"{base}/call%2Fh1", {"json": ok}, {404}),
        ("case differs", f"{base}/CALL_H1", {"json": ok}, {404}),
        # notes that cannot be stored, or are too long
        ("note NUL", f"{base}/call_h1", {"json": {**ok, "note": "a\x00b"}}, {422}),
        (
            "note lone surrogate",
            f"{base}/call_h1",
            {"content": b'{"decision": "approve", "note": "\\ud800"}', "headers": json_type},
            {422},
        ),
        ("note 10 kB", f"{base}/call_h1", {"json": {**ok, "note": "n" * 10_000}}, {422}),
        ("note not text", f"{base}/call_h1", {"json": {**ok, "note": 5}}, {422}),
        # decisions other than approve/deny
        ("APPROVE", f"{base}/call_h1", {"json": {"decision": "APPROVE"}}, {422}),
        ("maybe", f"{base}/call_h1", {"json": {"decision": "maybe"}}, {422}),
        ("null", f"{base}/call_h1", {"json": {"decision": None}}, {422}),
        ("true", f"{base}/call_h1", {"json": {"decision": True}}, {422}),
        ("list", f"{base}/call_h1", {"json": {"decision": ["approve"]}}, {422}),
        ("missing", f"{base}/call_h1", {"json": {"note": "x"}}, {422}),
        # extra fields, e.g. a forged decider
        ("extra field", f"{base}/call_h1", {"json": {**ok, "decided_by": "bob"}}, {422}),
        # bodies that are not a JSON object
        ("not JSON", f"{base}/call_h1", {"content": b"approve", "headers": json_type}, {422}),
        ("empty body", f"{base}/call_h1", {"content": b"", "headers": json_type}, {422}),
        ("JSON string", f"{base}/call_h1", {"json": "approve"}, {422}),
        ("JSON array", f"{base}/call_h1", {"json": [ok]}, {422}),
        (
            "truncated",
            f"{base}/call_h1",
            {"content": b'{"decision": "appr', "headers": json_type},
            {422},
        ),
        (
            "text/plain",
            f"{base}/call_h1",
            {"content": json.dumps(ok).encode(), "headers": {"Content-Type": "text/plain"}},
            {415, 422},
        ),
        ("form", f"{base}/call_h1", {"data": ok}, {415, 422}),
        # a turn id that is not a UUID
        ("turn not uuid", f"/sessions/{s}/turns/not-a-uuid/approvals/call_h1", {"json": ok}, {422}),
        (
            "turn upper uuid",
            f"/sessions/{s}/turns/{turn_id.upper()}/approvals/call_h1",
            {"json": ok},
            {404, 422},
        ),
        (
            "unknown session",
            f"/sessions/{sid('none')}/turns/{turn_id}/approvals/call_h1",
            {"json": ok},
            {404},
        ),
        ("bad session id", f"/sessions/-x/turns/{turn_id}/approvals/call_h1", {"json": ok}, {422}),
    ]
    failures = []
    for what, path, kwargs, statuses in probes:
        resp = await alice.post(path, **kwargs)
        try:
            assert_typed_error(resp, statuses)
        except (AssertionError, ValueError, KeyError):
            failures.append((what, resp.status_code, resp.text[:200]))
    # another user's session is not found, for deciding and for listing
    for resp in (
        await bob.post(f"{base}/call_h1", json=ok),
        await bob.post(f"{base}/call_h1", json={"decision": "deny"}),
        await bob.get(f"/sessions/{s}/approvals"),
    ):
        try:
            assert_typed_error(resp, {404})
        except (AssertionError, ValueError, KeyError):
            failures.append(("bob", resp.status_code, resp.text[:200]))
    assert failures == []
    # None of that decided anything: the call still waits, as it was asked.
    listed = (await alice.get(f"/sessions/{s}/approvals")).json()["items"]
    assert [(p["turn_id"], p["call"]["id"]) for p in listed] == [(turn_id, "call_h1")]

    # The real decision, sent chunked, with a note in any script: it counts, once.
    note = "ok ✓ 日本語 \U0001f600"

    async def chunked() -> AsyncIterator[bytes]:
        raw = json.dumps({"decision": "approve", "note": note}).encode()
        for i in range(0, len(raw), 7):
            yield raw[i : i + 7]

    resp = await alice.post(f"{base}/call_h1", content=chunked(), headers=json_type)
    assert resp.status_code == 200, resp.text
    assert resp.json()["note"] == note and resp.json()["repeated"] is False
    result = await final_result(alice, turn_id)
    [call] = result["tool_calls"]
    assert call["status"] == "ok"
    assert call["approval"] == {
        "decision": "approve",
        "note": note,
        "decided_by": "alice",
        "timed_out": False,
    }
    assert len(await tickets(settings, s)) == 1


async def test_decisions_for_sessions_without_a_running_workflow(
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    temporal_client: Client,
) -> None:
    """A session that never ran a turn, and one whose workflow ended: nothing waits, so
    the list is empty (200) and a decision is refused (409/404), never a 500."""
    never = sid("never")
    created = await alice.post("/sessions", json={"id": never})
    assert created.status_code == 201, created.text
    listed = await alice.get(f"/sessions/{never}/approvals")
    assert listed.status_code == 200 and listed.json() == {"items": []}
    resp = await decide(alice, never, str(uuid.uuid4()), "call_x", "approve")
    assert_typed_error(resp, {404, 409})

    ended = sid("ended")
    llm.script(answer("Hi."))
    done = await alice.post(f"/sessions/{ended}/messages", json={"text": "hello"})
    assert done.status_code == 200, done.text
    handle = temporal_client.get_workflow_handle(workflow_id(ended))
    await handle.signal(ChatSessionWorkflow.end_session)
    async with asyncio.timeout(WAIT):
        await handle.result()
    listed = await alice.get(f"/sessions/{ended}/approvals")
    assert listed.status_code == 200 and listed.json() == {"items": []}
    resp = await decide(alice, ended, done.json()["turn_id"], "call_x", "approve")
    assert_typed_error(resp, {404, 409})


# --- concurrency --------------------------------------------------------------------------


async def test_approve_and_deny_at_the_same_instant_record_one_outcome(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    s = sid("race")
    llm.script(calls(ticket("race", id="call_r")), answer("Done."))
    turn_id = await start_turn(alice, s, "Open a ticket")
    await until(alice, turn_id, "approval_required")
    approve, deny = await asyncio.gather(
        decide(alice, s, turn_id, "call_r", "approve"),
        decide(alice, s, turn_id, "call_r", "deny"),
    )
    assert {approve.status_code, deny.status_code} <= {200, 409}, (approve.text, deny.text)
    winners = [r for r in (approve, deny) if r.status_code == 200]
    assert winners, (approve.text, deny.text)
    result = await final_result(alice, turn_id)
    [call] = result["tool_calls"]
    recorded = call["approval"]["decision"]
    # Whoever got a 200 was told the decision that was recorded, never another one.
    assert all(r.json()["decision"] == recorded for r in winners)
    assert [r.json()["repeated"] for r in winners].count(False) == 1
    assert call["status"] == ("ok" if recorded == "approve" else "denied")
    assert len(await tickets(settings, s)) == (1 if recorded == "approve" else 0)
    # After the fact, the loser's decision is a conflict and the winner's is repeated.
    loser = "deny" if recorded == "approve" else "approve"
    assert (await decide(alice, s, turn_id, "call_r", loser)).status_code == 409
    again = await decide(alice, s, turn_id, "call_r", recorded)
    assert again.status_code == 200 and again.json()["repeated"] is True


async def test_ten_identical_approvals_at_once_run_the_call_once(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    s = sid("ten")
    llm.script(calls(ticket("ten", id="call_10")), answer("Done."))
    turn_id = await start_turn(alice, s, "Open a ticket")
    await until(alice, turn_id, "approval_required")
    answers = await asyncio.gather(
        *(decide(alice, s, turn_id, "call_10", "approve") for _ in range(10))
    )
    assert [r.status_code for r in answers] == [200] * 10, [r.text for r in answers]
    assert [r.json()["repeated"] for r in answers].count(False) == 1
    seen = await all_events(alice, turn_id)
    kinds = [e.type for e in seen if e.type != "token"]
    assert kinds.count("tool_result") == 1 and kinds.count("final") == 1, kinds
    assert seen[-1].type == "final"
    [call] = seen[-1].data["result"]["tool_calls"]
    assert call["status"] == "ok"
    assert len(await tickets(settings, s)) == 1


@contextlib.asynccontextmanager
async def own_worker(settings: Settings) -> AsyncIterator[Worker]:
    """A worker as the `worker` fixture builds it, that the test can stop and start."""
    temporal = await connect_temporal(settings)
    redis_client = redis_from_settings(settings)
    engine = engine_from_settings(settings)
    llm_client = build_openai_client(settings)
    try:
        w = build_worker(
            temporal, settings, redis=redis_client, engine=engine, llm_client=llm_client
        )
        async with w:
            await versioning.promote(temporal, settings, only_if_none=True)
            yield w
    finally:
        await llm_client.close()
        await redis_client.aclose()
        await engine.dispose()


async def admitted(client: Client, session: str, update_id: str) -> bool:
    """Whether Temporal holds the update (admitted, waiting for a worker to accept it)."""
    try:
        await client.workflow_service.poll_workflow_execution_update(
            PollWorkflowExecutionUpdateRequest(
                namespace=client.namespace,
                update_ref=UpdateRef(
                    workflow_execution=WorkflowExecution(workflow_id=workflow_id(session)),
                    update_id=update_id,
                ),
                identity="hostile-test",
                wait_policy=WaitPolicy(lifecycle_stage=ACCEPTED),
            ),
            timeout=timedelta(seconds=0.5),
        )
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return True  # it waits to be accepted: the poll timed out
        raise
    return True


async def test_approve_and_deny_delivered_together_one_is_a_conflict(
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
    temporal_client: Client,
) -> None:
    """Both decisions reach Temporal while no worker runs, so the worker gets them at the
    same moment: one wins, the other is a conflict (the update handler is synchronous,
    so each validator sees the decision before it)."""
    s = sid("wft")
    llm.script(calls(ticket("race", id="call_w")), answer("Done."))
    async with own_worker(settings):
        turn_id = await start_turn(alice, s, "Open a ticket")
        await until(alice, turn_id, "approval_required")
    # No worker: both decisions wait in Temporal, to be delivered together.
    handle = temporal_client.get_workflow_handle(workflow_id(s))
    sent: dict[str, asyncio.Future[Any]] = {}
    for update_id, decision in (("approve-1", "approve"), ("deny-1", "deny")):
        req = ApprovalDecision(
            turn_id=turn_id, call_id="call_w", decision=decision, decided_by="alice"
        )
        # as the gateway sends it and maps its errors (chatbot/turns.py)
        sent[update_id] = asyncio.ensure_future(
            temporal_call(
                handle.execute_update(ChatSessionWorkflow.decide_approval, req, id=update_id)
            )
        )
    try:
        async with asyncio.timeout(WAIT):
            for update_id in sent:
                while not await admitted(temporal_client, s, update_id):
                    await asyncio.wait({sent[update_id]}, timeout=0.1)
        async with own_worker(settings):
            async with asyncio.timeout(WAIT):
                await asyncio.wait(sent.values())
            result = await final_result(alice, turn_id)
    finally:
        for task in sent.values():
            task.cancel()
    outcomes = {k: (t.exception() or t.result()) for k, t in sent.items()}
    [call] = result["tool_calls"]
    recorded = call["approval"]["decision"]  # whichever was delivered first
    winner, loser = ("approve-1", "deny-1") if recorded == "approve" else ("deny-1", "approve-1")
    assert isinstance(outcomes[winner], ApprovalOutcome), outcomes
    assert outcomes[winner].decision == recorded and outcomes[winner].repeated is False
    # The other decision is refused (409), as it is when it comes a moment later.
    assert isinstance(outcomes[loser], Conflict), outcomes
    assert call["status"] == ("ok" if recorded == "approve" else "denied")
    assert len(await tickets(settings, s)) == (1 if recorded == "approve" else 0)


# Not strict: the duplicate depends on timing (it showed in most runs on a loaded
# machine, 10 decisions in parallel, but not all), so it is tried on a few turns.
async def test_parallel_decisions_do_not_duplicate_the_turns_events(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    s = sid("dupev")
    for attempt in range(3):
        call_id = f"call_p{attempt}"
        llm.script(calls(ticket("ten", id=call_id)), answer("Done."))
        turn_id = await start_turn(alice, s, f"Open a ticket ({attempt})")
        await until(alice, turn_id, "approval_required")
        answers = await asyncio.gather(
            *(decide(alice, s, turn_id, call_id, "approve") for _ in range(10))
        )
        assert [r.status_code for r in answers] == [200] * 10
        seen = await all_events(alice, turn_id)
        kinds = [e.type for e in seen if e.type != "token"]
        assert kinds == [
            "tool_call",
            "approval_required",
            "approval_decided",
            "tool_result",
            "final",
        ], (attempt, kinds)


# --- several calls, cancel, queued turns --------------------------------------------------


async def test_two_calls_in_one_round_approve_one_deny_the_other(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    s = sid("two")
    llm.script(
        calls(
            ToolCallStep(id="call_t", name="create_ticket", arguments={"title": "both"}),
            ToolCallStep(id="call_e", name="escalate_to_human", arguments={"reason": "both"}),
        ),
        answer("One opened, one not."),
    )
    turn_id = await start_turn(alice, s, "Open a ticket and get me a human")

    async def both_asked() -> list[Event]:
        seen: list[Event] = []
        async for event in events(alice, turn_id):
            seen.append(event)
            if [e.type for e in seen].count("approval_required") == 2:
                return seen
            assert event.type not in ("final", "error"), event
        return seen

    async with asyncio.timeout(WAIT):
        await both_asked()
    listed = (await alice.get(f"/sessions/{s}/approvals")).json()["items"]
    assert sorted(p["call"]["id"] for p in listed) == ["call_e", "call_t"]
    assert (await decide(alice, s, turn_id, "call_t", "approve")).status_code == 200
    listed = (await alice.get(f"/sessions/{s}/approvals")).json()["items"]
    assert [p["call"]["id"] for p in listed] == ["call_e"]
    denied = await decide(alice, s, turn_id, "call_e", "deny", "no humans today")
    assert denied.status_code == 200, denied.text
    seen = await all_events(alice, turn_id)
    assert seen[-1].type == "final"
    result = seen[-1].data["result"]
    by_id = {c["id"]: c for c in result["tool_calls"]}
    assert by_id["call_t"]["status"] == "ok"
    assert by_id["call_t"]["approval"]["decision"] == "approve"
    assert by_id["call_e"]["status"] == "denied"
    assert by_id["call_e"]["approval"]["note"] == "no humans today"
    # The events agree with the result: each call asked once, decided once, ended once,
    # its last event saying what the result says.
    for call_id, call in by_id.items():
        mine = [e for e in seen if ((e.data or {}).get("call") or {}).get("id") == call_id]
        kinds = [e.type for e in mine]
        assert kinds == ["tool_call", "approval_required", "approval_decided", "tool_result"]
        assert mine[-1].data["call"]["status"] == call["status"]
        assert mine[-1].data["call"]["approval"] == call["approval"]
    assert len(await tickets(settings, s)) == 1
    assert await escalated(settings, s) is None
    told = {
        m["tool_call_id"]: m["content"]
        for m in model_requests(llm)[1]["messages"]
        if m["role"] == "tool"
    }
    assert "Ticket #" in told["call_t"] and "no humans today" in told["call_e"]
    assert (await alice.get(f"/sessions/{s}/approvals")).json()["items"] == []


async def test_a_decision_after_cancel_is_a_conflict(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    s = sid("cx")
    llm.script(calls(ticket("cancel me", id="call_c")), answer("unused"))
    turn_id = await start_turn(alice, s, "Open a ticket")
    await until(alice, turn_id, "approval_required")
    cancelled = await alice.post(f"/sessions/{s}/turns/{turn_id}/cancel")
    assert cancelled.status_code == 204, cancelled.text
    # The call is no longer waiting: the client that saw it asked is told it moved on.
    right_after = await decide(alice, s, turn_id, "call_c", "approve")
    result = await final_result(alice, turn_id)
    assert result["status"] == "cancelled"
    assert [c["status"] for c in result["tool_calls"]] == ["cancelled"]
    after_end = [await decide(alice, s, turn_id, "call_c", d) for d in ("approve", "deny")]
    for resp in after_end:
        assert_typed_error(resp, {409})
    assert await tickets(settings, s) == []
    assert_typed_error(right_after, {409})


async def test_a_message_sent_while_a_turn_waits_runs_after_it(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    s = sid("q")
    llm.script(calls(ticket("first", id="call_q1")), answer("First done."), answer("Second done."))
    first = await start_turn(alice, s, "Open a ticket")
    await until(alice, first, "approval_required")
    second = await alice.post(f"/sessions/{s}/messages?wait=false", json={"text": "And then?"})
    assert second.status_code == 202, second.text
    second_id = second.json()["turn_id"]
    # Only the running turn's call is listed; the queued turn waits on nothing yet.
    listed = (await alice.get(f"/sessions/{s}/approvals")).json()["items"]
    assert [(p["turn_id"], p["call"]["id"]) for p in listed] == [(first, "call_q1")]
    # A decision for the queued turn's (not yet asked) call is not a 500.
    assert_typed_error(await decide(alice, s, second_id, "call_q1", "approve"), {404, 409})
    assert (await decide(alice, s, first, "call_q1", "approve")).status_code == 200
    first_result = await final_result(alice, first)
    second_result = await final_result(alice, second_id)
    assert first_result["reply"] == "First done."
    assert second_result["reply"] == "Second done."
    page = (await alice.get(f"/sessions/{s}/messages")).json()["items"]
    assert [m["content"] for m in page] == [
        "Open a ticket",
        "First done.",
        "And then?",
        "Second done.",
    ]
    assert len(await tickets(settings, s)) == 1


async def test_a_waiting_json_request_queued_behind_a_paused_turn_is_not_held(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    s = sid("qj")
    llm.script(calls(ticket("first", id="call_j")), answer("First done."), answer("Second."))
    first = await start_turn(alice, s, "Open a ticket")
    await until(alice, first, "approval_required")
    queued = asyncio.ensure_future(
        alice.post(f"/sessions/{s}/messages", json={"text": "Still there?"})
    )
    try:
        # Nobody decides for a minute: the queued request should not wait for that.
        done, _ = await asyncio.wait({queued}, timeout=5)
        answered = queued in done
    finally:
        assert (await decide(alice, s, first, "call_j", "approve")).status_code == 200
        async with asyncio.timeout(WAIT):
            resp = await queued
    assert answered, "the queued JSON request was still held after 5 s"
    assert resp.status_code in (200, 202)


# --- the model asks oddly -----------------------------------------------------------------


async def test_invalid_arguments_to_a_tool_needing_approval_ask_nobody(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    s = sid("bad")
    llm.script(
        calls(
            ToolCallStep(name="create_ticket", arguments={"title": "t", "priority": "bogus"}),
            ToolCallStep(name="create_ticket", arguments="{not json"),
            ToolCallStep(name="create_ticket", arguments="[1, 2]"),
            ToolCallStep(name="create_ticket", arguments={"title": "t", "assignee": "root"}),
            ToolCallStep(name="escalate_to_human", arguments={}),
        ),
        answer("I could not do that."),
    )
    turn_id = await start_turn(alice, s, "Open tickets")
    seen = await all_events(alice, turn_id)
    kinds = [e.type for e in seen if e.type != "token"]
    assert "approval_required" not in kinds and kinds[-1] == "final", kinds
    result = seen[-1].data["result"]
    assert result["status"] == "complete"
    assert [c["status"] for c in result["tool_calls"]] == ["error"] * 5
    assert not any(c["needs_approval"] for c in result["tool_calls"])
    told = [m["content"] for m in model_requests(llm)[1]["messages"] if m["role"] == "tool"]
    assert "priority" in told[0]
    assert "not valid JSON" in told[1]
    assert "JSON object" in told[2]
    assert "assignee" in told[3]
    assert "reason" in told[4]
    assert await tickets(settings, s) == []
    assert await escalated(settings, s) is None


async def test_a_call_id_reused_in_a_later_round_is_asked_about_again(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    s = sid("reuse")
    llm.script(
        calls(ToolCallStep(id="call_0", name="create_ticket", arguments={"title": "first"})),
        calls(ToolCallStep(id="call_0", name="create_ticket", arguments={"title": "second"})),
        answer("Done."),
    )
    turn_id = await start_turn(alice, s, "Open a ticket")
    await until(alice, turn_id, "approval_required")
    assert (await decide(alice, s, turn_id, "call_0", "approve")).status_code == 200
    asked: list[str] = []
    async with asyncio.timeout(WAIT):
        async for event in events(alice, turn_id):
            if event.type == "approval_required":
                asked.append(event.data["call"]["id"])
                if len(asked) == 2:  # the second round's call: say no to it
                    resp = await decide(alice, s, turn_id, asked[1], "deny")
                    assert resp.status_code == 200, resp.text
            if event.type in ("final", "error"):
                break
    titles = [r.title for r in await tickets(settings, s)]
    assert len(asked) == 2, f"the second call was not asked about; tickets opened: {titles}"
    assert asked[0] == "call_0" and asked[1] != "call_0"  # an id of its own in this API
    assert titles == ["first"]


@pytest.fixture
def _collect_garbage_last() -> Iterator[None]:
    """Requested before the worker, so it runs after the worker stopped: the coroutines of
    a workflow instance the worker dropped are collected (and what they raise reported)
    within this test, not in a later one."""
    yield
    gc.collect()


async def test_two_calls_with_one_id_in_a_round_do_not_hang_the_turn(
    _collect_garbage_last: None,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
    temporal_client: Client,
) -> None:
    s = sid("dup")
    llm.script(
        calls(
            ToolCallStep(id="call_d", name="create_ticket", arguments={"title": "one"}),
            ToolCallStep(id="call_d", name="create_ticket", arguments={"title": "two"}),
        ),
        answer("Done."),
    )
    turn_id = await start_turn(alice, s, "Open two tickets")
    handle = temporal_client.get_workflow_handle(workflow_id(s))

    async def both_listed() -> list[str]:
        ids = [
            p["call"]["id"] for p in (await alice.get(f"/sessions/{s}/approvals")).json()["items"]
        ]
        assert len(ids) == 2
        return ids

    ids = await assert_eventually(both_listed, within=WAIT)
    assert sorted(ids) == ["call_1", "call_d"]  # the repeated id got one of its own

    async def deny_both() -> list[httpx.Response]:
        return list(await asyncio.gather(*(decide(alice, s, turn_id, i, "deny") for i in ids)))

    decided = asyncio.ensure_future(deny_both())
    try:
        async with asyncio.timeout(WAIT):
            while not decided.done():
                history = await handle.fetch_history()
                failed = [
                    e.workflow_task_failed_event_attributes.failure.message
                    for e in history.events
                    if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
                ]
                assert failed == [], f"the session's workflow task fails: {failed[0]}"
                await asyncio.wait({decided}, timeout=0.5)
        assert [r.status_code for r in decided.result()] == [200, 200]
        result = await final_result(alice, turn_id)
    finally:
        decided.cancel()
        with contextlib.suppress(Exception):  # stop the failing task's retries
            await handle.terminate(reason="test over")
    assert [c["status"] for c in result["tool_calls"]] == ["denied", "denied"]
    assert await tickets(settings, s) == []


@pytest.mark.parametrize("call_id", ["call/1", "call 1"])
async def test_any_call_id_the_model_gives_can_be_decided(
    call_id: str,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    s = sid("cid")
    llm.script(
        calls(ToolCallStep(id=call_id, name="create_ticket", arguments={"title": "odd id"})),
        answer("Done."),
    )
    turn_id = await start_turn(alice, s, "Open a ticket")
    await until(alice, turn_id, "approval_required")
    listed = await alice.get(f"/sessions/{s}/approvals")
    assert listed.status_code == 200, listed.text
    [pending] = listed.json()["items"]
    decided = await alice.post(pending["decide_url"], json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    result = await final_result(alice, turn_id)
    assert [c["status"] for c in result["tool_calls"]] == ["ok"]
    assert len(await tickets(settings, s)) == 1


# --- a waiting JSON POST ------------------------------------------------------------------


async def test_a_paused_json_post_retried_and_reused_with_another_text(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    s = sid("js")
    llm.script(calls(ticket("badge", id="call_b")), answer("Opened."), answer("Other."))
    body = {"text": "I lost my badge, open a ticket", "client_message_id": "m-1"}
    first = await alice.post(f"/sessions/{s}/messages", json=body)
    assert first.status_code == 202, first.text
    accepted = first.json()
    [pending] = accepted["pending_approvals"]
    assert pending["call"]["id"] == "call_b" and pending["turn_id"] == accepted["turn_id"]
    # The same request again, waiting and not: the same turn, the same pending call.
    again = await alice.post(f"/sessions/{s}/messages", json=body)
    assert again.status_code == 202, again.text
    assert again.json()["turn_id"] == accepted["turn_id"]
    assert again.json()["pending_approvals"] == [pending]
    no_wait = await alice.post(f"/sessions/{s}/messages?wait=false", json=body)
    assert no_wait.status_code == 202 and no_wait.json()["turn_id"] == accepted["turn_id"]
    # The same client_message_id with another text: a conflict, while it waits...
    other = {**body, "text": "something else"}
    conflict = await alice.post(f"/sessions/{s}/messages", json=other)
    assert_typed_error(conflict, {409})
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert (await decide(alice, s, accepted["turn_id"], "call_b", "approve")).status_code == 200
    done = await alice.post(f"/sessions/{s}/messages", json=body)
    assert done.status_code == 200, done.text
    assert done.json()["reply"] == "Opened." and done.json()["turn_id"] == accepted["turn_id"]
    # ...and once it is stored.
    conflict = await alice.post(f"/sessions/{s}/messages", json=other)
    assert_typed_error(conflict, {409})
    assert conflict.json()["error"]["code"] == "idempotency_conflict"
    assert len(await tickets(settings, s)) == 1
    page = (await alice.get(f"/sessions/{s}/messages")).json()["items"]
    assert [m["content"] for m in page] == [body["text"], "Opened."]
