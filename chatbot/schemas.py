"""Request and response bodies of the /v1 API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.json_schema import SkipJsonSchema

from shared.models import Handoff, OnBusy, SendMessage, StorableText

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SessionId = Annotated[
    str,
    Path(
        pattern=SESSION_ID_PATTERN,
        description="Session id: letters, digits, '.', '_' or '-', up to 128 characters",
    ),
]


# What `next_cursor` is made of (padded urlsafe base64), so a client sees the shape it must
# pass; a well-formed cursor that is not one of ours is still 400.
CURSOR_PATTERN = r"^(?:[A-Za-z0-9_-]{4})*(?:[A-Za-z0-9_-]{4}|[A-Za-z0-9_-]{3}=|[A-Za-z0-9_-]{2}==)$"
# A Redis stream entry id, which every SSE event carries as its `id`.
# Redis stream ids are two unsigned 64-bit numbers; 19 digits always fit, and real ids
# (a millisecond time and a counter) are far shorter, so every id the pattern allows is
# one Redis can take.
STREAM_ID_PATTERN = r"^\d{1,19}-\d{1,19}$"


Cursor = Annotated[str, StringConstraints(pattern=CURSOR_PATTERN, max_length=500)]
StreamId = Annotated[str, StringConstraints(pattern=STREAM_ID_PATTERN)]
# A message's position in its session: a Postgres bigint.
Seq = Annotated[int, Field(ge=1, le=2**63 - 1)]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN)
    title: StorableText = Field(default="", max_length=200)


class SessionUpdate(BaseModel):
    """The fields to change (none: the session as it is)."""

    model_config = ConfigDict(extra="forbid")

    title: Annotated[StorableText, Field(min_length=1, max_length=200)] | SkipJsonSchema[None] = (
        None
    )
    on_busy: OnBusy | None = Field(
        None,
        description="What a message does while the session answers another, unless the "
        "message says: enqueue, reject, interrupt or rollback (null: enqueue)",
    )

    @model_validator(mode="after")
    def _title_not_null(self) -> SessionUpdate:
        if "title" in self.model_fields_set and self.title is None:
            raise ValueError("title cannot be null")
        return self


class SessionPublic(BaseModel):
    id: str
    title: str
    status: Literal["active", "idle", "ended"]
    turn_count: int
    created_at: datetime
    updated_at: datetime
    last_activity_at: datetime
    workflow_id: str
    temporal_ui_url: str
    handoff: Handoff | None = Field(
        None, description="With a person instead of the assistant (waiting, or claimed)"
    )
    on_busy: OnBusy | None = Field(
        None, description="What a message does while another is answered (null: enqueue)"
    )
    parent_session_id: str | None = Field(
        None, description="A branch: the session it was branched from"
    )
    branched_at_turn: UUID | None = Field(
        None, description="A branch: the parent's turn whose message was edited"
    )


class SessionPage(BaseModel):
    items: list[SessionPublic]
    next_cursor: str | None


class MessageCreate(SendMessage):
    """A user's message. `client_message_id` is the idempotency key: a retried POST with
    the same id yields the same turn."""


class Rating(BaseModel):
    rating: Literal["up", "down"]
    reason: str | None


class MessagePublic(BaseModel):
    id: str
    turn_id: str
    role: Literal["user", "assistant", "agent"]  # agent: a person from the team
    content: str
    status: Literal["complete", "cancelled", "failed"]
    intent: str | None
    client_message_id: str | None
    tool_data: dict[str, Any] | None
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_ms: int | None
    created_at: datetime
    seq: int
    feedback: Rating | None = Field(None, description="An assistant reply: its user's rating")
    version: int = Field(1, description="An assistant reply: the version in use (regenerated)")
    versions: int = Field(1, description="An assistant reply: how many versions it has")


class MessagePage(BaseModel):
    items: list[MessagePublic] = Field(description="Oldest first within the page")
    next_before: int | None = Field(description="Pass as `before` for the previous page")


class PendingApproval(BaseModel):
    """A tool call a running turn waits on a person's decision for."""

    turn_id: str
    call: dict[str, Any] = Field(description="The call: id, name, arguments, as in its events")
    decide_url: str = Field(description='POST `{"decision": "approve"|"deny"}` here')


class ApprovalPage(BaseModel):
    items: list[PendingApproval]


class TurnAccepted(BaseModel):
    turn_id: str
    session_id: str
    events_url: str
    pending_approvals: list[PendingApproval] = Field(
        default_factory=list,
        description="When a waiting request answers 202 because a tool call needs "
        "approval: the calls its turn waits on, or those of the turn it is queued behind "
        "(each item's `turn_id` says which)",
    )


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


_ERROR_DESCRIPTIONS = {
    400: "The body is not UTF-8 JSON, or a cursor does not decode to a position",
    401: "No valid bearer token (with `WWW-Authenticate: Bearer`)",
    403: "The caller lacks the role this needs (agent or admin); the message names it",
    404: "No such session or turn for this user",
    409: "The session's state forbids it: the id is taken, the session was ended, the "
    "user's session limit is reached (`session_limit_reached`), the turn is not running, "
    "another agent claimed the session",
    413: "The request body is over MAX_REQUEST_BYTES",
    422: "The request does not match this operation's schema",
    429: "The user's rate limit or token budget is reached (with `Retry-After`)",
    502: "The model provider refused the request",
    503: "A dependency is unreachable or at capacity; retry (usually with `Retry-After`)",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {code: {"model": ErrorBody, "description": _ERROR_DESCRIPTIONS[code]} for code in codes}
