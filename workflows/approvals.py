"""Approvals as durable waits: a tool call that needs a person's decision is pending in
the session workflow's state until the `decide_approval` update decides it, the turn is
cancelled, or APPROVAL_TIMEOUT passes (denied). Being workflow state, a pending request
survives worker and server restarts, and a decided call is never asked about again.
Deterministic."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from shared.tool_calls import Approval, ApprovalDecision, ApprovalOutcome

DECISIONS_KEPT = 200  # decided calls remembered, so a repeated decision stays idempotent


class Approvals:
    def __init__(self) -> None:
        self._pending: dict[tuple[str, str], dict[str, object]] = {}  # -> the call's record
        self._decided: OrderedDict[tuple[str, str], Approval] = OrderedDict()

    @property
    def pending(self) -> list[dict[str, object]]:
        return list(self._pending.values())

    def check(self, req: ApprovalDecision, running_turn: str | None) -> None:
        """The update's validator: refused decisions never enter the history."""
        key = (req.turn_id, req.call_id)
        decided = self._decided.get(key)
        if decided is not None:
            if decided.decision != req.decision:
                raise ApplicationError(
                    f"call {req.call_id} was already decided: {decided.decision}",
                    type="ApprovalConflict",
                )
            return  # the same decision again: answered as recorded
        if key in self._pending:
            return
        if req.turn_id == running_turn:
            raise ApplicationError(
                f"turn {req.turn_id} has no call {req.call_id!r} waiting for approval",
                type="ApprovalNotFound",
            )
        raise ApplicationError(
            f"turn {req.turn_id} is not waiting for this decision (it has moved on)",
            type="ApprovalStale",
        )

    def decide(self, req: ApprovalDecision) -> ApprovalOutcome:
        key = (req.turn_id, req.call_id)
        decided = self._decided.get(key)
        if decided is None:
            decided = Approval(decision=req.decision, note=req.note, decided_by=req.decided_by)
            self._remember(key, decided)
            repeated = False
        else:
            repeated = True
        return ApprovalOutcome(
            turn_id=req.turn_id,
            call_id=req.call_id,
            decision=decided.decision,
            note=decided.note,
            repeated=repeated,
        )

    def _remember(self, key: tuple[str, str], decided: Approval) -> None:
        self._decided[key] = decided
        while len(self._decided) > DECISIONS_KEPT:
            self._decided.popitem(last=False)

    async def wait(
        self,
        turn_id: str,
        call_id: str,
        record: dict[str, object],
        deadline: timedelta,
        cancelled: Callable[[], bool],
        announce: Callable[[], Awaitable[None]],
    ) -> Approval | None:
        """The decision; None when the turn was cancelled. No decision in time is a denial
        (recorded, so a late decision is told the call was decided). The call is pending
        before `announce` tells anyone it waits: a decision sent the moment the request is
        seen finds it, rather than a 404."""
        key = (turn_id, call_id)
        self._pending[key] = record
        try:
            await announce()
            await workflow.wait_condition(
                lambda: key in self._decided or cancelled(), timeout=deadline
            )
        except TimeoutError:
            minutes = deadline.total_seconds() / 60
            note = f"no decision within {minutes:g} min"
            self._remember(key, Approval(decision="deny", note=note, timed_out=True))
        finally:
            self._pending.pop(key, None)
        if key not in self._decided:
            return None
        return self._decided[key]
