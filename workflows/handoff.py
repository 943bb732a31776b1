"""A session handed to a person, as workflow state: `waiting` in the agents' queue, then
`claimed` by one agent (a second claim is refused, naming who has it), who writes to the
user and hands the session back to the bot or closes it. Being workflow state it survives
worker and server restarts; Postgres holds a copy for the queue. Deterministic: the
workflow's clock is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from shared.models import Handoff, RequestHandoff


class HandoffDesk:
    def __init__(self, current: Handoff | None = None) -> None:
        self.current = current

    @property
    def active(self) -> bool:
        return self.current is not None

    def request(self, req: RequestHandoff, now: datetime) -> bool:
        """Into the queue; False when it is there already (a repeated request)."""
        if self.current is not None:
            return False
        self.current = Handoff(
            state="waiting",
            source=req.source,
            reason=req.reason,
            requested_by=req.requested_by,
            requested_at=now,
        )
        return True

    def check_claim(self, agent_id: str) -> None:
        """The claim's validator, and the handler's own check: of two claims accepted in
        one workflow task, the second finds the first's and is refused."""
        current = self._needed()
        if current.state == "claimed" and current.agent_id != agent_id:
            raise ApplicationError(
                f"the session was claimed by {current.agent_id} first", type="HandoffClaimed"
            )

    def claim(self, agent_id: str, now: datetime) -> bool:
        """The agent's now; False when it was theirs already."""
        self.check_claim(agent_id)
        assert self.current is not None
        if self.current.state == "claimed":
            return False
        self.current = self.current.model_copy(
            update={"state": "claimed", "agent_id": agent_id, "claimed_at": now}
        )
        return True

    def check_agent(self, agent_id: str) -> None:
        """Only the agent who claimed it writes to the user or hands it back."""
        current = self._needed()
        if current.state != "claimed":
            raise ApplicationError(
                "claim the session before writing to its user", type="HandoffNotClaimed"
            )
        if current.agent_id != agent_id:
            raise ApplicationError(
                f"the session is claimed by {current.agent_id}", type="HandoffClaimed"
            )

    def release(self, agent_id: str) -> None:
        self.check_agent(agent_id)
        self.current = None

    def sla_left(self, sla: timedelta, now: datetime) -> timedelta | None:
        """How long until nobody claiming it counts as missed; None: nothing to wait for."""
        current = self.current
        if current is None or current.state != "waiting" or current.sla_missed:
            return None
        return sla - (now - current.requested_at)

    def miss_sla(self) -> None:
        assert self.current is not None
        self.current = self.current.model_copy(update={"sla_missed": True})

    def _needed(self) -> Handoff:
        if self.current is None:
            raise ApplicationError("the session is not handed to a person", type="NotHandedOff")
        return self.current
