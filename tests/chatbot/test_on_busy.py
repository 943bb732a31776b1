"""What a second message does while the first is still being answered (`on_busy`), end to
end: real gateway, worker, Temporal, Postgres and Redis; the fake model is slow to its
first token and streams slowly, as real ones are. The second message is sent 50 ms after
the first, as a person who sends again at once."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from temporalio.worker import Worker
from websockets.asyncio.client import connect

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import reply_prompts, sse_events, token

GAP = 0.05  # between the two messages
LONG = " ".join(f"w{i}" for i in range(120))


async def _final(client: httpx.AsyncClient, turn_id: str) -> dict[str, Any]:
    """The turn's final result, read from its event stream."""
    async with client.stream("GET", f"/turns/{turn_id}/events") as stream:
        async for event in sse_events(stream):
            if event.type == "final":
                return dict(event.data["result"])
            assert event.type != "error", event.data
    raise AssertionError(f"turn {turn_id} ended without a final event")


async def _two(
    client: httpx.AsyncClient, session: str, first: str, second: str, on_busy: str | None
) -> tuple[str, httpx.Response]:
    """Send `first` (not waiting), then 50 ms later `second` (waiting for its answer)."""
    started = await client.post(f"/sessions/{session}/messages?wait=false", json={"text": first})
    assert started.status_code == 202, started.text
    await asyncio.sleep(GAP)  # the gap under test, not a wait for something to happen
    body: dict[str, Any] = {"text": second}
    if on_busy is not None:
        body["on_busy"] = on_busy
    return started.json()["turn_id"], await client.post(f"/sessions/{session}/messages", json=body)


async def _history(client: httpx.AsyncClient, session: str) -> list[dict[str, Any]]:
    resp = await client.get(f"/sessions/{session}/messages")
    assert resp.status_code == 200, resp.text
    return list(resp.json()["items"])


async def test_enqueue_answers_both_in_order(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.latency_ms = 800
    first, second = await _two(alice, "busy-q", "first question", "second question", "enqueue")
    assert second.status_code == 200, second.text
    assert second.json()["reply"] == "Fake reply to: second question"
    assert (await _final(alice, first))["status"] == "complete"
    history = await _history(alice, "busy-q")
    assert [m["content"] for m in history] == [
        "first question",
        "Fake reply to: first question",
        "second question",
        "Fake reply to: second question",
    ]
    # The second turn saw the first one's answer.
    assert {"role": "assistant", "content": "Fake reply to: first question"} in reply_prompts(llm)[
        -1
    ]


async def test_reject_is_409_with_the_running_turn_and_changes_nothing(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.latency_ms = 1500
    first, second = await _two(alice, "busy-r", "first question", "second question", "reject")
    assert second.status_code == 409, second.text
    error = second.json()["error"]
    assert error["code"] == "session_busy"
    assert error["details"]["running_turn_id"] == first
    assert (await _final(alice, first))["status"] == "complete"
    assert [m["content"] for m in await _history(alice, "busy-r")] == [
        "first question",
        "Fake reply to: first question",
    ]
    # Once the first is answered, the same message is taken.
    again = await alice.post(
        "/sessions/busy-r/messages", json={"text": "second question", "on_busy": "reject"}
    )
    assert again.status_code == 200, again.text


async def test_reject_without_waiting_is_409_too(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.latency_ms = 1500
    first = await alice.post("/sessions/busy-rw/messages?wait=false", json={"text": "one"})
    assert first.status_code == 202, first.text
    second = await alice.post(
        "/sessions/busy-rw/messages?wait=false", json={"text": "two", "on_busy": "reject"}
    )
    assert second.status_code == 409, second.text  # not 202 for a turn that never runs
    assert second.json()["error"]["details"]["running_turn_id"] == first.json()["turn_id"]
    assert (await _final(alice, first.json()["turn_id"]))["status"] == "complete"


async def test_interrupt_keeps_the_partial_reply_marked_cancelled(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    # Slow to the first token: the second message comes while the model still thinks.
    llm.script({"endpoint": "chat", "stream": True, "latency_ms": 20_000})
    first, second = await _two(alice, "busy-i", LONG, "never mind, what is 2+2?", "interrupt")
    assert second.status_code == 200, second.text
    assert second.json()["reply"] == "Fake reply to: never mind, what is 2+2?"
    stopped = await _final(alice, first)
    assert stopped["status"] == "cancelled" and not stopped["rolled_back"]
    history = await _history(alice, "busy-i")
    assert [(m["role"], m["status"]) for m in history] == [
        ("user", "cancelled"),
        ("assistant", "cancelled"),
        ("user", "complete"),
        ("assistant", "complete"),
    ]
    assert history[0]["content"] == LONG
    # The interrupted message stays in the context of the next.
    assert {"role": "user", "content": LONG} in reply_prompts(llm)[-1]


async def test_interrupt_mid_stream_keeps_what_was_written(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.tokens_per_second = 20
    started = await alice.post("/sessions/busy-m/messages?wait=false", json={"text": LONG})
    first = started.json()["turn_id"]
    async with alice.stream("GET", f"/turns/{first}/events") as stream:
        async for event in sse_events(stream):
            if event.type == "token":  # it is writing: interrupt it
                break
    llm.tokens_per_second = 0
    second = await alice.post(
        "/sessions/busy-m/messages", json={"text": "stop", "on_busy": "interrupt"}
    )
    assert second.status_code == 200, second.text
    stopped = await _final(alice, first)
    assert stopped["status"] == "cancelled"
    assert 0 < len(stopped["reply"]) < len(f"Fake reply to: {LONG}")
    history = await _history(alice, "busy-m")
    assert history[1]["content"] == stopped["reply"] and history[1]["status"] == "cancelled"


@pytest.mark.parametrize("while_", ["thinking", "streaming"])
async def test_rollback_leaves_no_trace_of_the_dropped_turn(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, while_: str
) -> None:
    session = f"busy-rb-{while_}"
    ok = await alice.post(f"/sessions/{session}/messages", json={"text": "hello there"})
    assert ok.status_code == 200, ok.text
    if while_ == "thinking":
        llm.script({"endpoint": "chat", "stream": True, "latency_ms": 20_000})
    else:
        llm.script({"endpoint": "chat", "stream": True, "tokens_per_second": 5})
    dropped = "SECRET-DROPPED-TOPIC " + LONG
    first, second = await _two(alice, session, dropped, "what did I say first?", "rollback")
    assert second.status_code == 200, second.text
    gone = await _final(alice, first)
    assert gone["status"] == "cancelled" and gone["rolled_back"] is True
    contents = [m["content"] for m in await _history(alice, session)]
    assert contents == [
        "hello there",
        "Fake reply to: hello there",
        "what did I say first?",
        "Fake reply to: what did I say first?",
    ]
    third = await alice.post(f"/sessions/{session}/messages", json={"text": "and now?"})
    assert third.status_code == 200, third.text
    for prompt in reply_prompts(llm)[-2:]:  # the rollback's own turn, and the one after it
        assert "SECRET-DROPPED-TOPIC" not in str(prompt)
        assert {"role": "user", "content": "hello there"} in prompt
    session_row = (await alice.get(f"/sessions/{session}")).json()
    assert session_row["turn_count"] == 3


async def test_the_sessions_own_setting_applies_unless_the_message_says(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    created = await alice.post("/sessions", json={"id": "busy-s"})
    assert created.status_code == 201, created.text
    assert created.json()["on_busy"] is None
    changed = await alice.patch("/sessions/busy-s", json={"on_busy": "reject"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["on_busy"] == "reject" and changed.json()["title"] == ""
    llm.latency_ms = 1500
    first, second = await _two(alice, "busy-s", "first question", "second question", None)
    assert second.status_code == 409 and second.json()["error"]["code"] == "session_busy"
    # The message's own choice wins over the session's.
    queued = await alice.post(
        "/sessions/busy-s/messages", json={"text": "third question", "on_busy": "enqueue"}
    )
    assert queued.status_code == 200, queued.text
    assert (await _final(alice, first))["status"] == "complete"
    reset = await alice.patch("/sessions/busy-s", json={"on_busy": None})
    assert reset.status_code == 200 and reset.json()["on_busy"] is None
    unchanged = await alice.patch("/sessions/busy-s", json={})
    assert unchanged.status_code == 200 and unchanged.json()["on_busy"] is None


@pytest.mark.parametrize(
    "body",
    [{"on_busy": "sometimes"}, {"title": None}, {"title": ""}, {"on_busy": "reject", "extra": 1}],
)
async def test_bad_session_settings_are_422(
    worker: Worker, alice: httpx.AsyncClient, body: dict[str, Any]
) -> None:
    await alice.post("/sessions", json={"id": "busy-bad"})
    resp = await alice.patch("/sessions/busy-bad", json=body)
    assert resp.status_code == 422, resp.text


async def test_a_bad_on_busy_in_a_message_is_422(worker: Worker, alice: httpx.AsyncClient) -> None:
    resp = await alice.post("/sessions/busy-x/messages", json={"text": "hi", "on_busy": "later"})
    assert resp.status_code == 422, resp.text
    assert "on_busy" in resp.text


async def test_over_the_websocket_the_sessions_setting_applies_too(
    worker: Worker,
    gateway: str,
    settings: Settings,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    await alice.post("/sessions", json={"id": "busy-ws"})
    patched = await alice.patch("/sessions/busy-ws", json={"on_busy": "reject"})
    assert patched.json()["on_busy"] == "reject", patched.text
    llm.latency_ms = 1500
    url = (
        gateway.replace("http", "ws") + f"/v1/sessions/busy-ws/ws?token={token(settings, 'alice')}"
    )
    async with connect(url) as ws:
        await ws.send(json.dumps({"type": "message", "text": "first question"}))
        accepted = json.loads(await ws.recv())
        assert accepted["type"] == "accepted", accepted
        await ws.send(json.dumps({"type": "message", "text": "second question"}))
        frames = []
        while not any(f["type"] == "final" for f in frames):
            frames.append(json.loads(await ws.recv()))
    errors = [f for f in frames if f["type"] == "error"]
    assert [e["code"] for e in errors] == ["session_busy"], frames
    assert [f["result"]["reply"] for f in frames if f["type"] == "final"] == [
        "Fake reply to: first question"
    ]
