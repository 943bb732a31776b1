"""A deliberately incompatible edit of the session workflow, for the replay tests: each
turn now waits a moment first, a timer the recorded runs never started. Its own module,
importing only what a workflow may, because the workflow sandbox re-imports it."""

from __future__ import annotations

from temporalio import workflow
from temporalio.common import VersioningBehavior

with workflow.unsafe.imports_passed_through():
    from shared.models import SendMessage, SessionStart, TurnResult
    from workflows.chat_session import ChatSessionWorkflow


@workflow.defn(name="ChatSessionWorkflow", versioning_behavior=VersioningBehavior.PINNED)
class IncompatibleEdit(ChatSessionWorkflow):
    @workflow.run
    async def run(self, start: SessionStart) -> None:
        await super().run(start)

    async def _run_turn(self, turn_id: str, msg: SendMessage) -> TurnResult:
        await workflow.sleep(0.01)
        return await super()._run_turn(turn_id, msg)
