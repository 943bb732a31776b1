"""The command-line client: `chatbot send` and `chatbot chat` talk to a gateway over the
public /v1 API, streaming replies as Server-Sent Events. A tool call that waits for
approval (TOOL_CALLING=on) is put to the person at the terminal, or decided by
`--approve`, and the decision is posted while the turn goes on streaming."""

from __future__ import annotations

import io
import json
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO, get_args
from urllib.parse import quote

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from chatbot.turn_view import describe
from shared.tool_calls import MAX_NOTE_CHARS, Decision

# Tries to follow a turn again after its stream broke, each after the wait the server
# asked for (a resumable error's retry_after) or a growing one.
RESUME_ATTEMPTS = 8

# `--approve`: ask the person at the terminal, or approve / deny every call unasked.
ApproveMode = Literal["ask", "all", "none"]
APPROVE_MODES: tuple[ApproveMode, ...] = get_args(ApproveMode)
CALL_EVENTS = ("tool_call", "approval_required", "approval_decided", "tool_result")
NOTE_LINE_CHARS = 160  # a tool line's length on the terminal
FILES_DIR = Path("chatbot-files")  # where `send` and `chat` save a turn's files by default
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


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


def _say(stream: TextIO, text: str) -> None:
    """Notes show at once, between the reply's tokens, not when a buffer fills."""
    stream.write(text)
    stream.flush()


def parse_answer(line: str) -> tuple[Decision, str]:
    """A person's answer to `Approve <tool>? [y/N]`: `y` or `yes` approves, anything else
    (an empty line too) denies; a note for the model may follow a colon (`n: not today`)."""
    answer, _, note = line.partition(":")
    decision: Decision = "approve" if answer.strip().lower() in ("y", "yes") else "deny"
    return decision, note.strip()[:MAX_NOTE_CHARS]


class Approver:
    """Decides the tool calls a turn waits on. `ask` puts each to the person who answers
    on `answers` (a terminal, or chat's input); with nobody there (`answers` None) it says
    how to decide elsewhere and leaves the call waiting for the page, the API or the
    approval timeout. `all` and `none` approve or deny every call without asking."""

    def __init__(self, mode: ApproveMode, answers: TextIO | None, notes: TextIO) -> None:
        self.mode = mode
        self.answers = answers
        self.notes = notes

    def decide(
        self, call: dict[str, Any], where: str, waiting: str | None = None
    ) -> tuple[Decision, str] | None:
        """The decision on `call` (an approval_required event's), or None to leave it to
        someone else; `where` is the URL a decision is posted to, `waiting` the one that
        lists what the session's turn waits on."""
        name = str(call.get("name") or "a tool")
        arguments = json.dumps(call.get("arguments") or {}, ensure_ascii=False, indent=2)
        self._write(f"[approval] {name} waits for approval to run with:\n{arguments}\n")
        if self.mode == "all":
            return "approve", ""
        if self.mode == "none":
            return "deny", ""
        if self.answers is None:
            listed = f"GET {waiting} lists what waits; " if waiting else ""
            self._write(
                "[approval] nobody to ask here (stdin is not a terminal): approve or deny it "
                f'on the page, or POST {where} {{"decision": "approve"}} (or "deny"); '
                f"{listed}--approve all|none decides from here. Without a decision in time "
                "the call is denied.\n"
            )
            return None
        self._write(f"Approve {name}? [y/N] ")
        line = self.answers.readline()
        if not line:  # the input ended: nobody said yes
            self._write("\n")
        return parse_answer(line)

    def _write(self, text: str) -> None:
        _say(self.notes, text)


class ChatClient:
    def __init__(
        self,
        url: str,
        token: str | None,
        *,
        timeout: float = 300,
        approver: Approver | None = None,
        notes: TextIO | None = None,
        files_dir: Path | None = FILES_DIR,
    ) -> None:
        """`notes`: where tool calls and approvals are shown (stderr by default), apart
        from the reply; `approver`: who decides the calls that need approval (by default
        nobody here: they are shown and left to the page or the API); `files_dir`: where
        the files a turn made (a query's CSV and chart) are saved, None: not saved."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._url = url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self._url}/v1", headers=headers, timeout=timeout)
        self._notes = notes if notes is not None else sys.stderr
        self._approver = approver or Approver("ask", None, self._notes)
        self._files_dir = files_dir

    def close(self) -> None:
        self._http.close()

    def send(
        self,
        session_id: str,
        text: str,
        out: TextIO,
        *,
        client_message_id: str | None = None,
        line_open: bool = False,
        on_busy: str | None = None,
    ) -> dict[str, Any]:
        """Send one message, write the reply to `out` as it streams, then what the tools
        found and the turn's intent and timings (as the page shows them); return the result.
        `line_open`: `out`'s line is already begun (chat's `bot> `); `on_busy`: what the
        message does while another is answered (the session's setting when None)."""
        body: dict[str, Any] = {"text": text}
        if client_message_id:
            body["client_message_id"] = client_message_id
        if on_busy:
            body["on_busy"] = on_busy
        return self._answered(session_id, f"/sessions/{session_id}/messages", body, out, line_open)

    def regenerate(
        self, session_id: str, turn_id: str, out: TextIO, *, line_open: bool = False
    ) -> dict[str, Any]:
        """Answer the session's latest turn again (a new version of its reply), written
        to `out` as it streams, as `send` does."""
        body = {"client_message_id": f"regenerate-{uuid.uuid4().hex}"}
        path = f"/sessions/{session_id}/turns/{turn_id}/regenerate"
        return self._answered(session_id, path, body, out, line_open)

    def _answered(
        self, session_id: str, path: str, body: dict[str, Any], out: TextIO, line_open: bool
    ) -> dict[str, Any]:
        result = self._send(session_id, path, body, out, line_open)
        out.write("".join(f"{line}\n" for line in describe(result)))
        if self._files_dir is not None:
            for line in self.save_files(result, self._files_dir / _safe(session_id)):
                self._note(line)
        return result

    def save_files(self, result: dict[str, Any], folder: Path) -> list[str]:
        """Download the files the turn's tools made into `folder` (as `<turn>-<name>`, so
        a later turn's `result.csv` does not overwrite this one's): one line per file,
        saved or why not."""
        lines = []
        for ref in _artifacts(result):
            name = f"{_safe(str(ref.get('turn_id') or 'turn'))[:12]}-{_safe(str(ref['name']))}"
            try:
                resp = self._http.get(f"/artifacts/{quote(str(ref['id']), safe='')}")
            except httpx.TransportError as err:
                lines.append(f"[file] {ref['name']} not saved: the gateway is unreachable ({err})")
                continue
            if resp.status_code >= httpx.codes.BAD_REQUEST:
                lines.append(f"[file] {ref['name']} not saved: {_error_message(resp)}")
                continue
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / name
            path.write_bytes(resp.content)
            lines.append(f"[file] saved {path} ({len(resp.content)} bytes)")
        return lines

    def _send(
        self, session_id: str, path: str, body: dict[str, Any], out: TextIO, line_open: bool
    ) -> dict[str, Any]:
        try:
            with self._http.stream(
                "POST",
                path,
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
                relay = Relay(
                    out,
                    self._notes,
                    on_approval=lambda call: self._decide(session_id, turn_id, call),
                    line_open=line_open,
                )
                done = relay.follow(_events(resp.iter_lines()))
        except httpx.TransportError as err:
            raise ClientError(
                f"cannot reach the gateway at {self._url} ({err}); is `chatbot dev` or "
                "`chatbot serve` running, and is --url right?"
            ) from None
        return done if done is not None else self._resume(turn_id, relay)

    def _resume(self, turn_id: str, relay: Relay) -> dict[str, Any]:
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

    def _decide(self, session_id: str, turn_id: str, call: dict[str, Any]) -> None:
        """Have the approver decide a call the turn waits on, and post the decision; the
        turn's own events then show how it went (approval_decided, tool_result)."""
        call_id = quote(str(call.get("id") or ""), safe="")
        path = f"/sessions/{session_id}/turns/{turn_id}/approvals/{call_id}"
        choice = self._approver.decide(
            call,
            where=f"{self._url}/v1{path}",
            waiting=f"{self._url}/v1/sessions/{session_id}/approvals",
        )
        if choice is None:
            return
        decision, note = choice
        try:
            resp = self._http.post(path, json={"decision": decision, "note": note})
        except httpx.TransportError as err:
            self._note(f"[approval] the decision was not sent ({err}); decide on the page")
            return
        if resp.status_code == httpx.codes.CONFLICT:
            self._note("[approval] the turn has moved on: the call was decided or timed out first")
        elif resp.status_code >= httpx.codes.BAD_REQUEST:
            self._note(f"[approval] the decision was refused: {_error_message(resp)}")

    def _note(self, line: str) -> None:
        _say(self._notes, line + "\n")


def _artifacts(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The files the turn's tool results name (a query_data result's `artifacts`)."""
    found = []
    for tool in result.get("tool_results") or []:
        refs = tool.get("artifacts") if isinstance(tool, dict) else None
        for ref in refs if isinstance(refs, list) else []:
            if isinstance(ref, dict) and ref.get("id") and ref.get("name"):
                found.append(ref)
    return found


def _safe(name: str) -> str:
    """A server-given name as one harmless path part: no separators, no `..`."""
    cleaned = _UNSAFE_NAME.sub("_", name).strip("._")
    return cleaned or "file"


class Relay:
    """Writes a turn's events to `out` (the reply) and `notes` (its tool calls, one line
    each), remembering where the stream got to; `on_approval` is handed each call that
    waits for a decision, once."""

    def __init__(
        self,
        out: TextIO,
        notes: TextIO | None = None,
        *,
        on_approval: Callable[[dict[str, Any]], None] | None = None,
        line_open: bool = False,
    ) -> None:
        self.out = out
        self.notes = notes if notes is not None else sys.stderr
        self.on_approval = on_approval
        self.last_id: str | None = None
        self.wait_seconds = 0.0
        self.streamed = False  # a token was written (a fixed reply comes in `final` only)
        self.text = ""  # the reply streamed so far, as a restart leaves it
        self._line_open = line_open  # `out`'s last line is unfinished
        self._asked: set[str] = set()

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
            self._write(str(event.data["text"]))
            self.streamed = True
        elif event.type == "restart":
            self._restart(event.data.get("keep_chars"))
        elif event.type in CALL_EVENTS:
            self._call(event.type, event.data.get("call") or {})
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

    def _restart(self, keep_chars: Any) -> None:
        """The model was asked again: what it streamed past the first `keep_chars` (what
        earlier steps of a tool-calling turn said) is void, and is printed anew below."""
        keep = keep_chars if isinstance(keep_chars, int) and keep_chars > 0 else 0
        if len(self.text) <= keep:
            return  # nothing printed is lost
        kept, self.text = self.text[:keep], ""
        self.out.write("\n[the generation restarted after a failure]\n")
        self._line_open = False
        self._write(kept)
        self.streamed = bool(kept)

    def _call(self, kind: str, call: dict[str, Any]) -> None:
        if kind == "approval_required" and self.on_approval is not None:
            call_id = str(call.get("id") or "")
            if call_id not in self._asked:
                self._asked.add(call_id)
                self._end_line()
                self.on_approval(call)
            return
        self._end_line()
        _say(self.notes, call_line(kind, call)[:NOTE_LINE_CHARS] + "\n")

    def _write(self, text: str) -> None:
        if text:
            self.out.write(text)
            self.out.flush()
            self.text += text
            self._line_open = not text.endswith("\n")

    def _end_line(self) -> None:
        """Notes start on a line of their own where `out` and `notes` share a terminal."""
        if self._line_open:
            self.out.write("\n")
            self.out.flush()
            self._line_open = False


def call_line(kind: str, call: dict[str, Any]) -> str:
    """A tool-calling event as one line: the call asked for, its decision, its result."""
    name = str(call.get("name") or "?")
    if kind == "tool_call":
        arguments = json.dumps(call.get("arguments") or {}, ensure_ascii=False)
        return f"[tool call] {name} {arguments}"
    if kind == "approval_required":
        return f"[approval] {name} waits for approval"
    if kind == "approval_decided":
        approval = call.get("approval") or {}
        if approval.get("timed_out"):
            return f"[approval] {name}: nobody decided in time, denied"
        verb = "approved" if approval.get("decision") == "approve" else "denied"
        by = f" by {approval['decided_by']}" if approval.get("decided_by") else ""
        note = f": {approval['note']}" if approval.get("note") else ""
        return f"[approval] {name}: {verb}{by}{note}"
    status = str(call.get("status") or "?")
    ms = call.get("ms")
    took = f", {round(ms)} ms" if isinstance(ms, int | float) else ""
    content = " ".join(str(call.get("content") or "").split())
    if status in ("ok", "error"):
        return f"[tool result] {name}: {status}{took}: {content}"
    return f"[tool result] {name}: not run ({status.replace('_', ' ')})"


def run_send(
    config: ClientConfig,
    session_id: str,
    text: str,
    cmid: str | None,
    *,
    as_json: bool = False,
    approve: ApproveMode = "ask",
    files_dir: Path | None = FILES_DIR,
    on_busy: str | None = None,
) -> int:
    """`as_json`: print only the TurnResult, for scripts (the stream is followed all the
    same, so a broken one is resumed). `approve`: see Approver; `ask` asks only when
    stdin is a terminal. `files_dir`: see ChatClient."""
    answers = (
        sys.stdin if approve == "ask" and sys.stdin is not None and sys.stdin.isatty() else None
    )
    approver = Approver(approve, answers, sys.stderr)
    client = ChatClient(config.url, config.token, approver=approver, files_dir=files_dir)
    try:
        result = client.send(
            session_id,
            text,
            io.StringIO() if as_json else sys.stdout,
            client_message_id=cmid,
            on_busy=on_busy,
        )
        if as_json:
            sys.stdout.write(json.dumps(result, ensure_ascii=False, indent=2) + "\n")
    except ClientError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    finally:
        client.close()
    return 0


def run_chat(
    config: ClientConfig, session_id: str | None, *, files_dir: Path | None = FILES_DIR
) -> int:
    """An interactive loop: each line is a message; a tool call that needs approval is
    asked about on the same input, terminal or not."""
    session_id = session_id or f"chat-{uuid.uuid4().hex[:8]}"
    approver = Approver("ask", sys.stdin, sys.stderr)
    client = ChatClient(config.url, config.token, approver=approver, files_dir=files_dir)
    sys.stdout.write(
        f"Session {session_id}. /regenerate answers the last message again; "
        "Ctrl-D or /quit to leave.\n"
    )
    last: str | None = None  # the latest turn, for /regenerate
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
            if text == "/regenerate" and last is None:
                sys.stderr.write("error: nothing to regenerate yet: send a message first\n")
                continue
            sys.stdout.write("bot> ")
            try:
                if text == "/regenerate" and last is not None:
                    client.regenerate(session_id, last, sys.stdout, line_open=True)
                else:
                    last = client.send(session_id, text, sys.stdout, line_open=True)["turn_id"]
            except ClientError as err:
                sys.stderr.write(f"error: {err}\n")
    finally:
        client.close()
