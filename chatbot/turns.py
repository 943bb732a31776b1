"""The gateway's side of a turn: send a message to the session's workflow
(update-with-start), cancel a running turn, end a session; Temporal errors become
API errors here."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowFailureError,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateHandle,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import (
    QueryRejectCondition,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from chatbot.errors import (
    ApiError,
    Conflict,
    NotFound,
    OverBudget,
    ProviderDown,
    SessionBusy,
    Unavailable,
    Unprocessable,
    UpstreamFailed,
)
from shared import search_attributes as sa
from shared.config import Settings
from shared.models import (
    AgentReply,
    CancelTurn,
    ChosenVersion,
    ClaimHandoff,
    Handoff,
    Regenerate,
    ReleaseHandoff,
    RequestHandoff,
    SelectVersion,
    SendMessage,
    SessionStart,
    TurnResult,
    turn_id_for,
    workflow_id,
)
from shared.tool_calls import ApprovalDecision, ApprovalOutcome
from workflows.chat_session import ChatSessionWorkflow

T = TypeVar("T")


class DuplicateMessage(Conflict):
    """The client_message_id was used before, in an earlier run of the session."""


# ApplicationError types raised by the workflow, and what they mean to a client.
_ERRORS: dict[str, type[ApiError]] = {
    "InvalidMessage": Unprocessable,
    "DuplicateMessage": DuplicateMessage,
    "SessionEnded": Conflict,
    "TurnNotRunning": Conflict,
    # Regenerate and versions: only the latest answered turn, and not while a person has it.
    "NotLatestTurn": Conflict,
    "WithAPerson": Conflict,
    "VersionNotFound": NotFound,
    # Approvals: decided otherwise already, asked of a turn that has moved on, or unknown.
    "ApprovalConflict": Conflict,
    "ApprovalStale": Conflict,
    "ApprovalNotFound": NotFound,
    # Handoff: claimed by another agent first, not claimed (by this agent), not handed off.
    "HandoffClaimed": Conflict,
    "HandoffNotClaimed": Conflict,
    "NotHandedOff": Conflict,
    "LLMRequestRejected": UpstreamFailed,
    "LLMUnavailable": Unavailable,
    # Nothing of the turn was kept, and a retry of the same update gets the same outcome:
    # not a 503 (retry as is) but a failure to send again as a new message.
    "TurnNotStored": UpstreamFailed,
}


def over_budget(message: str, details: object) -> OverBudget:
    """429 budget_exceeded, retried after the budget resets."""
    shown = details if isinstance(details, dict) else {}
    retry_after = None
    try:
        resets = datetime.fromisoformat(str(shown.get("resets_at")))
        retry_after = max(1.0, (resets - datetime.now(UTC)).total_seconds())
    except ValueError:
        pass
    return OverBudget(message, retry_after=retry_after, details=shown or None)


def api_error(err: Exception) -> ApiError:
    if isinstance(err, WorkflowUpdateRPCTimeoutOrCancelledError):
        # The turn was handed over and still runs; a retry with the same
        # client_message_id gets it, never a second one.
        return Unavailable(
            "the turn is taking longer than the gateway waits; retry with the same "
            "client_message_id to get its result",
            retry_after=2,
        )
    if isinstance(err, WorkflowUpdateFailedError):
        cause = err.cause
        if isinstance(cause, ApplicationError) and cause.type == "BudgetExceeded":
            return over_budget(cause.message, cause.details[0] if cause.details else {})
        if isinstance(cause, ApplicationError) and cause.type == "SessionBusy":
            busy = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            return SessionBusy(cause.message, details=busy or None)
        if isinstance(cause, ApplicationError) and cause.type == "ProviderUnavailable":
            shown = cause.details[0] if cause.details and isinstance(cause.details[0], dict) else {}
            wait = shown.get("retry_after")
            return ProviderDown(
                cause.message,
                retry_after=float(wait) if isinstance(wait, int | float) else 5,
                details=shown or None,
            )
        if isinstance(cause, ApplicationError):
            return _ERRORS.get(cause.type or "", UpstreamFailed)(cause.message)
        return UpstreamFailed(f"the turn failed: {cause}")
    if isinstance(err, RPCError):
        if err.status == RPCStatusCode.NOT_FOUND:
            return Conflict("the session is not running")
        return Unavailable(f"Temporal is not reachable ({err.status.name})", retry_after=2)
    raise err


async def refused_at_start(handle: WorkflowUpdateHandle[Any]) -> None:
    """Raise the workflow's refusal of an update started up to ACCEPTED: the SDK returns
    a handle even when the update's validator refused it (found: `?wait=false` messages
    to a busy session with on_busy=reject answered 202), and raises only from result().
    The server's answer carries that outcome already, so no second call is made, as the
    Temporal CLI does for update-with-start."""
    outcome = getattr(handle, "_known_outcome", None)
    if outcome is not None and outcome.HasField("failure"):
        await temporal_call(handle.result())


async def temporal_call(call: Awaitable[T]) -> T:
    try:
        return await call
    except (WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError, RPCError) as err:
        raise api_error(err) from err


class Turns:
    def __init__(self, client: Client, settings: Settings) -> None:
        self._client = client
        self._settings = settings

    async def send(
        self, *, session_id: str, user_id: str, message: SendMessage, until_done: bool = False
    ) -> tuple[str, WorkflowUpdateHandle[TurnResult]]:
        """Hand the message to the session's workflow (starting it if it is not running)
        and return once the workflow has accepted it, or with `until_done` once the turn
        is over (one call instead of a second one polling for the result): the turn id and
        its handle."""
        update_id = message.client_message_id or uuid.uuid4().hex
        start = self._start_operation(session_id, user_id)
        handle = await temporal_call(
            self._client.start_update_with_start_workflow(
                ChatSessionWorkflow.send_message,
                message,
                id=update_id,
                start_workflow_operation=start,
                wait_for_stage=(
                    WorkflowUpdateStage.COMPLETED if until_done else WorkflowUpdateStage.ACCEPTED
                ),
            )
        )
        await refused_at_start(handle)
        return turn_id_for(session_id, update_id), handle

    def _start_operation(
        self, session_id: str, user_id: str
    ) -> WithStartWorkflowOperation[ChatSessionWorkflow, None]:
        """The session's workflow, started if it is not running (a session that went idle
        resumes from Postgres)."""
        return WithStartWorkflowOperation(
            ChatSessionWorkflow.run,
            SessionStart(
                session_id=session_id,
                user_id=user_id,
                idle_timeout_seconds=self._settings.inactivity_timeout_minutes * 60,
                turns_per_run=self._settings.turns_per_run,
                recent_turns=self._settings.context_recent_turns,
                templated_tool_replies=self._settings.templated_tool_replies,
                tool_calling=self._settings.tool_calling_enabled,
                tool_max_steps=self._settings.tool_max_steps,
                approval_timeout_seconds=self._settings.approval_timeout_seconds,
                handoff_sla_seconds=self._settings.handoff_sla_seconds,
                handoff_after_failures=self._settings.handoff_after_failures,
                handoff_intents=list(self._settings.handoff_intents),
            ),
            id=workflow_id(session_id),
            task_queue=self._settings.temporal_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.USER_ID, user_id),
                    SearchAttributePair(sa.STATUS, "active"),
                ]
            ),
            static_summary=f"Chat session {session_id} of {user_id}",
            static_details=(
                f"Session `{session_id}`, owned by `{user_id}`. Each `send_message` update is "
                "one turn: detect intent -> generate reply (tokens stream through Redis) -> "
                "persist turn. Query `state` for the live view."
            ),
        )

    async def regenerate(
        self, *, session_id: str, user_id: str, request: Regenerate, until_done: bool = False
    ) -> tuple[str, WorkflowUpdateHandle[TurnResult]]:
        """Answer the latest turn again (starting the session's workflow if it is idle):
        the id of the new answer's stream, and the update's handle."""
        update_id = f"regenerate:{request.client_message_id or uuid.uuid4().hex}"
        handle = await temporal_call(
            self._client.start_update_with_start_workflow(
                ChatSessionWorkflow.regenerate,
                request,
                id=update_id,
                start_workflow_operation=self._start_operation(session_id, user_id),
                wait_for_stage=(
                    WorkflowUpdateStage.COMPLETED if until_done else WorkflowUpdateStage.ACCEPTED
                ),
            )
        )
        await refused_at_start(handle)
        return turn_id_for(session_id, update_id), handle

    async def select_version(
        self, *, session_id: str, user_id: str, request: SelectVersion
    ) -> ChosenVersion:
        return await temporal_call(
            self._client.execute_update_with_start_workflow(
                ChatSessionWorkflow.select_version,
                request,
                start_workflow_operation=self._start_operation(session_id, user_id),
            )
        )

    async def request_handoff(
        self, *, session_id: str, user_id: str, request: RequestHandoff
    ) -> Handoff:
        """Hand the session to a person (starting its workflow if it is idle)."""
        return await temporal_call(
            self._client.execute_update_with_start_workflow(
                ChatSessionWorkflow.request_handoff,
                request,
                start_workflow_operation=self._start_operation(session_id, user_id),
            )
        )

    async def claim_handoff(self, *, session_id: str, agent_id: str) -> Handoff:
        handle = self._client.get_workflow_handle(workflow_id(session_id))
        return await temporal_call(
            handle.execute_update(
                ChatSessionWorkflow.claim_handoff, ClaimHandoff(agent_id=agent_id)
            )
        )

    async def agent_reply(self, *, session_id: str, reply: AgentReply) -> TurnResult:
        handle = self._client.get_workflow_handle(workflow_id(session_id))
        return await temporal_call(handle.execute_update(ChatSessionWorkflow.agent_reply, reply))

    async def release_handoff(self, *, session_id: str, release: ReleaseHandoff) -> None:
        handle = self._client.get_workflow_handle(workflow_id(session_id))
        await temporal_call(handle.execute_update(ChatSessionWorkflow.release_handoff, release))

    async def cancel(self, *, session_id: str, turn_id: str) -> None:
        handle = self._client.get_workflow_handle(workflow_id(session_id))
        await temporal_call(
            handle.execute_update(ChatSessionWorkflow.cancel_turn, CancelTurn(turn_id=turn_id))
        )

    async def decide(self, *, session_id: str, decision: ApprovalDecision) -> ApprovalOutcome:
        """A person's decision on a tool call the session's running turn waits on."""
        handle = self._client.get_workflow_handle(workflow_id(session_id))
        return await temporal_call(
            handle.execute_update(ChatSessionWorkflow.decide_approval, decision)
        )

    async def pending_approvals(
        self, *, session_id: str
    ) -> tuple[str | None, list[dict[str, Any]]]:
        """The running turn and the tool calls it waits on a decision for (none when the
        session's workflow is not running)."""
        handle = self._client.get_workflow_handle(workflow_id(session_id))
        try:
            state = await handle.query(
                ChatSessionWorkflow.state, reject_condition=QueryRejectCondition.NOT_OPEN
            )
        except WorkflowQueryRejectedError:
            return None, []
        except WorkflowQueryFailedError as err:
            raise Unavailable(f"the session did not answer: {err}", retry_after=2) from err
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None, []
            raise api_error(err) from err
        return state.running_turn_id, list(state.pending_approvals)

    async def end(self, *, session_id: str) -> None:
        """End the session's workflow gracefully, if it is running."""
        handle = self._client.get_workflow_handle(workflow_id(session_id))
        try:
            await handle.signal(ChatSessionWorkflow.end_session)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise api_error(err) from err

    async def close(self, *, session_id: str, within: float) -> str | None:
        """End the session's workflow and wait until it has closed, so its id can be used
        again at once: gracefully (a running turn finishes) for `within` seconds, then by
        terminating it. Returns the turn that was cut short, if one was."""
        await self.end(session_id=session_id)
        handle = self._client.get_workflow_handle(workflow_id(session_id))
        try:
            await asyncio.wait_for(handle.result(), within)
            return None
        except TimeoutError:
            pass
        except (WorkflowFailureError, RPCError):
            return None  # closed (or never ran): nothing left to wait for
        running: str | None = None
        with contextlib.suppress(RPCError, WorkflowQueryFailedError):
            running = (await handle.query(ChatSessionWorkflow.state)).running_turn_id
        try:
            await handle.terminate(reason="the session was deleted")
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise api_error(err) from err
        return running
