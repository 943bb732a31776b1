"""The /v1 API end to end: real gateway, real worker, real Temporal, Postgres and Redis,
and the fake OpenAI server behind the real openai client."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.db.engine import create_engine
from shared.models import workflow_id
from tests.chatbot.api_support import auth, sse_events
from tests.support import assert_eventually


async def _rows(settings: Settings, sql: str, **params: object) -> list[dict[str, object]]:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            return [dict(r) for r in (await conn.execute(text(sql), params)).mappings()]
    finally:
        await engine.dispose()


def _reply_calls(llm: FakeOpenAIServer) -> list[dict[str, Any]]:
    """Requests for replies from the chat model (not the search model or embeddings)."""
    return [
        r for r in llm.requests if r["endpoint"] == "chat" and r["body"]["model"] == "gpt-4o-mini"
    ]


def _last_chat_prompt(llm: FakeOpenAIServer) -> list[dict[str, str]]:
    """The newest chat completion's messages (embedding requests come and go between)."""
    return list(_reply_calls(llm)[-1]["body"]["messages"])


async def test_a_message_gets_a_reply_persisted_once(
    worker: Worker, alice: httpx.AsyncClient, settings: Settings, llm: FakeOpenAIServer
) -> None:
    resp = await alice.post("/sessions/s1/messages", json={"text": "What is Temporal?"})
    assert resp.status_code == 200, resp.text
    turn = resp.json()
    assert turn["reply"] == "Fake reply to: What is Temporal?"
    assert turn["status"] == "complete" and turn["intent"] == "chat"
    assert turn["usage"]["completion_tokens"] > 0
    assert {"detect_intent", "generate_reply", "persist_turn"} <= set(turn["timings_ms"])
    rows = await _rows(
        settings,
        "SELECT role, content FROM messages WHERE turn_id = :t ORDER BY seq",
        t=uuid.UUID(turn["turn_id"]),
    )
    assert rows == [
        {"role": "user", "content": "What is Temporal?"},
        {"role": "assistant", "content": "Fake reply to: What is Temporal?"},
    ]
    history = (await alice.get("/sessions/s1/messages")).json()
    assert [m["role"] for m in history["items"]] == ["user", "assistant"]
    session = (await alice.get("/sessions/s1")).json()
    assert session["turn_count"] == 1 and session["workflow_id"] == "chat-s1"


async def test_sse_streams_tokens_before_final_and_resumes_after_disconnect(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.tokens_per_second = 50
    text = "one two three four five six seven eight"
    headers = {"Accept": "text/event-stream"}
    seen = []
    async with alice.stream(
        "POST", "/sessions/s2/messages", json={"text": text}, headers=headers
    ) as resp:
        assert resp.status_code == 200
        turn_id = resp.headers["x-turn-id"]
        async for event in sse_events(resp):
            seen.append(event)
            if len([e for e in seen if e.type == "token"]) == 3:
                break  # the client drops mid-reply
    tokens = [e for e in seen if e.type == "token"]
    assert len(tokens) == 3 and all(e.id for e in tokens)

    resumed = []
    async with alice.stream(
        "GET", f"/turns/{turn_id}/events", headers={**headers, "Last-Event-ID": tokens[-1].id or ""}
    ) as resp:
        assert resp.status_code == 200
        async for event in sse_events(resp):
            resumed.append(event)
    assert resumed[-1].type == "final"
    assert all(e.type == "token" for e in resumed[:-1])
    ids = [e.id for e in tokens + resumed]
    assert len(ids) == len(set(ids)), "no event twice"
    streamed = "".join(e.data["text"] for e in tokens + resumed[:-1])
    assert streamed == resumed[-1].data["result"]["reply"] == f"Fake reply to: {text}"

    # From the start, the whole stream again: tokens first, the final event last.
    async with alice.stream("GET", f"/turns/{turn_id}/events", headers=headers) as resp:
        full = [e async for e in sse_events(resp)]
    assert [e.type for e in full][-1] == "final"
    assert len([e for e in full if e.type == "token"]) == len(tokens) + len(resumed) - 1


async def test_fire_and_forget_returns_the_turn_id_at_once(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    resp = await alice.post("/sessions/s3/messages?wait=false", json={"text": "later"})
    assert resp.status_code == 202
    accepted = resp.json()
    async with alice.stream("GET", accepted["events_url"].split("/v1", 1)[1]) as stream:
        events = [e async for e in sse_events(stream)]
    assert events[-1].type == "final"
    assert events[-1].data["result"]["turn_id"] == accepted["turn_id"]


async def test_ten_concurrent_messages_to_one_session_run_one_at_a_time_in_order(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    llm.tokens_per_second = 200
    texts = [f"message number {i}" for i in range(10)]
    results = await asyncio.gather(
        *(alice.post("/sessions/burst/messages", json={"text": t}) for t in texts)
    )
    assert all(r.status_code == 200 for r in results), [r.text for r in results]
    assert sorted(r.json()["reply"] for r in results) == sorted(
        f"Fake reply to: {t}" for t in texts
    )
    # Each prompt holds exactly the turns answered before it: no interleaving, none lost.
    prompts = [r["body"]["messages"] for r in _reply_calls(llm)]
    assert len(prompts) == 10
    order = [p[-1]["content"] for p in prompts]
    assert sorted(order) == sorted(texts)
    for i, prompt in enumerate(prompts):
        history = [m["content"] for m in prompt[1:-1]]
        expected = []
        for earlier in order[:i]:
            expected += [earlier, f"Fake reply to: {earlier}"]
        assert history == expected
    rows = await _rows(
        settings,
        "SELECT content FROM messages WHERE session_id = 'burst' AND role = 'user' ORDER BY seq",
    )
    assert [r["content"] for r in rows] == order


async def test_twenty_sessions_in_parallel_do_not_block_each_other(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.latency_ms = 1000  # each reply takes a second; one after another would take 20
    began = time.monotonic()
    results = await asyncio.gather(
        *(alice.post(f"/sessions/par-{i}/messages", json={"text": f"hi {i}"}) for i in range(20))
    )
    elapsed = time.monotonic() - began
    assert [r.status_code for r in results] == [200] * 20
    assert elapsed < 10, f"20 one-second turns took {elapsed:.1f} s: sessions blocked each other"


async def test_same_client_message_id_is_one_turn_with_the_same_answer(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    body = {"text": "only once please", "client_message_id": "cm-1"}
    first, second = await asyncio.gather(
        alice.post("/sessions/idem/messages", json=body),
        alice.post("/sessions/idem/messages", json=body),
    )
    third = await alice.post("/sessions/idem/messages", json=body)
    assert first.status_code == second.status_code == third.status_code == 200
    assert first.json()["turn_id"] == second.json()["turn_id"] == third.json()["turn_id"]
    assert first.json()["reply"] == second.json()["reply"] == third.json()["reply"]
    assert len(_reply_calls(llm)) == 1
    rows = await _rows(settings, "SELECT count(*) AS n FROM messages WHERE session_id = 'idem'")
    assert rows == [{"n": 2}]


async def test_rate_limited_provider_is_retried_until_it_answers(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.script(
        {"endpoint": "chat", "model": "gpt-4o-mini", "status": 429, "retry_after": 1, "times": 2}
    )
    resp = await alice.post("/sessions/r1/messages", json={"text": "eventually"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["reply"] == "Fake reply to: eventually"
    assert len(_reply_calls(llm)) == 3


async def test_provider_rejection_is_a_clear_error_and_the_session_stays_usable(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    llm.script(
        {"endpoint": "chat", "model": "gpt-4o-mini", "status": 400, "message": "context too long"}
    )
    resp = await alice.post("/sessions/r2/messages", json={"text": "break it"})
    assert resp.status_code == 502
    error = resp.json()["error"]
    assert error["code"] == "upstream_failed"
    assert (
        "rejected the request (400)" in error["message"] and "context too long" in error["message"]
    )
    assert len(_reply_calls(llm)) == 1  # not retried
    ok = await alice.post("/sessions/r2/messages", json={"text": "and now?"})
    assert ok.status_code == 200 and ok.json()["reply"] == "Fake reply to: and now?"
    rows = await _rows(
        settings,
        "SELECT role, status FROM messages WHERE session_id = 'r2' ORDER BY seq",
    )
    assert [r["status"] for r in rows] == ["failed", "failed", "complete", "complete"]


async def test_cancel_stops_the_generation_and_keeps_the_partial_reply(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.tokens_per_second = 10
    long_text = " ".join(f"w{i}" for i in range(200))
    resp = await alice.post("/sessions/c1/messages?wait=false", json={"text": long_text})
    turn_id = resp.json()["turn_id"]
    async with alice.stream("GET", f"/turns/{turn_id}/events") as stream:
        events = []
        async for event in sse_events(stream):
            events.append(event)
            if len(events) == 3:
                cancel = await alice.post(f"/sessions/c1/turns/{turn_id}/cancel")
                assert cancel.status_code == 204, cancel.text
    final = events[-1]
    assert final.type == "final"
    result = final.data["result"]
    assert result["status"] == "cancelled"
    assert 0 < len(result["reply"]) < len(f"Fake reply to: {long_text}")
    history = (await alice.get("/sessions/c1/messages")).json()["items"]
    assert history[-1]["status"] == "cancelled" and history[-1]["content"] == result["reply"]
    again = await alice.post(f"/sessions/c1/turns/{turn_id}/cancel")
    assert again.status_code == 409


async def test_idle_session_completes_and_restarts_with_its_context(
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    settings.inactivity_timeout_minutes = 0.03  # ~2 s
    first = await alice.post("/sessions/idle/messages", json={"text": "my name is Ada"})
    assert first.status_code == 200
    handle = temporal_client.get_workflow_handle(workflow_id("idle"))

    async def completed() -> None:
        desc = await handle.describe()
        assert desc.status == WorkflowExecutionStatus.COMPLETED

    await assert_eventually(completed, within=30)
    assert (await alice.get("/sessions/idle")).json()["status"] == "idle"
    llm.clear_requests()
    second = await alice.post("/sessions/idle/messages", json={"text": "what is my name?"})
    assert second.status_code == 200
    prompt = _last_chat_prompt(llm)
    assert [m["content"] for m in prompt[1:]] == [
        "my name is Ada",
        "Fake reply to: my name is Ada",
        "what is my name?",
    ]
    assert (await alice.get("/sessions/idle")).json()["status"] == "active"


async def test_sessions_belong_to_their_creator(
    worker: Worker, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    created = await alice.post("/sessions", json={"title": "alice's"})
    assert created.status_code == 201
    sid = created.json()["id"]
    assert (await bob.get(f"/sessions/{sid}")).status_code == 404
    assert (await bob.post(f"/sessions/{sid}/messages", json={"text": "hi"})).status_code == 404
    assert (await bob.get(f"/sessions/{sid}/messages")).status_code == 404
    assert (await bob.delete(f"/sessions/{sid}")).status_code == 404
    assert [s["id"] for s in (await bob.get("/sessions")).json()["items"]] == []
    renamed = await alice.patch(f"/sessions/{sid}", json={"title": "renamed"})
    assert renamed.json()["title"] == "renamed"
    assert (await alice.delete(f"/sessions/{sid}")).status_code == 204
    assert (await alice.get(f"/sessions/{sid}")).status_code == 404


async def test_sessions_list_newest_first_with_pages(alice: httpx.AsyncClient) -> None:
    ids = [(await alice.post("/sessions", json={"title": f"t{i}"})).json()["id"] for i in range(5)]
    page1 = (await alice.get("/sessions?limit=3")).json()
    page2 = (await alice.get(f"/sessions?limit=3&cursor={page1['next_cursor']}")).json()
    assert [s["id"] for s in page1["items"] + page2["items"]] == list(reversed(ids))
    assert page2["next_cursor"] is None


async def test_missing_or_invalid_tokens_are_401(gateway: str, settings: Settings) -> None:
    async with httpx.AsyncClient(base_url=f"{gateway}/v1") as anon:
        missing = await anon.get("/sessions")
        assert missing.status_code == 401
        assert "missing bearer token" in missing.json()["error"]["message"]
        bad = await anon.get("/sessions", headers={"Authorization": "Bearer not-a-jwt"})
        assert bad.status_code == 401
        forged = auth(settings, "x")["Authorization"][:-4] + "AAAA"
        assert (await anon.get("/sessions", headers={"Authorization": forged})).status_code == 401
        basic = await anon.get("/sessions", headers={"Authorization": "Basic abc"})
        assert basic.status_code == 401


async def test_rate_limit_gives_429_with_retry_after(
    worker: Worker, gateway: str, settings: Settings
) -> None:
    settings.rate_limit_per_minute = 2
    user = f"carol-{uuid.uuid4().hex[:6]}"  # a window of her own in the shared Redis
    async with httpx.AsyncClient(base_url=f"{gateway}/v1", headers=auth(settings, user)) as carol:
        for _ in range(2):
            sent = await carol.post("/sessions/rl/messages", json={"text": "x"})
            assert sent.status_code == 200
        limited = await carol.post("/sessions/rl/messages", json={"text": "x"})
        assert limited.status_code == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert "rate limit of 2 messages a minute" in limited.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"text": ""}, 422, "text: String should have at least 1 character"),
        ({"text": "x" * 8001}, 422, "text: String should have at most 8000 characters"),
        ({"text": "hi", "colour": "red"}, 422, "colour: Extra inputs are not permitted"),
        ({"text": "hi", "client_message_id": "has space"}, 422, "client_message_id"),
        ({"text": "   "}, 422, "message text is empty"),
    ],
)
async def test_bad_messages_are_rejected_with_what_to_fix(
    worker: Worker, alice: httpx.AsyncClient, body: dict[str, object], status: int, fragment: str
) -> None:
    resp = await alice.post("/sessions/bad/messages", json=body)
    assert resp.status_code == status, resp.text
    assert fragment in resp.json()["error"]["message"]


async def test_oversized_body_is_413(alice: httpx.AsyncClient) -> None:
    resp = await alice.post("/sessions/big/messages", content=b"{" + b" " * 70_000 + b"}")
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "payload_too_large"


async def test_websocket_turn_streams_tokens_and_final(
    worker: Worker, gateway: str, settings: Settings, alice: httpx.AsyncClient
) -> None:
    from websockets.asyncio.client import connect

    await alice.post("/sessions", json={"id": "ws1"})
    token = auth(settings, "alice")["Authorization"].split()[1]
    url = gateway.replace("http", "ws") + f"/v1/sessions/ws1/ws?token={token}"
    import json

    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "message", "text": "over the socket"}))
        frames = []
        while not frames or frames[-1]["type"] not in ("final", "error"):
            frames.append(json.loads(await ws.recv()))
    assert frames[0]["type"] == "accepted"
    assert any(f["type"] == "token" for f in frames)
    assert frames[-1]["result"]["reply"] == "Fake reply to: over the socket"


async def test_metrics_expose_turn_counters(
    worker: Worker, gateway: str, alice: httpx.AsyncClient
) -> None:
    await alice.post("/sessions/m1/messages", json={"text": "count me"})
    assert (await alice.post("/sessions/m1/messages", json={})).status_code == 422
    async with httpx.AsyncClient() as client:
        body = (await client.get(f"{gateway}/metrics")).text
    assert 'chatbot_turns_total{status="complete"}' in body
    assert 'chatbot_errors_total{kind="invalid_request"}' in body
    assert 'chatbot_turn_step_seconds_bucket{le="0.01",step="end_to_end"}' in body


async def test_long_sessions_continue_as_new_with_their_context(
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    settings.turns_per_run = 3
    for i in range(7):
        body = {"text": f"turn {i}", "client_message_id": f"can-{i}"}
        assert (await alice.post("/sessions/long/messages", json=body)).status_code == 200
    handle = temporal_client.get_workflow_handle(workflow_id("long"))
    runs = [
        e async for e in temporal_client.list_workflows(f"WorkflowId = '{workflow_id('long')}'")
    ]
    assert len(runs) == 3  # 3 + 3 turns, then the run holding the 7th
    state = await handle.query("state")
    assert state["turns_total"] == 7 and state["turns_this_run"] == 1
    prompt = [m["content"] for m in _last_chat_prompt(llm)[1:]]
    assert prompt[-1] == "turn 6" and prompt[0] == "turn 0"  # context carried across runs
    # A retried POST from the first run still maps to its turn, not to a new one.
    before = len(llm.requests)
    again = await alice.post(
        "/sessions/long/messages", json={"text": "turn 0", "client_message_id": "can-0"}
    )
    assert again.status_code == 200 and again.json()["reply"] == "Fake reply to: turn 0"
    assert len(llm.requests) == before
