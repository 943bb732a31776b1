"""Tool-calling turns end to end: the fake model asks for calls (streamed `tool_calls`
deltas, as OpenAI sends them), the session workflow runs them as activities, in
parallel, bounded by TOOL_MAX_STEPS, and waits durably for a person's approval before a
tool with side effects runs."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest
from sqlalchemy import text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from chatbot.companies import SAMPLE_FILE, import_companies
from loadtest.fakes import FakeOpenAIServer, Step, ToolCallStep
from shared.config import Settings
from shared.db.engine import engine_from_settings
from shared.models import workflow_id
from tests.workflows.tool_support import (
    answer,
    calls,
    decide,
    enable_tool_calling,
    model_requests,
    start_turn,
    tickets,
    until,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(autouse=True)
def _tool_calling(settings: Settings, request: pytest.FixtureRequest) -> None:
    """Before the worker and the gateway are built from these settings."""
    marker = request.node.get_closest_marker("approval_timeout")
    enable_tool_calling(settings, approval_timeout=marker.args[0] if marker else 60)


@pytest.fixture
async def sample_companies(settings: Settings) -> None:
    engine = engine_from_settings(settings)
    await import_companies(engine, SAMPLE_FILE, embedder=None, source="sample")
    await engine.dispose()


async def test_two_calls_run_in_parallel_and_their_results_reach_the_model(
    sample_companies: None,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    temporal_client: Client,
) -> None:
    llm.script(
        calls(
            ToolCallStep(name="search_companies", arguments={"query": "PCB assembly"}),
            ToolCallStep(name="search_web", arguments={"query": "PCB assembly news"}),
        ),
        # The search model answers slowly: the company search ends while it runs.
        Step(endpoint="chat", model="gpt-4o-search-preview", reply="Prices rose.", latency_ms=800),
        answer("Buckeye Circuit Works fits; prices rose [1]."),
    )
    turn_id = await start_turn(alice, "tc1", "PCB assemblers, and any news on PCB prices?")
    seen = await until(alice, turn_id, "final")
    kinds = [e.type for e in seen if e.type != "token"]
    assert kinds.count("tool_call") == 2 and kinds.count("tool_result") == 2
    assert kinds[-1] == "final"
    result = seen[-1].data["result"]
    assert result["status"] == "complete"
    assert result["reply"] == "Buckeye Circuit Works fits; prices rose [1]."
    by_name = {c["name"]: c for c in result["tool_calls"]}
    assert by_name["search_companies"]["status"] == "ok"
    assert by_name["search_web"]["status"] == "ok"
    assert {c["index"] for c in result["tool_calls"]} == {0, 1}
    assert {c["idempotency_key"] for c in result["tool_calls"]} == {f"{turn_id}:0", f"{turn_id}:1"}
    # Their results are shown as the router's searches are: companies and sources.
    assert "Buckeye Circuit Works" in result["findings"]
    assert [r["tool"] for r in result["tool_results"]] == ["company_search", "web_search"]
    # The second round sent the model its own calls and both results.
    first, second = model_requests(llm)
    assert {t["function"]["name"] for t in first["tools"]} >= {"search_companies", "create_ticket"}
    asked = second["messages"][-3]
    assert asked["role"] == "assistant" and len(asked["tool_calls"]) == 2
    results = {m["tool_call_id"]: m["content"] for m in second["messages"][-2:]}
    assert "Buckeye Circuit Works" in results[by_name["search_companies"]["id"]]
    assert "Prices rose." in results[by_name["search_web"]["id"]]
    # Parallel: both activities were scheduled before either completed.
    history = await temporal_client.get_workflow_handle(workflow_id("tc1")).fetch_history()
    order = [
        e.event_type
        for e in history.events
        if e.event_type
        in (
            EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
            EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        )
    ]
    scheduled, completed = (
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
        EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    )
    # model round 1, then both tools scheduled before either completed, then round 2
    assert order[:6] == [scheduled, completed, scheduled, scheduled, completed, completed], order
    # The stored turn holds the calls too.
    history_page = (await alice.get("/sessions/tc1/messages")).json()
    stored = history_page["items"][-1]["tool_data"]["tool_calls"]
    assert [c["name"] for c in stored] == [c["name"] for c in result["tool_calls"]]


async def test_the_step_bound_makes_the_model_answer_with_what_it_has(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    step = calls(ToolCallStep(name="search_web", arguments={"query": "weather"}))
    llm.script(step, step, step, answer("Here is what I found."))
    resp = await alice.post("/sessions/tc2/messages", json={"text": "Weather in Lisbon?"})
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["reply"] == "Here is what I found."
    assert len(result["tool_calls"]) == 3  # TOOL_MAX_STEPS rounds of calls
    rounds = model_requests(llm)
    assert len(rounds) == 4
    assert [r.get("tool_choice") for r in rounds] == [None, None, None, "none"]


async def test_tool_errors_reach_the_model_and_the_turn_goes_on(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.script(
        calls(
            ToolCallStep(name="search_companies", arguments={"location": "Ohio"}),  # no query
            ToolCallStep(name="send_email", arguments={"to": "x"}),  # no such tool
            ToolCallStep(name="search_web", arguments="{not json"),
            ToolCallStep(name="create_ticket", arguments={"title": "t", "priority": "whenever"}),
        ),
        answer("Sorry, I could not look that up."),
    )
    resp = await alice.post("/sessions/tc3/messages", json={"text": "Find suppliers"})
    assert resp.status_code == 200, resp.text
    result = resp.json()
    assert result["status"] == "complete"
    assert [c["status"] for c in result["tool_calls"]] == ["error"] * 4
    told = [m["content"] for m in model_requests(llm)[1]["messages"] if m["role"] == "tool"]
    assert "query" in told[0] and "Field required" in told[0]
    assert "no tool named 'send_email'" in told[1]
    assert "not valid JSON" in told[2]
    assert "priority" in told[3]
    # A call with invalid arguments never asks for approval.
    assert not any(c["needs_approval"] for c in result["tool_calls"])


async def test_a_failing_tool_is_an_error_the_model_sees(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.script(
        calls(ToolCallStep(name="search_web", arguments={"query": "news"})),
        Step(endpoint="chat", model="gpt-4o-search-preview", status=400, message="bad query"),
        answer("The search failed."),
    )
    resp = await alice.post("/sessions/tc4/messages", json={"text": "Any news?"})
    assert resp.status_code == 200, resp.text
    [call] = resp.json()["tool_calls"]
    assert call["status"] == "error" and "bad query" in call["content"]
    told = [m["content"] for m in model_requests(llm)[1]["messages"] if m["role"] == "tool"]
    assert "bad query" in told[0]


async def test_approve_runs_the_call_once(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    ticket = {"title": "Printer on fire", "priority": "urgent"}
    llm.script(
        calls(ToolCallStep(id="call_t1", name="create_ticket", arguments=ticket)),
        answer("Ticket opened."),
    )
    turn_id = await start_turn(alice, "ap1", "Please open a ticket: the printer is on fire")
    seen = await until(alice, turn_id, "approval_required")
    request = seen[-1]
    assert request.type == "approval_required"
    assert request.data["call"]["name"] == "create_ticket"
    assert request.data["call"]["arguments"]["title"] == "Printer on fire"
    assert await tickets(settings, "ap1") == []  # nothing ran before the decision
    state = await alice.get("/sessions/ap1")
    assert state.status_code == 200
    resp = await decide(alice, "ap1", turn_id, "call_t1", "approve", "go")
    assert resp.status_code == 200, resp.text
    assert resp.json()["decision"] == "approve" and resp.json()["repeated"] is False
    again = await decide(alice, "ap1", turn_id, "call_t1", "approve")
    assert again.status_code == 200 and again.json()["repeated"] is True
    other = await decide(alice, "ap1", turn_id, "call_t1", "deny")
    assert other.status_code == 409, other.text
    done = await until(alice, turn_id, "final")
    result = done[-1].data["result"]
    [call] = result["tool_calls"]
    assert call["status"] == "ok" and call["approval"]["decision"] == "approve"
    assert call["approval"]["decided_by"] == "alice"
    assert "Ticket #" in call["content"]
    rows = await tickets(settings, "ap1")
    assert [(r.title, r.idempotency_key) for r in rows] == [("Printer on fire", f"{turn_id}:0")]
    # The turn has moved on: a late decision is refused, the first one still answered.
    late = await decide(alice, "ap1", turn_id, "call_t1", "deny")
    assert late.status_code == 409
    assert (await decide(alice, "ap1", turn_id, "call_t1", "approve")).status_code == 200


async def test_deny_tells_the_model_and_runs_nothing(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    llm.script(
        calls(ToolCallStep(id="call_e1", name="escalate_to_human", arguments={"reason": "angry"})),
        answer("Alright, I will keep helping myself."),
    )
    turn_id = await start_turn(alice, "ap2", "I want a human")
    await until(alice, turn_id, "approval_required")
    resp = await decide(alice, "ap2", turn_id, "call_e1", "deny", "not now")
    assert resp.status_code == 200, resp.text
    result = (await until(alice, turn_id, "final"))[-1].data["result"]
    [call] = result["tool_calls"]
    assert call["status"] == "denied" and call["approval"]["note"] == "not now"
    told = [m["content"] for m in model_requests(llm)[1]["messages"] if m["role"] == "tool"]
    assert "denied" in told[0] and "not now" in told[0]
    engine = engine_from_settings(settings)
    async with engine.connect() as conn:
        marked = await conn.scalar(text("SELECT escalated_at FROM sessions WHERE id = 'ap2'"))
    await engine.dispose()
    assert marked is None


@pytest.mark.approval_timeout(1)
async def test_no_decision_in_time_is_a_denial(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    llm.script(
        calls(ToolCallStep(id="call_x", name="create_ticket", arguments={"title": "late"})),
        answer("Nobody approved it."),
    )
    resp = await alice.post("/sessions/ap3/messages", json={"text": "Open a ticket"})
    assert resp.status_code == 202, resp.text  # it waits on a decision
    turn_id = resp.json()["turn_id"]
    result = (await until(alice, turn_id, "final"))[-1].data["result"]
    [call] = result["tool_calls"]
    assert call["status"] == "timed_out" and call["approval"]["timed_out"] is True
    assert await tickets(settings, "ap3") == []
    told = [m["content"] for m in model_requests(llm)[1]["messages"] if m["role"] == "tool"]
    assert "Nobody approved" in told[0]
    late = await decide(alice, "ap3", turn_id, "call_x", "approve")
    assert late.status_code == 409


async def test_only_the_owner_decides_and_unknown_calls_are_404(
    worker: Worker,
    alice: httpx.AsyncClient,
    bob: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    llm.script(
        calls(ToolCallStep(id="call_o", name="create_ticket", arguments={"title": "mine"})),
        answer("Done."),
    )
    turn_id = await start_turn(alice, "ap4", "Open a ticket")
    await until(alice, turn_id, "approval_required")
    assert (await decide(bob, "ap4", turn_id, "call_o", "approve")).status_code == 404
    assert (await decide(alice, "ap4", turn_id, "call_nope", "approve")).status_code == 404
    stale = await decide(alice, "ap4", str(uuid.uuid4()), "call_o", "approve")
    assert stale.status_code == 409
    bad = await alice.post(
        f"/sessions/ap4/turns/{turn_id}/approvals/call_o", json={"decision": "maybe"}
    )
    assert bad.status_code == 422
    assert (await decide(alice, "ap4", turn_id, "call_o", "approve")).status_code == 200
    await until(alice, turn_id, "final")
    assert len(await tickets(settings, "ap4")) == 1


async def test_cancel_ends_the_wait(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    llm.script(
        calls(ToolCallStep(id="call_c", name="create_ticket", arguments={"title": "stop"})),
        answer("unused"),
    )
    turn_id = await start_turn(alice, "ap5", "Open a ticket")
    await until(alice, turn_id, "approval_required")
    resp = await alice.post(f"/sessions/ap5/turns/{turn_id}/cancel")
    assert resp.status_code == 204, resp.text
    result = (await until(alice, turn_id, "final"))[-1].data["result"]
    assert result["status"] == "cancelled"
    assert [c["status"] for c in result["tool_calls"]] == ["cancelled"]
    assert await tickets(settings, "ap5") == []
    assert len(model_requests(llm)) == 1  # the model was not asked again
    assert json.dumps(result)  # the stored result serializes


async def test_a_waiting_json_request_answers_202_with_what_the_turn_waits_on(
    worker: Worker,
    alice: httpx.AsyncClient,
    bob: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    ticket = {"title": "Badge lost", "priority": "low"}
    llm.script(
        calls(ToolCallStep(id="call_j1", name="create_ticket", arguments=ticket)),
        answer("Done: ticket opened."),
    )
    body = {"text": "I lost my badge, open a ticket", "client_message_id": "json-1"}
    # A script waiting for the turn's JSON result is not held until someone decides.
    resp = await alice.post("/sessions/js1/messages", json=body)
    assert resp.status_code == 202, resp.text
    accepted = resp.json()
    turn_id = accepted["turn_id"]
    [pending] = accepted["pending_approvals"]
    assert pending["turn_id"] == turn_id
    assert pending["call"]["id"] == "call_j1"
    assert pending["call"]["arguments"] == {**ticket, "description": ""}
    assert pending["decide_url"].endswith(f"/v1/sessions/js1/turns/{turn_id}/approvals/call_j1")
    # The same list for whoever comes later (a reloaded page); only for the owner.
    listed = await alice.get("/sessions/js1/approvals")
    assert listed.status_code == 200 and listed.json()["items"] == [pending]
    assert (await bob.get("/sessions/js1/approvals")).status_code == 404
    # The same request again while it waits: the same answer, still one turn.
    again = await alice.post("/sessions/js1/messages", json=body)
    assert again.status_code == 202 and again.json()["pending_approvals"] == [pending]

    decided = await alice.post(pending["decide_url"], json={"decision": "approve"})
    assert decided.status_code == 200, decided.text
    # Decided: the retried request now waits for the result, as any JSON request does.
    done = await alice.post("/sessions/js1/messages", json=body)
    assert done.status_code == 200, done.text
    assert done.json()["reply"] == "Done: ticket opened."
    assert done.json()["turn_id"] == turn_id
    assert len(await tickets(settings, "js1")) == 1
    assert (await alice.get("/sessions/js1/approvals")).json()["items"] == []
    assert (await alice.get("/sessions/nobody-here/approvals")).status_code == 404


async def test_a_json_request_whose_turn_needs_no_approval_gets_its_result(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.script(
        calls(ToolCallStep(name="search_web", arguments={"query": "Lisbon weather"})),
        answer("Sunny."),
    )
    resp = await alice.post("/sessions/js2/messages", json={"text": "Weather in Lisbon?"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["reply"] == "Sunny."
    assert (await alice.get("/sessions/js2/approvals")).json() == {"items": []}


async def test_a_tool_round_slower_to_its_first_token_than_the_heartbeat_timeout_is_not_retried(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    # 12 s before anything streams, longer than the 10 s heartbeat timeout: the activity
    # beats while it waits, so the round is not taken for a dead worker and sent again.
    slow = calls(ToolCallStep(name="search_web", arguments={"query": "Lisbon weather"}))
    slow = slow.model_copy(update={"latency_ms": 12_000})
    llm.script(
        slow,
        Step(endpoint="chat", model="gpt-4o-search-preview", reply="Sunny, 24 C."),
        answer("Sunny in Lisbon."),
    )
    turn_id = await start_turn(alice, "slow1", "Weather in Lisbon?")
    seen = await until(alice, turn_id, "final", within=90)
    assert seen[-1].type == "final", seen[-1]
    result = seen[-1].data["result"]
    assert result["reply"] == "Sunny in Lisbon."
    assert [(c["name"], c["status"]) for c in result["tool_calls"]] == [("search_web", "ok")]
    assert "restart" not in [e.type for e in seen]
    assert len(model_requests(llm)) == 2  # the slow round once, then the answer
