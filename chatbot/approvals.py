"""What a running turn waits on a person for, as the gateway tells a client: the pending
tool calls with where to decide them, and a waiting JSON request that answers 202 with
them instead of holding on until someone decides (or APPROVAL_TIMEOUT)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from fastapi import Request
from temporalio.client import WorkflowUpdateHandle

from chatbot.relay import turn_events
from chatbot.resources import Resources
from chatbot.schemas import PendingApproval
from chatbot.turns import Turns, temporal_call
from shared.models import TurnResult

log = logging.getLogger(__name__)


async def pending_approvals(
    request: Request, res: Resources, session_id: str
) -> list[PendingApproval]:
    """The calls the session's running turn waits on a decision for."""
    running, calls = await Turns(await res.temporal(), res.settings).pending_approvals(
        session_id=session_id
    )
    if running is None:
        return []
    return [
        PendingApproval(
            turn_id=running,
            call=call,
            decide_url=str(
                request.url_for(
                    "decide_approval",
                    session_id=session_id,
                    turn_id=running,
                    call_id=str(call["id"]),
                )
            ),
        )
        for call in calls
    ]


async def _watch(
    request: Request, res: Resources, session_id: str, turn_id: str
) -> list[PendingApproval]:
    """What the session's running turn waits on, once `turn_id`'s stream says a call
    needs approval; [] if that turn ends first. The stream only wakes this up: the
    workflow's state says what still waits (a call seen in it may be decided since)."""
    async for event in turn_events(res, turn_id):
        if event is None:
            continue
        if event.type == "approval_required":
            pending = await pending_approvals(request, res, session_id)
            if pending:
                return pending
        elif event.type in ("final", "error"):
            break
    return []


async def _paused(
    request: Request, res: Resources, session_id: str, turn_id: str
) -> list[PendingApproval]:
    """The calls a turn waits on once it pauses, or those of the turn it is queued behind
    (their `turn_id` says which); [] once it ends without."""
    running, _ = await Turns(await res.temporal(), res.settings).pending_approvals(
        session_id=session_id
    )
    watched = {turn_id} if running in (None, turn_id) else {turn_id, running}
    tasks = {asyncio.ensure_future(_watch(request, res, session_id, t)): t for t in watched}
    try:
        while tasks:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task.result():
                    return task.result()
                if tasks.pop(task) == turn_id:
                    return []  # its own turn ended; a turn ahead ending changes nothing
        return []
    finally:
        for task in tasks:
            task.cancel()


async def result_or_pause(
    request: Request,
    res: Resources,
    session_id: str,
    turn_id: str,
    handle: WorkflowUpdateHandle[TurnResult],
) -> TurnResult | list[PendingApproval]:
    """The turn's result, or the calls it waits on if it pauses for a decision first."""
    result = asyncio.ensure_future(temporal_call(handle.result()))
    paused = asyncio.ensure_future(_paused(request, res, session_id, turn_id))
    try:
        done, _ = await asyncio.wait({result, paused}, return_when=asyncio.FIRST_COMPLETED)
        if result not in done and paused.exception() is None and paused.result():
            return paused.result()
        if paused in done and paused.exception() is not None:
            # Watching is a courtesy: without it the request waits for the result.
            log.warning("could not watch the turn for approvals: %s", paused.exception())
        return await result
    finally:
        for task in (result, paused):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
