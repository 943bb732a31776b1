"""The chaos suite's clients: JSON, SSE and WebSocket, each following the API's contract
(the same contract as `chatbot.client`): retry with the SAME client_message_id, wait what
Retry-After / `retry_after` says, resume a stream from the last event id it saw, all
bounded by a deadline per message. Each records everything in a MessageRecord."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from chatbot.client import Event, SseParser
from loadtest.chaos.record import EOF, FAILED, FINAL, RESUMABLE, TRANSPORT, MessageRecord

MESSAGE_DEADLINE = 180.0  # seconds one message may take, retries and resumes included


def _backoff(attempt: int) -> float:
    return float(min(0.25 * 2 ** min(attempt, 4), 3.0))


def http_client(base_url: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{base_url}/v1",
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx.Timeout(MESSAGE_DEADLINE + 30, connect=5),
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=2),
    )


async def _pause(seconds: float, deadline: float) -> None:
    await asyncio.sleep(max(0.0, min(seconds, deadline - time.monotonic())))


async def ensure_session(http: httpx.AsyncClient, session_id: str, rec: MessageRecord) -> None:
    """Create the session (the WebSocket needs it to exist), retrying as told."""
    deadline = time.monotonic() + MESSAGE_DEADLINE
    attempt = 0
    while time.monotonic() < deadline:
        attempt += 1
        try:
            resp = await http.post("/sessions", json={"id": session_id})
        except httpx.TransportError:
            rec.transport_errors += 1
            await _pause(_backoff(attempt), deadline)
            continue
        if resp.status_code in (200, 201):
            return
        wait = rec.http_status(resp)
        if wait is None:
            return  # e.g. 409: it exists already
        await _pause(wait, deadline)


async def send_json(http: httpx.AsyncClient, rec: MessageRecord) -> None:
    """POST and wait for the reply; retry until answered, refused, or the deadline."""
    deadline = time.monotonic() + MESSAGE_DEADLINE
    body = {"text": rec.text, "client_message_id": rec.client_message_id}
    rec.sent()
    while time.monotonic() < deadline:
        rec.attempts += 1
        try:
            resp = await http.post(f"/sessions/{rec.session_id}/messages", json=body)
        except httpx.TransportError:
            rec.transport_errors += 1
            await _pause(_backoff(rec.attempts), deadline)
            continue
        wait = rec.http_status(resp)
        if resp.status_code == 200:
            data = resp.json()
            rec.answer(data.get("turn_id"), str(data.get("reply")))
            return
        if wait is None:
            rec.fail(f"HTTP {resp.status_code}: {resp.text[:200]}")
            return
        await _pause(wait, deadline)
    rec.give_up()


async def _events(lines: AsyncIterator[str]) -> AsyncIterator[Event]:
    parser = SseParser()
    async for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event


class _Follow:
    """Where a followed SSE turn got to."""

    def __init__(self) -> None:
        self.last_id: str | None = None
        self.wait = 0.0


async def _follow_sse(resp: httpx.Response, rec: MessageRecord, at: _Follow) -> str:
    """Read one SSE response to its end; how it ended."""
    try:
        async for event in _events(resp.aiter_lines()):
            if event.id:
                at.last_id = event.id
            if event.type == "token":
                rec.tokens += 1
            elif event.type == "final":
                result = event.data.get("result") or {}
                rec.answer(result.get("turn_id") or rec.turn_id, str(result.get("reply")))
                return FINAL
            elif event.type == "error":
                if event.data.get("resumable"):
                    at.wait = float(event.data.get("retry_after") or 1)
                    return RESUMABLE
                rec.fail(f"{event.data.get('error_type')}: {event.data.get('error')}")
                return FAILED
    except httpx.TransportError:
        return TRANSPORT
    return EOF


async def send_sse(http: httpx.AsyncClient, rec: MessageRecord) -> None:
    """POST with Accept: text/event-stream; after a resumable error or a broken stream,
    GET /turns/{id}/events with Last-Event-ID (or POST again while no turn id is known)."""
    deadline = time.monotonic() + MESSAGE_DEADLINE
    body = {"text": rec.text, "client_message_id": rec.client_message_id}
    at = _Follow()
    rec.sent()
    while time.monotonic() < deadline:
        rec.attempts += 1
        headers = {"Accept": "text/event-stream"}
        if rec.turn_id is None:
            request = http.build_request(
                "POST", f"/sessions/{rec.session_id}/messages", json=body, headers=headers
            )
        else:
            if at.last_id:
                headers["Last-Event-ID"] = at.last_id
            request = http.build_request("GET", f"/turns/{rec.turn_id}/events", headers=headers)
        how: str | None = None
        try:
            resp = await http.send(request, stream=True)
            try:
                how = await _sse_response(resp, rec, at)
            finally:
                await resp.aclose()
        except httpx.TransportError:
            how = _connection_lost(rec)
        if rec.done:
            return
        await _next_attempt(rec, at, how, deadline)
    rec.give_up()


def _connection_lost(rec: MessageRecord) -> str | None:
    """The connection died: a broken stream once the turn is known; before that, the
    message is simply sent again."""
    if rec.turn_id is None:
        rec.transport_errors += 1
        return None
    return TRANSPORT


async def _next_attempt(rec: MessageRecord, at: _Follow, how: str | None, deadline: float) -> None:
    """Record how the stream ended, then wait as the server asked (or back off)."""
    if how is not None:
        rec.stream_ended(how)
    wait, at.wait = at.wait, 0.0
    await _pause(wait or _backoff(rec.attempts), deadline)


async def _sse_response(resp: httpx.Response, rec: MessageRecord, at: _Follow) -> str | None:
    """One response of send_sse: a stream followed (how it ended), or a status handled."""
    if resp.status_code != 200:
        await resp.aread()
        wait = rec.http_status(resp)
        if resp.status_code == 404 and rec.turn_id is not None:
            rec.resume_refused += 1  # its own turn: retried, and counted against the service
            at.wait = 1.0
        elif wait is None:
            rec.fail(f"HTTP {resp.status_code}: {resp.text[:200]}")
        else:
            at.wait = wait
        return None
    rec.statuses.append(200)
    if not resp.headers.get("content-type", "").startswith("text/event-stream"):
        data = json.loads(await resp.aread())  # a stored turn, answered at once
        rec.answer(data.get("turn_id"), str(data.get("reply")))
        return None
    rec.accepted(resp.headers.get("x-turn-id") or rec.turn_id)
    return await _follow_sse(resp, rec, at)


class WsSession:
    """One session's WebSocket, reconnected whenever it drops; a turn it was following is
    resumed with a `resume` frame from the last event id seen."""

    def __init__(self, base_url: str, token: str, session_id: str) -> None:
        self.url = base_url.replace("http://", "ws://", 1) + f"/v1/sessions/{session_id}/ws"
        self.token = token
        self.conn: ClientConnection | None = None
        self.finished_turns: set[str] = set()

    async def close(self) -> None:
        if self.conn is not None:
            await self.conn.close()
            self.conn = None

    async def _connect(self, rec: MessageRecord) -> bool:
        try:
            self.conn = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self.token}"},
                proxy=None,
                open_timeout=10,
                ping_interval=None,
            )
            return True
        except InvalidStatus as err:
            rec.status(err.response.status_code, err.response.headers.get("retry-after"))
        except (OSError, InvalidHandshake, TimeoutError):
            rec.transport_errors += 1
        return False

    async def send(self, rec: MessageRecord) -> None:
        deadline = time.monotonic() + MESSAGE_DEADLINE
        at = _Follow()
        rec.sent()
        while time.monotonic() < deadline:
            rec.attempts += 1
            if self.conn is None and not await self._connect(rec):
                await _pause(_backoff(rec.attempts), deadline)
                continue
            assert self.conn is not None
            if rec.turn_id is None:
                frame: dict[str, Any] = {
                    "type": "message",
                    "text": rec.text,
                    "client_message_id": rec.client_message_id,
                }
            else:
                frame = {"type": "resume", "turn_id": rec.turn_id, "after": at.last_id}
            try:
                await self.conn.send(json.dumps(frame))
                how = await self._read(rec, at, deadline)
            except (ConnectionClosed, OSError):
                self.conn = None
                how = _connection_lost(rec)
            if rec.done:
                if rec.turn_id:
                    self.finished_turns.add(rec.turn_id)
                return
            await _next_attempt(rec, at, how, deadline)
        rec.give_up()

    async def _read(self, rec: MessageRecord, at: _Follow, deadline: float) -> str | None:
        """Frames until the turn ends, an error says to try again, or the deadline."""
        assert self.conn is not None
        while True:
            try:
                raw = await asyncio.wait_for(self.conn.recv(), max(deadline - time.monotonic(), 0))
            except TimeoutError:
                return None
            frame = json.loads(raw)
            kind, turn = frame.get("type"), frame.get("turn_id")
            if turn is not None and turn in self.finished_turns:
                continue  # a late frame of an earlier turn
            if frame.get("id"):
                at.last_id = frame["id"]
            if kind == "token":
                rec.tokens += 1
            elif kind == "accepted":
                rec.accepted(turn)
            elif kind == "final":
                result = frame.get("result") or {}
                rec.answer(turn or rec.turn_id, str(result.get("reply")))
                return FINAL
            elif kind == "error":
                return self._error(frame, rec, at)

    def _error(self, frame: dict[str, Any], rec: MessageRecord, at: _Follow) -> str | None:
        code = frame.get("code")
        if frame.get("resumable"):
            at.wait = float(frame.get("retry_after") or 1)
            return RESUMABLE
        if code in ("unavailable", "rate_limited"):
            wait = rec.status(503 if code == "unavailable" else 429, _header(frame))
            at.wait = wait or 1.0
            return None
        if code == "internal":
            rec.status(500, None)
            at.wait = 1.0
            return None
        if code == "not_found" and rec.turn_id is not None:
            rec.resume_refused += 1
            at.wait = 1.0
            return None
        if code == "conflict" and rec.statuses.count(409) < 5:
            rec.status(409, None)
            at.wait = 1.0
            return None
        # A turn that ended failed (its stream's non-resumable error), or a refusal.
        rec.fail(f"{frame.get('error_type') or code}: {frame.get('error') or frame.get('message')}")
        return FAILED if frame.get("error_type") else None


def _header(frame: dict[str, Any]) -> str | None:
    value = frame.get("retry_after")
    return None if value is None else str(value)
