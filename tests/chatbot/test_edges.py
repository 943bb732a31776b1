"""The edges of the API under the conditions users have (issue 15): a model slow to its
first token, hostile input, one user's many streams, deleted ids reused, replayed keys.
Real gateway, worker, Temporal, Postgres and Redis; the fake OpenAI server."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
from pydantic import SecretStr
from temporalio.worker import Worker
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from chatbot.app import create_app
from loadtest.fakes import FakeOpenAIServer, ServerThread
from shared.config import Settings
from shared.logging import JsonFormatter
from tests.chatbot.api_support import auth, sse_events
from tests.chatbot.test_api import _reply_calls, _rows
from tests.support import free_port

KEEPALIVE_SECONDS = 1.0


def _sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Keep-alives every second, and a few streams per user, so the tests stay short."""
    return settings.model_copy(
        update={"stream_keepalive_seconds": KEEPALIVE_SECONDS, "max_streams_per_user": 3}
    )


async def _raw_sse(response: httpx.Response) -> AsyncIterator[str]:
    """The stream's lines as sent, keep-alive comments included."""
    async for line in response.aiter_lines():
        yield line


def _ws_url(gateway: str, session_id: str) -> str:
    return gateway.replace("http", "ws") + f"/v1/sessions/{session_id}/ws"


async def _ws_until_done(ws: ClientConnection) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1]["type"] not in ("final", "error"):
        frames.append(json.loads(await asyncio.wait_for(ws.recv(), 30)))
    return frames


# --- 1. Streams through a slow first token --------------------------------------------


async def test_streams_stay_open_through_a_slow_first_token(
    worker: Worker,
    gateway: str,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    """12 s to the first token: longer than redis-py's default socket timeout (5 s), which
    cut every stream, and than the reply's heartbeat timeout (10 s), which retried it."""
    llm.latency_ms = 12_000
    await alice.post("/sessions", json={"id": "slow-ws"})

    async def over_sse() -> tuple[list[str], float]:
        lines, began = [], time.monotonic()
        async with alice.stream(
            "POST",
            "/sessions/slow-sse/messages",
            json={"text": "take your time"},
            headers={"Accept": "text/event-stream"},
        ) as resp:
            assert resp.status_code == 200
            async for line in _raw_sse(resp):
                lines.append(line)
        return lines, time.monotonic() - began

    async def over_ws() -> list[dict[str, Any]]:
        token = auth(settings, "alice")["Authorization"].split()[1]
        async with connect(
            _ws_url(gateway, "slow-ws"), subprotocols=["chatbot.v1", f"bearer.{token}"]
        ) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "chatbot.v1"
            await ws.send(json.dumps({"type": "message", "text": "over the socket, slowly"}))
            return await _ws_until_done(ws)

    (lines, took), frames = await asyncio.gather(over_sse(), over_ws())
    assert took >= 12
    assert lines.count(": keep-alive") >= 5, "a keep-alive about every second while it waits"
    assert "event: final" in lines
    final = json.loads(lines[lines.index("event: final") + 1].removeprefix("data: "))
    assert final["result"]["reply"] == "Fake reply to: take your time"

    kinds = [f["type"] for f in frames]
    assert kinds[0] == "accepted" and kinds[-1] == "final"
    assert kinds.count("keepalive") >= 5
    assert frames[-1]["result"]["reply"] == "Fake reply to: over the socket, slowly"
    assert len(_reply_calls(llm)) == 2, "each reply asked for once: no heartbeat timeout"


# --- 3. Text Postgres cannot hold ----------------------------------------------------


@pytest.mark.parametrize("text", ["hello\u0000world", "\u0000"])
async def test_a_nul_byte_is_refused_and_the_session_goes_on(
    worker: Worker, alice: httpx.AsyncClient, settings: Settings, text: str
) -> None:
    sid = _sid("nul")  # one per case: the Temporal server outlives each test's worker
    resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text})
    assert resp.status_code == 422, resp.text
    assert "NUL" in resp.json()["error"]["message"]
    ok = await alice.post(f"/sessions/{sid}/messages", json={"text": "and now?"})
    assert ok.status_code == 200 and ok.json()["reply"] == "Fake reply to: and now?"


async def test_nul_in_a_title_or_a_token_subject_is_a_client_error(
    gateway: str, alice: httpx.AsyncClient, settings: Settings
) -> None:
    created = await alice.post("/sessions", json={"id": "t-nul", "title": "a\u0000b"})
    assert created.status_code == 422, created.text
    await alice.post("/sessions", json={"id": "t-nul"})
    renamed = await alice.patch("/sessions/t-nul", json={"title": "x\u0000"})
    assert renamed.status_code == 422, renamed.text
    assert settings.jwt_secret is not None
    token = jwt.encode(
        {"sub": "ev\u0000il", "exp": int(time.time()) + 60},
        settings.jwt_secret.get_secret_value(),
        "HS256",
    )
    async with httpx.AsyncClient(base_url=f"{gateway}/v1") as anon:
        resp = await anon.get("/sessions", headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401, resp.text


async def test_a_reply_that_cannot_be_stored_fails_the_turn_not_the_session(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    """A provider's reply with a NUL byte: Postgres refuses it, every time. The turn ends
    failed at once with an error event (it was retried without end, holding the session's
    lock), and the next message is answered."""
    llm.script({"endpoint": "chat", "model": "gpt-4o-mini", "reply": "bad\u0000reply"})
    sid = _sid("poison")  # turn ids follow from it, and the test Redis may be shared
    async with alice.stream(
        "POST",
        f"/sessions/{sid}/messages",
        json={"text": "poison me", "client_message_id": "p-1"},
        headers={"Accept": "text/event-stream"},
    ) as resp:
        events = [e async for e in sse_events(resp)]
    assert events[-1].type == "error"
    assert events[-1].data["error_type"] == "TurnNotStored"
    again = await alice.post(f"/sessions/{sid}/messages", json={"text": "p-1 again"})
    assert again.status_code == 200 and again.json()["reply"] == "Fake reply to: p-1 again"
    rows = await _rows(
        settings, "SELECT content FROM messages WHERE session_id = :s ORDER BY seq", s=sid
    )
    assert [r["content"] for r in rows] == ["p-1 again", "Fake reply to: p-1 again"]


# --- 4. One user's streams cannot starve the rest ------------------------------------


async def test_one_user_holds_a_bounded_number_of_streams(
    worker: Worker, alice: httpx.AsyncClient, bob: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.latency_ms = 4000
    accepted = await alice.post("/sessions/many/messages?wait=false", json={"text": "hold on"})
    turn_id = accepted.json()["turn_id"]
    async with (
        alice.stream("GET", f"/turns/{turn_id}/events") as s1,
        alice.stream("GET", f"/turns/{turn_id}/events") as s2,
        alice.stream("GET", f"/turns/{turn_id}/events") as s3,
    ):
        assert [s.status_code for s in (s1, s2, s3)] == [200, 200, 200]
        refused = await alice.get(f"/turns/{turn_id}/events")
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["retry-after"]) >= 1
        sse = await alice.post(
            "/sessions/many/messages",
            json={"text": "a fourth stream"},
            headers={"Accept": "text/event-stream"},
        )
        assert sse.status_code == 429, "refused before the message is sent"
        llm.latency_ms = 0
        other = await bob.post("/sessions/bobs/messages", json={"text": "am I starved?"})
        assert other.status_code == 200, other.text
        finals = [[e async for e in sse_events(s)][-1].type for s in (s1, s2, s3)]
    assert finals == ["final"] * 3


# --- 5. A deleted id used again at once -----------------------------------------------


async def test_a_deleted_session_id_can_be_used_again_at_once(
    worker: Worker, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    for trial in range(3):
        sid = f"reuse-{trial}"
        first = await alice.post(f"/sessions/{sid}/messages", json={"text": "before"})
        assert first.status_code == 200
        old_turn = first.json()["turn_id"]
        assert (await alice.delete(f"/sessions/{sid}")).status_code == 204
        again = await alice.post(f"/sessions/{sid}/messages", json={"text": "after"})
        assert again.status_code == 200, again.text
        assert again.json()["reply"] == "Fake reply to: after"
        assert again.json()["context"]["recent_turns"] == 0, "nothing of the old session"
        session = (await alice.get(f"/sessions/{sid}")).json()
        assert session["status"] == "active" and session["turn_count"] == 1
        gone = await alice.get(f"/turns/{old_turn}/events")
        assert gone.status_code == 404, "a deleted session's streams are gone with it"
        # Another user takes a deleted id: a session of their own, not blocked.
        assert (await alice.delete(f"/sessions/{sid}")).status_code == 204
        taken = await bob.post(f"/sessions/{sid}/messages", json={"text": "mine now"})
        assert taken.status_code == 200, taken.text
        later = await bob.post(f"/sessions/{sid}/messages", json={"text": "still mine"})
        assert later.status_code == 200, later.text
        assert (await bob.get(f"/sessions/{sid}")).json()["status"] == "active"
        assert (await alice.get(f"/sessions/{sid}")).status_code == 404


# --- 6. Credentials never reach the logs ----------------------------------------------


def test_a_websocket_token_in_the_url_is_redacted_from_log_lines() -> None:
    token = jwt.encode({"sub": "alice"}, "s" * 32, "HS256")
    # As uvicorn's WebSocket protocol logs an accepted or refused connection.
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", f"/v1/sessions/s/ws?token={token}&x=1"),
        None,
    )
    line = JsonFormatter().format(record)
    assert token not in line and "token=[redacted]" in line
    header = logging.LogRecord(
        "x", logging.INFO, __file__, 1, "sent Authorization: Bearer %s", (token,), None
    )
    assert token not in JsonFormatter().format(header)


# --- 7. Chunked bodies count against the limit ----------------------------------------


async def test_a_chunked_body_over_the_limit_is_413_even_unauthenticated(gateway: str) -> None:
    """A body without a Content-Length, and no token: refused once it passes the limit,
    while the client is still sending (it was read to its end, into memory, before a
    401 or 422). The client here sends 1 MB and then waits, its body unfinished."""
    host, port = gateway.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/sessions/big/messages HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    try:
        for _ in range(16):
            writer.write(b"10000\r\n" + b" " * 65536 + b"\r\n")
            await writer.drain()
    except ConnectionError:
        pass  # the gateway answered and closed while we were still writing
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
        body = await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 413"), head
    assert b"payload_too_large" in body


# --- 8. Parameters out of range -------------------------------------------------------


def _cursor(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/sessions?cursor={_cursor('0001-01-01T00:00:00+14:00|x')}", 400),
        (f"/sessions?cursor={_cursor('9999-12-31T23:59:59-14:00|x')}", 400),
        ("/sessions?cursor=%25%25%25", 422),  # not base64 at all: its pattern says so
        ("/sessions/p1/messages?before=9223372036854775808", 422),
        ("/sessions/p1/messages?before=-1", 422),
    ],
)
async def test_out_of_range_parameters_are_client_errors(
    alice: httpx.AsyncClient, path: str, status: int
) -> None:
    await alice.post("/sessions", json={"id": "p1"})
    resp = await alice.get(path)
    assert resp.status_code == status, resp.text
    assert resp.json()["error"]["message"]


async def test_a_last_event_id_out_of_range_is_refused_before_streaming(
    worker: Worker, alice: httpx.AsyncClient
) -> None:
    turn = (await alice.post("/sessions/lei/messages", json={"text": "hi"})).json()
    # 20 digits may not fit Redis's 64 bits: the schema allows 19, all of which fit.
    for bad in ("18446744073709551615-0", "1-99999999999999999999", "abc", "1-"):
        resp = await alice.get(f"/turns/{turn['turn_id']}/events", headers={"Last-Event-ID": bad})
        assert resp.status_code in (400, 422), (bad, resp.status_code, resp.text)
    ok = await alice.get(
        f"/turns/{turn['turn_id']}/events", headers={"Last-Event-ID": "9999999999999999999-0"}
    )
    assert ok.status_code == 200


async def test_malformed_websocket_frames_get_error_frames_and_the_socket_lives(
    worker: Worker, gateway: str, settings: Settings, alice: httpx.AsyncClient
) -> None:
    await alice.post("/sessions", json={"id": "ws-bad"})
    headers = auth(settings, "alice")
    async with connect(_ws_url(gateway, "ws-bad"), additional_headers=headers) as ws:
        deep = "[" * 30_000 + "]" * 30_000  # under the frame limit, over any parser's depth
        for frame in ("not json", b"\x00\x01binary", "", deep, "[1, 2]", '{"type": "nope"}'):
            await ws.send(frame)
            reply = json.loads(await asyncio.wait_for(ws.recv(), 10))
            assert reply["type"] == "error" and reply["code"] == "invalid_request", reply
        await ws.send(json.dumps({"type": "message", "text": "still here?"}))
        frames = await _ws_until_done(ws)
        assert frames[-1]["result"]["reply"] == "Fake reply to: still here?"
        await ws.send(json.dumps({"type": "message", "text": "x" * (2 * 1024 * 1024)}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_websocket_opened_while_postgres_is_away_is_told_to_try_again(
    settings: Settings,
) -> None:
    """The handshake reads the session from Postgres; with Postgres unreachable the
    upgrade is refused as an HTTP call is: 503 with Retry-After, not a 500 or a dead socket."""
    away = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    app = create_app(settings.model_copy(update={"database_url": SecretStr(away)}))
    server = ServerThread(app, lifespan="on", ws="auto").start()
    try:
        async with httpx.AsyncClient(base_url=server.url, headers=auth(settings, "alice")) as c:
            http = await c.get("/v1/sessions/ws-away")
        url = _ws_url(server.url, "ws-away")
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url, additional_headers=auth(settings, "alice")):
                pass
    finally:
        server.stop()
    assert http.status_code == 503 and int(http.headers["retry-after"]) >= 1, http.text
    upgrade = refused.value.response
    assert upgrade.status_code == 503 and int(upgrade.headers["Retry-After"]) >= 1


async def test_a_websocket_creates_its_session_as_a_first_post_does(
    worker: Worker, gateway: str, settings: Settings, alice: httpx.AsyncClient
) -> None:
    """A session that was never created is created by the socket's first use, as by a first
    POST; a session of another user is refused with 1008 and the reason, not a bare 403."""
    sid = _sid("ws-new")
    async with connect(_ws_url(gateway, sid), additional_headers=auth(settings, "alice")) as ws:
        await ws.send(json.dumps({"type": "message", "text": "first over the socket"}))
        frames = await _ws_until_done(ws)
    assert frames[-1]["result"]["reply"] == "Fake reply to: first over the socket"
    assert (await alice.get(f"/sessions/{sid}")).status_code == 200
    async with connect(_ws_url(gateway, sid), additional_headers=auth(settings, "bob")) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1008 and "not found" in closed.value.rcvd.reason


# --- 9. An idempotency key names one request ------------------------------------------


async def test_a_client_message_id_with_another_text_is_409(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    cmid = f"k-{uuid.uuid4().hex[:8]}"
    first = await alice.post(
        "/sessions/keys/messages", json={"text": "one", "client_message_id": cmid}
    )
    assert first.status_code == 200
    for params, headers in (
        ({}, {}),
        ({"wait": "false"}, {}),
        ({}, {"Accept": "text/event-stream"}),
    ):
        other = await alice.post(
            "/sessions/keys/messages",
            params=params,
            headers=headers,
            json={"text": "two", "client_message_id": cmid},
        )
        assert other.status_code == 409, other.text
        assert other.json()["error"]["code"] == "idempotency_conflict"
    # While the first is still running, too (Temporal answers a repeated update id with
    # the first update's outcome, whatever the argument).
    llm.latency_ms = 1500
    running = f"k-{uuid.uuid4().hex[:8]}"
    started = await alice.post(
        "/sessions/keys/messages?wait=false", json={"text": "slow", "client_message_id": running}
    )
    assert started.status_code == 202
    clash = await alice.post(
        "/sessions/keys/messages", json={"text": "fast", "client_message_id": running}
    )
    assert clash.status_code == 409, clash.text


async def test_a_replayed_key_answers_in_the_shape_asked_for(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    body, sid = {"text": "once", "client_message_id": "shape-1"}, _sid("shape")
    first = (await alice.post(f"/sessions/{sid}/messages", json=body)).json()
    accepted = await alice.post(f"/sessions/{sid}/messages?wait=false", json=body)
    assert accepted.status_code == 202 and accepted.json()["turn_id"] == first["turn_id"]
    async with alice.stream(
        "POST", f"/sessions/{sid}/messages", json=body, headers={"Accept": "text/event-stream"}
    ) as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [e async for e in sse_events(resp)]
    assert events[-1].type == "final"
    assert events[-1].data["result"]["reply"] == first["reply"]
    assert len(_reply_calls(llm)) == 1
