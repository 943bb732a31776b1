"""Payloads that cross the Temporal boundary: workflow, update and activity inputs and
results. One model per input, so each can grow fields compatibly. Sizes are capped so the
workflow's event history stays bounded."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_MESSAGE_CHARS = 8000
RECENT_TURNS = 10  # default of CONTEXT_RECENT_TURNS: turns sent to the model verbatim
SEEN_MESSAGE_IDS = 200  # client_message_ids remembered for duplicate rejection

Intent = Literal["chat", "company_search", "web_search", "both"]
TurnStatus = Literal["complete", "cancelled", "failed"]
# What a message does when the session is answering another (SendMessage.on_busy).
OnBusy = Literal["enqueue", "reject", "interrupt", "rollback"]
ON_BUSY_MODES: tuple[OnBusy, ...] = ("enqueue", "reject", "interrupt", "rollback")

_TURN_NAMESPACE = uuid.UUID("6f1c7a52-3f55-4d8e-9a57-0d4f0e8b9c21")


def storable_problem(value: str) -> str | None:
    """Why Postgres (and JSON) could not hold this text, or None: a NUL character, which
    Postgres text refuses, or an unpaired surrogate, which is not encodable as UTF-8."""
    if "\x00" in value:
        return "must not contain NUL (\\u0000) characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must be valid Unicode text (it holds an unpaired surrogate)"
    return None


def _storable(value: str) -> str:
    problem = storable_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# Text that is stored: refused at the edge, never a turn that fails to persist forever.
# The schema says "no NUL" too (a pattern), so a client generated from it never sends one;
# the validator keeps its own message for those that do.
StorableText = Annotated[
    str, AfterValidator(_storable), Field(json_schema_extra={"pattern": "^[^\x00]*$"})
]


def turn_id_for(session_id: str, update_id: str) -> str:
    """A turn's id follows from its session and update id (the client_message_id when
    given), so the gateway knows it before the workflow runs and a retried POST maps to
    the same turn."""
    return str(uuid.uuid5(_TURN_NAMESPACE, f"{session_id}/{update_id}"))


def workflow_id(session_id: str) -> str:
    return f"chat-{session_id}"


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


HandoffSource = Literal["user", "model", "rule"]
HANDOFF_REASON_CHARS = 500


class Handoff(BaseModel):
    """A session handed to a person: `waiting` in the queue, then `claimed` by an agent,
    who hands it back to the bot or closes it. The bot does not answer meanwhile."""

    state: Literal["waiting", "claimed"]
    source: HandoffSource
    reason: str = ""
    requested_by: str = ""
    requested_at: datetime
    agent_id: str | None = None
    claimed_at: datetime | None = None
    # No agent claimed it within HANDOFF_SLA_SECONDS: the user was told, and offered a ticket.
    sla_missed: bool = False


class RequestHandoff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: HandoffSource = "user"
    reason: StorableText = Field("", max_length=HANDOFF_REASON_CHARS)
    requested_by: str = ""


class ClaimHandoff(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=256)


class AgentReply(BaseModel):
    """An agent's message to the user of a session they claimed."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=256)
    text: StorableText = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    client_message_id: str | None = Field(None, max_length=128)


class ReleaseHandoff(BaseModel):
    """The agent is done: back to the bot, or the session closed."""

    model_config = ConfigDict(extra="forbid")

    agent_id: str = Field(min_length=1, max_length=256)
    outcome: Literal["bot", "closed"] = "bot"


FeedKind = Literal["handoff", "agent_message"]


class FeedEvent(BaseModel):
    """An event of the session's feed: `handoff` (the handoff now, or None: the bot
    answers again) or `agent_message` (an agent's turn: turn_id, text, agent_id)."""

    session_id: str
    kind: FeedKind
    data: dict[str, Any]


class SessionStart(BaseModel):
    """The workflow's input. A fresh start carries only who owns the session; the state is
    loaded from Postgres. Continue-as-new carries bounded state instead (`loaded`)."""

    session_id: str
    user_id: str
    idle_timeout_seconds: float = 300.0
    turns_per_run: int = 100
    recent_turns: int = RECENT_TURNS
    loaded: bool = False
    summary: str = ""
    summary_version: int = 0
    to_fold: list[ChatMessage] = Field(default_factory=list)
    recent: list[ChatMessage] = Field(default_factory=list)
    seen_message_ids: list[str] = Field(default_factory=list)
    turns_total: int = 0
    last_turn_id: str | None = None
    # TOOL_REPLIES resolved: company results get a fixed lead-in, not the model's prose.
    templated_tool_replies: bool = False
    # TOOL_CALLING resolved: the model chooses the turn's tools, in at most tool_max_steps
    # rounds; a call that needs approval waits approval_timeout_seconds for a person.
    tool_calling: bool = False
    tool_max_steps: int = 4
    approval_timeout_seconds: float = 900.0
    handoff: Handoff | None = None  # carried across continue-as-new
    handoff_sla_seconds: float = 600.0
    # This many failed turns in a row hand the session to a person (0: never).
    handoff_after_failures: int = 0
    # Intents the team keeps for people: such a turn hands the session over (router path).
    handoff_intents: list[Intent] = Field(default_factory=list)


class SendMessage(BaseModel):
    """A user's message: the `send_message` update's argument."""

    model_config = ConfigDict(extra="forbid")

    text: StorableText = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    client_message_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$"
    )
    on_busy: OnBusy | None = Field(
        default=None,
        description="When a turn is running: `enqueue` (wait for it), `reject` (409 with "
        "the running turn's id), `interrupt` (stop it, keeping its partial reply marked "
        "cancelled) or `rollback` (stop it and drop it from the history and context). "
        "Unset: the session's own setting (enqueue unless changed)",
    )


class CancelTurn(BaseModel):
    turn_id: str


class SessionState(BaseModel):
    """The `state` query's answer."""

    session_id: str
    user_id: str
    status: Literal["active", "ended"]
    running_turn_id: str | None
    queued_turns: int
    turns_total: int
    turns_this_run: int
    summary: str
    recent: list[ChatMessage]
    # Tool calls of the running turn waiting for a decision (ToolCallRecord, as JSON).
    pending_approvals: list[dict[str, Any]] = Field(default_factory=list)
    handoff: Handoff | None = None


class LoadedSession(BaseModel):
    summary: str = ""
    summary_version: int = 0
    recent: list[ChatMessage] = Field(default_factory=list)
    seen_message_ids: list[str] = Field(default_factory=list)
    turns_total: int = 0
    handoff: Handoff | None = None
    # Ended (by an operator, or an agent closing it) while a message started this run.
    ended: bool = False
    # The turn whose message and reply end `recent`: the one that can be regenerated.
    last_turn_id: str | None = None


class SessionRef(BaseModel):
    session_id: str
    user_id: str
    recent_turns: int = RECENT_TURNS


class RecordHandoff(BaseModel):
    """The session's handoff as Postgres keeps it (None: the bot answers)."""

    ref: SessionRef
    handoff: Handoff | None


class AgentTurn(BaseModel):
    """An agent's message as stored and published: a turn of its own."""

    turn_id: str
    session_id: str
    user_id: str
    agent_id: str
    text: str
    client_message_id: str | None = None
    final_seq: int | None = None


class DetectIntentInput(BaseModel):
    text: str
    # Whose turn it is: the LLM layer's tokens are recorded under it (none: not recorded).
    turn_id: str = ""
    session_id: str = ""
    user_id: str = ""


class IntentResult(BaseModel):
    intent: Intent
    confidence: float
    query: str | None = None  # what company search (or, alone, web search) looks for
    location: str | None = None
    # For `both`: the web search's own query, the whole request ("cloud suppliers and the
    # latest news about them"), where `query` is its company half ("cloud suppliers").
    web_query: str | None = None
    # A question about the data database that no model here can query (no tool calling):
    # the turn says so plainly instead of guessing numbers.
    data_question: bool = False
    # The message asks for a person in so many words ("can I talk to a human?").
    wants_person: bool = False


class PromptParts(BaseModel):
    """What a reply's prompt is made of; generate_reply assembles and trims it to budget."""

    system: str
    summary: str = ""
    retrieved: list[str] = Field(default_factory=list)  # most similar first
    recent: list[ChatMessage] = Field(default_factory=list)
    tool_context: str = ""
    user: str
    retrieval_embedder: str | None = None  # reported, not sent to the model


class ContextReport(BaseModel):
    """What went into the prompt, reported in the TurnResult."""

    prompt_tokens: int = 0
    recent_turns: int = 0
    retrieved: int = 0
    summary: bool = False
    tool_context: bool = False
    trimmed: list[str] = Field(default_factory=list)
    # The embedder that retrieved earlier messages this turn; None when none ran (a short
    # session, no embedder: then recall is the summary and the recent turns only).
    embedder: str | None = None


class GenerateReplyInput(BaseModel):
    turn_id: str
    session_id: str = ""  # whose turn: recorded with the stream, so readers find it again
    user_id: str = ""
    messages: list[ChatMessage] = Field(default_factory=list)
    parts: PromptParts | None = None


class SummarizeInput(BaseModel):
    session_id: str
    user_id: str = ""  # whose usage the fold is (none: not recorded)
    version: int  # the summary version this fold applies to
    summary: str
    turns: list[ChatMessage]


class SummaryResult(BaseModel):
    summary: str
    version: int


class RetrieveInput(BaseModel):
    session_id: str
    query: str
    exclude_recent: int = 0  # the newest messages, already in the prompt verbatim


class Retrieved(BaseModel):
    snippets: list[str] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list)
    available: bool = True
    embedder: str | None = None  # which embedder compared them


class TokenUsage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, served from the provider's prompt cache
    cost_usd: float = 0.0  # estimated from the price table (MODEL_PRICES)

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 6),
        )


class GeneratedReply(BaseModel):
    text: str
    usage: TokenUsage
    cancelled: bool = False
    first_token_ms: float | None = None
    model: str = ""
    context: ContextReport | None = None
    cached: bool = False  # served by the response cache, no model asked


class TurnResult(BaseModel):
    turn_id: str
    session_id: str
    client_message_id: str | None = None
    user_text: str = ""
    reply: str
    # The person from the team who wrote `reply` (a handed-off session); None: the bot.
    agent_id: str | None = None
    # The session is with a person (this turn was not answered by the bot): its handoff.
    handoff: Handoff | None = None
    status: TurnStatus = "complete"
    intent: Intent = "chat"
    intent_confidence: float = 1.0
    tool_results: list[dict[str, Any]] = Field(default_factory=list)
    citations: list[dict[str, Any]] = Field(default_factory=list)
    # What the tools found, as text rendered the same way whatever the model replied
    # (shared/findings.py): companies, numbered sources, tools that were unavailable.
    findings: str = ""
    # A tool-calling turn's calls, in order (shared/tool_calls.py ToolCallRecord).
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    usage: TokenUsage = Field(default_factory=TokenUsage)
    timings_ms: dict[str, float] = Field(default_factory=dict)
    context: ContextReport | None = None
    error: str | None = None
    # The reply came from the response cache (CACHE_MODE): no provider tokens spent.
    cached: bool = False
    # The query_data calls' steps, inside the turn's own timings: sql_ms, sql_attempts
    # (queries the SQL model wrote) and chart_ms, summed over the turn's calls.
    data_timings: dict[str, float] = Field(default_factory=dict)
    # Stopped by a message sent with on_busy=rollback: nothing of it was kept (status
    # cancelled); its spend is still counted.
    rolled_back: bool = False
    # The reply's version (regenerated turns have several; later turns see this one).
    version: int = 1
    versions: int = 1


class Regenerate(BaseModel):
    """Answer the session's latest turn again: the `regenerate` update's argument."""

    model_config = ConfigDict(extra="forbid")

    turn_id: str
    client_message_id: str | None = Field(
        default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$"
    )


class SelectVersion(BaseModel):
    """Use another of the latest turn's replies from now on."""

    turn_id: str
    version: int = Field(ge=1)


class PersistVersion(BaseModel):
    """A regenerated reply to store as the turn's next version (idempotent by its stream),
    its final event published on that stream once stored."""

    result: TurnResult
    stream_id: str
    user_id: str
    final_seq: int


class ChosenVersion(BaseModel):
    """The latest turn's reply now in use."""

    turn_id: str
    version: int
    versions: int
    reply: str
    findings: str = ""


class PersistTurn(BaseModel):
    """A turn to store and, once stored, its `final` event to publish (number `final_seq`
    of the turn's stream) in the same local activity: one step of the turn, not two."""

    result: TurnResult
    user_id: str
    final_seq: int | None = None
    # A message while a person has the session: the user's alone is stored (no reply yet).
    user_only: bool = False
    # Rolled back: no message is written; the turn's spend is charged and its event sent.
    dropped: bool = False


class PersistOutcome(BaseModel):
    ms: float  # storing the turn, as the activity timed it
    published: bool = False  # the final event is in the turn's stream


class VersionOutcome(PersistOutcome):
    """A regenerated reply stored: its version, of how many the turn now has."""

    version: int
    versions: int


TurnEventKind = Literal[
    "tool", "tool_call", "approval_required", "approval_decided", "tool_result", "final", "error"
]


class TurnEvent(BaseModel):
    """An event of a turn's stream besides tokens: a tool's result as it arrives (`tool`
    on the router's path; `tool_call`, `approval_required`, `approval_decided`,
    `tool_result` on the tool-calling path, each with the call), then `final` with the
    result or `error`."""

    turn_id: str
    kind: Literal[
        "tool",
        "tool_call",
        "approval_required",
        "approval_decided",
        "tool_result",
        "final",
        "error",
    ]
    session_id: str = ""  # whose turn: recorded with the event (Redis may have lost it)
    user_id: str = ""
    # The workflow's number for it (set as it is published): a publish run again (a
    # replay after its workflow task's completion was lost) finds it appended already.
    seq: int = 0
    tool: dict[str, Any] | None = None
    call: dict[str, Any] | None = None
    result: TurnResult | None = None
    error: str | None = None
    error_type: str | None = None
