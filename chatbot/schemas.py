"""Request and response bodies of the /v1 API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field

from shared.models import SendMessage, StorableText

SESSION_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
SessionId = Annotated[
    str,
    Path(
        pattern=SESSION_ID_PATTERN,
        description="Session id: letters, digits, '.', '_' or '-', up to 128 characters",
    ),
]


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN)
    title: StorableText = Field(default="", max_length=200)


class SessionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: StorableText = Field(min_length=1, max_length=200)


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


class SessionPage(BaseModel):
    items: list[SessionPublic]
    next_cursor: str | None


class MessageCreate(SendMessage):
    """A user's message. `client_message_id` is the idempotency key: a retried POST with
    the same id yields the same turn."""


class MessagePublic(BaseModel):
    id: str
    turn_id: str
    role: Literal["user", "assistant"]
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


class MessagePage(BaseModel):
    items: list[MessagePublic] = Field(description="Oldest first within the page")
    next_before: int | None = Field(description="Pass as `before` for the previous page")


class TurnAccepted(BaseModel):
    turn_id: str
    session_id: str
    events_url: str


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with."""
    return {code: {"model": ErrorBody} for code in codes}
