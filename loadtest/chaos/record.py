"""What a chaos client saw of one message: every status, every stream's end, the reply."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

# How a stream ended. final / resumable (an `error` event marked resumable) / failed (an
# `error` event that is not resumable: the turn ended failed) follow the contract; eof
# (the server closed the stream without either) and transport (the connection broke) do
# not, unless the process that served it was being killed (the runner decides that).
FINAL, RESUMABLE, FAILED, EOF, TRANSPORT = "final", "resumable", "failed", "eof", "transport"


@dataclass
class StreamEnd:
    at: float  # time.monotonic()
    how: str


@dataclass
class MessageRecord:
    session_id: str
    kind: str  # json | sse | ws
    client_message_id: str
    text: str
    first_sent: float | None = None
    finished_at: float | None = None
    acknowledged: bool = False  # the service gave it a turn id (or answered it)
    turn_id: str | None = None
    reply: str | None = None  # the final reply text the client saw
    failed: str | None = None  # a clear, final refusal or failure
    gave_up: bool = False  # the message's deadline passed unanswered
    statuses: list[int] = field(default_factory=list)
    without_retry_after: int = 0  # 503s (and 429s) that did not say when to retry
    resumable_errors: int = 0
    resume_refused: int = 0  # a resume of its own turn answered 404
    transport_errors: int = 0
    streams: list[StreamEnd] = field(default_factory=list)
    attempts: int = 0
    tokens: int = 0  # token events seen on its streams

    @property
    def done(self) -> bool:
        return self.finished_at is not None

    @property
    def answered(self) -> bool:
        return self.reply is not None

    def sent(self) -> None:
        if self.first_sent is None:
            self.first_sent = time.monotonic()

    def accepted(self, turn_id: str | None) -> None:
        if turn_id:
            self.turn_id = turn_id
            self.acknowledged = True

    def answer(self, turn_id: str | None, reply: str) -> None:
        self.accepted(turn_id)
        self.acknowledged = True
        self.reply = reply
        self.finished_at = time.monotonic()

    def fail(self, why: str) -> None:
        self.failed = why
        self.finished_at = time.monotonic()

    def give_up(self) -> None:
        self.gave_up = True
        self.finished_at = time.monotonic()

    def stream_ended(self, how: str) -> None:
        self.streams.append(StreamEnd(time.monotonic(), how))
        if how == RESUMABLE:
            self.resumable_errors += 1

    def status(self, code: int, retry_after: str | None) -> float | None:
        """Record an HTTP status; return how long to wait before trying again, or None
        when the answer is final (success, or a refusal retrying would not change)."""
        self.statuses.append(code)
        if code in (429, 503):
            wait = _seconds(retry_after)
            if wait is None:
                self.without_retry_after += 1
                return 1.0
            return wait
        if code == 409 and self.statuses.count(409) <= 5:
            return 1.0  # e.g. the same client_message_id still being taken in
        if code == 500 or code == 504:
            return 1.0
        return None

    def http_status(self, resp: httpx.Response) -> float | None:
        return self.status(resp.status_code, resp.headers.get("retry-after"))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
