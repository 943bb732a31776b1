"""Payloads of a tool-calling turn: the tools offered, the calls the model asks for, how
each call went, and a person's decision on one that needs approval. They cross the
Temporal boundary, so every text is capped and the history stays bounded."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.models import ContextReport, PromptParts, TokenUsage

# The built-in tools (activities/tools/builtin.py), all offered unless TOOLS says otherwise.
BUILTIN_TOOLS = (
    "search_companies",
    "search_web",
    "query_data",  # offered where a database is configured (DATA_DATABASE_URL)
    "create_ticket",
    "escalate_to_human",
)
MAX_TOOL_CONTENT_CHARS = 8000  # what one call's result may put in front of the model
MAX_ARGUMENT_CHARS = 8000

CallStatus = Literal[
    "ok",  # ran; `content` is its result
    "error",  # ran and failed, or could not run (unknown tool, bad arguments)
    "denied",  # a person said no
    "timed_out",  # nobody decided within APPROVAL_TIMEOUT
    "cancelled",  # the turn was cancelled while the call waited
]
Decision = Literal["approve", "deny"]


class ToolSpec(BaseModel):
    """What the workflow knows of a tool: enough to offer it, bound it and ask for approval."""

    name: str
    description: str = ""
    side_effects: bool = False
    needs_approval: bool = False
    timeout_seconds: float = 30.0
    max_attempts: int = 3
    source: str = "builtin"  # or "mcp:<server>"


class ToolCatalog(BaseModel):
    tools: list[ToolSpec] = Field(default_factory=list)

    def get(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)


class ToolCall(BaseModel):
    """A call the model asked for. `arguments` is parsed and checked against the tool's
    argument model by the worker; `problem` says why it cannot run as asked."""

    id: str = Field(max_length=200)
    name: str = Field(max_length=200)
    arguments: dict[str, Any] = Field(default_factory=dict)
    raw_arguments: str = Field(default="", max_length=MAX_ARGUMENT_CHARS)
    problem: str | None = None


class Approval(BaseModel):
    decision: Decision
    note: str = ""
    decided_by: str = ""
    timed_out: bool = False  # nobody decided within APPROVAL_TIMEOUT: denied


# A call's id in this API (events, the approvals URL). The model's own id when it fits
# and is new in the turn, else one the workflow gives it: a model may reuse an id in a
# later round, or send one no URL can carry, and a decision must name one call.
MAX_NOTE_CHARS = 2000  # a decision's note for the model
CALL_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,200}$"
_CALL_ID = re.compile(CALL_ID_PATTERN)


def call_id_in_turn(model_id: str, index: int, used: set[str]) -> str:
    """The id of the turn's call number `index`, unique among `used`."""
    if _CALL_ID.fullmatch(model_id) and model_id not in used:
        return model_id
    fresh, n = f"call_{index}", 1
    while fresh in used:
        fresh, n = f"call_{index}_{n}", n + 1
    return fresh


class ToolCallRecord(BaseModel):
    """One call as the turn ran it: in the TurnResult, the stored message and the events."""

    id: str
    index: int  # the call's position in the turn, all steps counted: part of its key
    step: int
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    needs_approval: bool = False
    status: CallStatus | Literal["pending", "awaiting_approval"] = "pending"
    content: str = ""  # what the model was told
    data: dict[str, Any] | None = None  # a structured result (e.g. search results)
    approval: Approval | None = None
    ms: float | None = None


class ModelStepInput(BaseModel):
    turn_id: str
    session_id: str
    user_id: str
    parts: PromptParts
    # The turn's tool exchange so far, as chat messages (assistant tool_calls, tool results).
    exchange: list[dict[str, Any]] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    answer_now: bool = False  # the last round: tools shown, none may be called
    step: int = 0
    streamed_chars: int = 0  # reply text earlier steps streamed, kept by a restart


class ModelStep(BaseModel):
    text: str = ""
    calls: list[ToolCall] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    first_token_ms: float | None = None
    cancelled: bool = False
    context: ContextReport | None = None
    cached: bool = False  # served by the response cache, no model asked


class ToolCallInput(BaseModel):
    turn_id: str
    session_id: str
    user_id: str
    call: ToolCall
    idempotency_key: str


class ToolCallOutput(BaseModel):
    ok: bool = True
    content: str = ""  # clipped to MAX_TOOL_CONTENT_CHARS by the tool runner
    data: dict[str, Any] | None = None


class ApprovalDecision(BaseModel):
    """The `decide_approval` update's argument (POST .../approvals/{call_id})."""

    model_config = ConfigDict(extra="forbid")

    turn_id: str
    call_id: str = Field(max_length=200)
    decision: Decision
    note: str = Field(default="", max_length=MAX_NOTE_CHARS)
    decided_by: str = ""


class ApprovalOutcome(BaseModel):
    turn_id: str
    call_id: str
    decision: Decision
    note: str = ""
    repeated: bool = False  # the same decision was already recorded
