"""A tool-calling turn: a bounded loop in which the model asks for tool calls, the calls
of one round run in parallel as activities (each waiting for a person's approval first
when its tool needs one), their results go back, until the model answers or
TOOL_MAX_STEPS rounds are spent (then it answers with what it has, no tools offered).
Every call is published as it is asked for, waits, and ends. Deterministic."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.llm import LlmActivities
    from activities.tools.runner import ToolActivities
    from shared.models import ContextReport, PromptParts, TokenUsage, TurnEvent, TurnEventKind
    from shared.tool_calls import (
        ModelStep,
        ModelStepInput,
        ToolCall,
        ToolCallInput,
        ToolCallRecord,
        ToolCatalog,
        ToolSpec,
        call_id_in_turn,
    )
    from workflows import policies
    from workflows.approvals import Approvals

# Results of these tools are shown as the router path shows them (shared/findings.py).
SEARCH_TOOLS = frozenset({"company_search", "web_search"})
# A later round refused by the user's budget: the turn answers with what it has.
OUT_OF_BUDGET = (
    "I reached your usage budget before I could finish this answer, so it stops here "
    "with what the tools found so far."
)


def _over_budget(err: ActivityError) -> bool:
    cause = err.cause
    return isinstance(cause, ApplicationError) and cause.type == "BudgetExceeded"


@dataclass
class ToolTurnOutcome:
    text: str = ""
    usage: TokenUsage = field(default_factory=TokenUsage)
    first_token_ms: float | None = None
    cancelled: bool = False
    context: ContextReport | None = None
    calls: list[ToolCallRecord] = field(default_factory=list)
    steps: int = 0
    out_of_budget: bool = False  # a later round was refused by the user's budget
    cached: bool = False  # the first round was answered by the response cache

    @property
    def tool_results(self) -> list[dict[str, Any]]:
        """The searches' and queries' structured results, for the turn's findings and the
        page; a query that failed too (its attempts say why)."""
        return [
            c.data
            for c in self.calls
            if c.data is not None
            and (
                (c.data.get("tool") in SEARCH_TOOLS and c.status == "ok")
                or c.data.get("tool") == "query_data"
            )
        ]


@dataclass
class ToolTurn:
    turn_id: str
    session_id: str
    user_id: str
    parts: PromptParts
    catalog: ToolCatalog
    max_steps: int
    approval_timeout: timedelta
    approvals: Approvals
    publish: Callable[[TurnEvent], Awaitable[None]]
    cancelled: Callable[[], bool]
    outcome: ToolTurnOutcome = field(default_factory=ToolTurnOutcome)

    async def run(self) -> ToolTurnOutcome:
        out = self.outcome
        exchange: list[dict[str, Any]] = []
        offered = [t.name for t in self.catalog.tools]
        for step in range(self.max_steps + 1):
            last = step == self.max_steps  # the bound: answer with what there is
            try:
                reply = await self._model(step, exchange, offered, answer_now=last)
            except ActivityError as err:
                if step == 0 or not _over_budget(err):
                    raise
                out.out_of_budget = True
                out.text += ("\n\n" if out.text else "") + OUT_OF_BUDGET
                break
            out.steps = step + 1
            out.cached = reply.cached
            out.text += reply.text
            out.usage = out.usage + reply.usage
            out.context = reply.context
            if out.first_token_ms is None and reply.first_token_ms is not None:
                out.first_token_ms = reply.first_token_ms
            if reply.cancelled or self.cancelled():
                out.cancelled = True
                break
            if last or not reply.calls:
                break
            exchange.append(_asked(reply))
            records = [self._record(step, call) for call in reply.calls]
            for record in records:
                await self._event("tool_call", record)
            await asyncio.gather(
                *(self._one(r, c) for r, c in zip(records, reply.calls, strict=True))
            )
            exchange += [  # under the model's own ids, which its request named
                {"role": "tool", "tool_call_id": c.id, "content": r.content}
                for r, c in zip(records, reply.calls, strict=True)
            ]
            if self.cancelled():
                out.cancelled = True
                break
        return out

    def _record(self, step: int, call: ToolCall) -> ToolCallRecord:
        index = len(self.outcome.calls)
        spec = self.catalog.get(call.name)
        used = {r.id for r in self.outcome.calls}
        record = ToolCallRecord(
            id=call_id_in_turn(call.id, index, used),
            index=index,
            step=step,
            name=call.name,
            arguments=call.arguments,
            idempotency_key=f"{self.turn_id}:{index}",
            needs_approval=bool(spec and spec.needs_approval and call.problem is None),
        )
        self.outcome.calls.append(record)  # so the next call's index follows this one
        return record

    async def _model(
        self, step: int, exchange: list[dict[str, Any]], tools: list[str], *, answer_now: bool
    ) -> ModelStep:
        return await workflow.execute_activity_method(
            LlmActivities.model_step,
            ModelStepInput(
                turn_id=self.turn_id,
                session_id=self.session_id,
                user_id=self.user_id,
                parts=self.parts,
                exchange=exchange,
                tools=tools,
                answer_now=answer_now,
                step=step,
                streamed_chars=len(self.outcome.text),
            ),
            start_to_close_timeout=policies.GENERATE_TIMEOUT,
            schedule_to_close_timeout=policies.GENERATE_DEADLINE,
            heartbeat_timeout=policies.GENERATE_HEARTBEAT,
            retry_policy=policies.LLM_RETRY,
            summary=f"model, round {step + 1}"
            + (": answer now, no more tools" if answer_now else ""),
        )

    async def _one(self, record: ToolCallRecord, call: ToolCall) -> None:
        spec = self.catalog.get(call.name)
        if call.problem is not None or spec is None:
            record.status = "error"
            record.content = f"Error: {call.problem or f'no tool named {call.name!r}'}"
            await self._event("tool_result", record)
            return
        if record.needs_approval and not await self._approved(record):
            await self._event("tool_result", record)
            return
        await self._call(record, call, spec)
        await self._event("tool_result", record)

    async def _approved(self, record: ToolCallRecord) -> bool:
        record.status = "awaiting_approval"
        approval = await self.approvals.wait(
            self.turn_id,
            record.id,
            record.model_dump(mode="json"),
            self.approval_timeout,
            self.cancelled,
            announce=lambda: self._event("approval_required", record),
        )
        if approval is None:
            record.status = "cancelled"
            record.content = "The turn was cancelled before anyone decided; the call was not made."
            return False
        record.approval = approval
        await self._event("approval_decided", record)
        if approval.decision == "approve":
            return True
        if approval.timed_out:
            record.status = "timed_out"
            record.content = (
                f"Nobody approved this call in time ({approval.note}), so it was not made. "
                "Tell the user it needs their approval to go ahead."
            )
        else:
            record.status = "denied"
            said = f' They said: "{approval.note}".' if approval.note else ""
            record.content = (
                f"The user denied this call, so it was not made.{said} Do not ask for it again "
                "in this turn; answer without it."
            )
        return False

    async def _call(self, record: ToolCallRecord, call: ToolCall, spec: ToolSpec) -> None:
        record.status = "pending"
        started = workflow.time()
        try:
            result = await workflow.execute_activity_method(
                ToolActivities.call_tool,
                ToolCallInput(
                    turn_id=self.turn_id,
                    session_id=self.session_id,
                    user_id=self.user_id,
                    call=call,
                    idempotency_key=record.idempotency_key,
                ),
                start_to_close_timeout=timedelta(seconds=spec.timeout_seconds),
                heartbeat_timeout=policies.TOOL_HEARTBEAT,
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=500),
                    maximum_interval=timedelta(seconds=5),
                    maximum_attempts=spec.max_attempts,
                    non_retryable_error_types=policies.TOOL_RETRY.non_retryable_error_types,
                ),
                summary=f"tool {spec.name} (call {record.index + 1})",
            )
        except ActivityError as err:
            cause = err.cause or err
            record.status, record.content = "error", f"Error: {cause}"
        else:
            record.status = "ok" if result.ok else "error"
            record.content = result.content if result.ok else f"Error: {result.content}"
            record.data = result.data
        record.ms = (workflow.time() - started) * 1000

    async def _event(self, kind: TurnEventKind, record: ToolCallRecord) -> None:
        await self.publish(
            TurnEvent(turn_id=self.turn_id, kind=kind, call=record.model_dump(mode="json"))
        )


def _asked(reply: ModelStep) -> dict[str, Any]:
    """The assistant message that asked for the round's calls, as the API wants it back."""
    calls = [
        {
            "id": c.id,
            "type": "function",
            "function": {"name": c.name, "arguments": c.raw_arguments or "{}"},
        }
        for c in reply.calls
    ]
    return {"role": "assistant", "content": reply.text or None, "tool_calls": calls}
