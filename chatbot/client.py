"""The command-line client: `chatbot send` and `chatbot chat` talk to a gateway over the
public /v1 API, streaming replies as Server-Sent Events."""

from __future__ import annotations

import io
import json
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TextIO

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatbot.turn_view import describe

# Tries to follow a turn again after its stream broke, each after the wait the server
# asked for (a resumable error's retry_after) or a growing one.
RESUME_ATTEMPTS = 8


class ClientConfig(BaseSettings):
    """Defaults for --url and --token: CHATBOT_URL and CHATBOT_TOKEN."""

    model_config = SettingsConfigDict(env_prefix="CHATBOT_", extra="ignore")

    url: str = "http://127.0.0.1:8000"
    token: str | None = None


class ClientError(Exception):
    """The gateway answered with an error, or could not be reached."""


@dataclass
class Event:
    id: str | None
    type: str
    data: dict[str, Any]


class SseParser:
    """Turns text/event-stream lines into events, one line at a time."""

    def __init__(self) -> None:
        self._fields: dict[str, str] = {}

    def feed(self, line: str) -> Event | None:
        if line == "":
            fields, self._fields = self._fields, {}
            if "data" in fields:
                data = json.loads(fields["data"])
                return Event(fields.get("id"), fields.get("event", "message"), data)
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            self._fields[name] = value.removeprefix(" ")
        return None


def _events(lines: Iterator[str]) -> Iterator[Event]:
    parser = SseParser()
    for line in lines:
        if (event := parser.feed(line)) is not None:
            yield event


def _error_message(resp: httpx.Response) -> str:
    try:
        error = resp.json()["error"]
        return f"{resp.status_code} {error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{resp.status_code}: {resp.text[:300]}"


class ChatClient:
    def __init__(self, url: str, token: str | None, *, timeout: float = 300) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._url = url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self._url}/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def send(
        self, session_id: str, text: str, out: TextIO, *, client_message_id: str | None = None
    ) -> dict[str, Any]:
        """Send one message, write the reply to `out` as it streams, then what the tools
        found and the turn's intent and timings (as the page shows them); return the result."""
        result = self._send(session_id, text, out, client_message_id)
        out.write("".join(f"{line}\n" for line in describe(result)))
        return result

    def _send(
        self, session_id: str, text: str, out: TextIO, client_message_id: str | None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"text": text}
        if client_message_id:
            body["client_message_id"] = client_message_id
        try:
            with self._http.stream(
                "POST",
                f"/sessions/{session_id}/messages",
                json=body,
                headers={"Accept": "text/event-stream"},
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise ClientError(_error_message(resp))
                if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                    result: dict[str, Any] = resp.json()  # a stored turn: already answered
                    out.write(result["reply"] + "\n")
                    return result
                turn_id = resp.headers.get("x-turn-id", "")
                relay = _Relay(out)
                done = relay.follow(_events(resp.iter_lines()))
        except httpx.TransportError as err:
            raise ClientError(
                f"cannot reach the gateway at {self._url} ({err}); is `chatbot dev` or "
                "`chatbot serve` running, and is --url right?"
            ) from None
        return done if done is not None else self._resume(turn_id, relay)

    def _resume(self, turn_id: str, relay: _Relay) -> dict[str, Any]:
        """Follow the turn again after its stream broke (the turn goes on server-side)."""
        for attempt in range(RESUME_ATTEMPTS):
            time.sleep(max(relay.wait_seconds, 0.5 * attempt))  # as the server asked
            relay.wait_seconds = 0.0
            headers = {"Accept": "text/event-stream"}
            if relay.last_id:
                headers["Last-Event-ID"] = relay.last_id
            try:
                with self._http.stream("GET", f"/turns/{turn_id}/events", headers=headers) as resp:
                    if resp.status_code in (400, 401, 403, 404):
                        resp.read()
                        raise ClientError(_error_message(resp))
                    if resp.status_code >= 400:
                        continue  # 503 and the like: try again
                    done = relay.follow(_events(resp.iter_lines()))
            except httpx.TransportError:
                continue
            if done is not None:
                return done
        raise ClientError(
            f"lost the stream of turn {turn_id}; it still runs on the server, and its reply "
            "will be in the session's history (GET /v1/sessions/SESSION/messages)"
        )


class _Relay:
    """Writes a turn's events to `out`, remembering where the stream got to."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.last_id: str | None = None
        self.wait_seconds = 0.0
        self.streamed = False  # a token was written (a fixed reply comes in `final` only)

    def follow(self, events: Iterator[Event]) -> dict[str, Any] | None:
        """The turn's result, or None when the stream broke before its end."""
        try:
            for event in events:
                if event.id:
                    self.last_id = event.id
                if event.type == "error" and event.data.get("resumable"):
                    self.wait_seconds = float(event.data.get("retry_after") or 1)
                    return None
                done = self._one(event)
                if done is not None:
                    return done
        except httpx.TransportError:
            return None
        return None

    def _one(self, event: Event) -> dict[str, Any] | None:
        out = self.out
        if event.type == "token":
            out.write(event.data["text"])
            out.flush()
            self.streamed = True
        elif event.type == "restart":
            out.write("\n[the generation restarted after a failure]\n")
            self.streamed = False
        elif event.type == "final":
            result: dict[str, Any] = event.data["result"]
            out.write("\n" if self.streamed else f"{result.get('reply') or ''}\n")
            if result["status"] == "cancelled":
                out.write("[cancelled]\n")
            return result
        elif event.type == "error":
            out.write("\n")
            raise ClientError(f"{event.data.get('error_type')}: {event.data.get('error')}")
        return None


def run_send(
    config: ClientConfig, session_id: str, text: str, cmid: str | None, *, as_json: bool = False
) -> int:
    """`as_json`: print only the TurnResult, for scripts (the stream is followed all the
    same, so a broken one is resumed)."""
    client = ChatClient(config.url, config.token)
    try:
        result = client.send(
            session_id, text, io.StringIO() if as_json else sys.stdout, client_message_id=cmid
        )
        if as_json:
            sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    except ClientError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    finally:
        client.close()
    return 0


def run_chat(config: ClientConfig, session_id: str | None) -> int:
    session_id = session_id or f"chat-{uuid.uuid4().hex[:8]}"
    client = ChatClient(config.url, config.token)
    sys.stdout.write(f"Session {session_id}. Ctrl-D or /quit to leave.\n")
    try:
        while True:
            try:
                text = input("you> ").strip()
            except EOFError:
                sys.stdout.write("\n")
                return 0
            if text in ("/quit", "/exit"):
                return 0
            if not text:
                continue
            sys.stdout.write("bot> ")
            try:
                client.send(session_id, text, sys.stdout)
            except ClientError as err:
                sys.stderr.write(f"error: {err}\n")
    finally:
        client.close()
