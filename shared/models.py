"""Payloads that cross the Temporal boundary: workflow, update and activity inputs and
results. One model per input, so each can grow fields compatibly."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_MESSAGE_CHARS = 8000
MAX_REPLY_CHARS = 32_000


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class SessionStart(BaseModel):
    """The workflow's input: who owns the session. Carried across continue-as-new."""

    session_id: str
    user_id: str


class SendMessage(BaseModel):
    """A user's message: the `send_message` update's argument."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    client_message_id: str | None = Field(default=None, min_length=1, max_length=128)


class GenerateReplyInput(BaseModel):
    turn_id: str
    messages: list[ChatMessage]


class TokenUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class GeneratedReply(BaseModel):
    text: str
    usage: TokenUsage
    first_token_ms: float | None = None
    model: str = ""


class TurnResult(BaseModel):
    turn_id: str
    session_id: str
    reply: str
    intent: str = "chat"
    usage: TokenUsage = Field(default_factory=TokenUsage)
    timings_ms: dict[str, float] = Field(default_factory=dict)
