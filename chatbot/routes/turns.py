"""A turn's event stream (resumable with Last-Event-ID), its cancellation, and the
decisions on its tool calls that wait for approval."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Path, Request, status
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from chatbot import repository
from chatbot.approvals import pending_approvals
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.errors import BadRequest, NotFound, Unavailable
from chatbot.resources import Resources
from chatbot.schemas import (
    STREAM_ID_PATTERN,
    ApprovalPage,
    SessionId,
    StreamId,
    error_responses,
)
from chatbot.sse import relay_sse
from chatbot.turns import Turns
from shared.models import StorableText
from shared.redis import REDIS_UNAVAILABLE
from shared.streams import TurnStreams
from shared.tool_calls import (
    CALL_ID_PATTERN,
    MAX_NOTE_CHARS,
    ApprovalDecision,
    ApprovalOutcome,
)

router = APIRouter(tags=["turns"], dependencies=[LogIds])
TURN_ID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
TurnId = Annotated[str, Path(pattern=TURN_ID_PATTERN, description="A turn id (UUID)")]
_STREAM_ID = re.compile(STREAM_ID_PATTERN)
ERRORS = error_responses(400, 401, 404, 422, 429, 503)


def stream_position(last_event_id: str | None) -> str:
    """The entry to resume after: a stream id this API sent, or the start."""
    after = last_event_id or "0-0"
    if not _STREAM_ID.match(after):
        raise BadRequest("Last-Event-ID must be the id of an event this stream sent")
    return after


# For this long after Redis (re)started, a turn neither Redis nor Postgres knows may be
# a running one whose owner record went with the old Redis: the worker records it again
# on the turn's next event (a slow first token or tool can hold that back for a minute
# or more), so it is "retry shortly", not "not found". The chaos suite's Redis-mid-stream
# fault found resumes answered 404 in that gap.
OWNER_RESTORE_SECONDS = 300


async def owner_id(res: Resources, turn_id: str) -> str | None:
    """The user a turn belongs to: from Redis while it streams, else from Postgres."""
    streams = TurnStreams(res.redis)
    redis_down = False
    try:
        owner = await streams.owner(turn_id)
        if owner is not None:
            return owner["user_id"]
    except REDIS_UNAVAILABLE:
        redis_down = True
    stored = await repository.turn_owner(res.engine, turn_id=turn_id)
    if stored is not None:
        return stored[1]
    if not redis_down:
        try:
            redis_down = await streams.uptime_seconds() < OWNER_RESTORE_SECONDS
        except REDIS_UNAVAILABLE:
            redis_down = True
    if redis_down:
        raise Unavailable("the turn's stream is unreachable for now; retry shortly", retry_after=2)
    return None


@router.get(
    "/turns/{turn_id}/events",
    name="turn_events",
    responses={
        **ERRORS,
        200: {"content": {"text/event-stream": {}}},
    },
)
async def turn_events(
    turn_id: TurnId,
    user: CurrentUser,
    res: ResourcesDep,
    last_event_id: Annotated[
        StreamId | SkipJsonSchema[None],
        Header(description="The `id` of the last event received, to resume after it"),
    ] = None,
) -> StreamingResponse:
    """The turn's SSE stream from the start, or after `Last-Event-ID`. The turn runs to
    its end whether or not anyone listens; its events are kept for an hour, its result
    for as long as the session."""
    after = stream_position(last_event_id)
    if await owner_id(res, turn_id) != user:
        raise NotFound(f"turn {turn_id} not found")
    res.slots.check(user)
    return StreamingResponse(
        relay_sse(res, user, turn_id, after),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache"},
    )


@router.post(
    "/sessions/{session_id}/turns/{turn_id}/cancel",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 409, 422, 502, 503),
)
async def cancel_turn(
    session_id: SessionId, turn_id: TurnId, user: CurrentUser, res: ResourcesDep
) -> Response:
    """Stop a running generation; the partial reply is kept, marked cancelled."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    await Turns(await res.temporal(), res.settings).cancel(session_id=session_id, turn_id=turn_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


CallId = Annotated[str, Path(pattern=CALL_ID_PATTERN, description="A tool call's id")]


class ApprovalBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "deny"]
    note: StorableText = Field(default="", max_length=MAX_NOTE_CHARS)


@router.post(
    "/sessions/{session_id}/turns/{turn_id}/approvals/{call_id}",
    response_model=ApprovalOutcome,
    responses=error_responses(400, 401, 404, 409, 422, 502, 503),
)
async def decide_approval(
    session_id: SessionId,
    turn_id: TurnId,
    call_id: CallId,
    body: ApprovalBody,
    user: CurrentUser,
    res: ResourcesDep,
) -> ApprovalOutcome:
    """Approve or deny a tool call the turn waits on (its `approval_required` event).
    The same decision again is answered as recorded (`repeated`); another decision for a
    decided call, or one for a turn that has moved on, is 409; a call the turn does not
    wait on is 404. Only the session's owner decides."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    decision = ApprovalDecision(
        turn_id=turn_id,
        call_id=call_id,
        decision=body.decision,
        note=body.note,
        decided_by=user,
    )
    return await Turns(await res.temporal(), res.settings).decide(
        session_id=session_id, decision=decision
    )


@router.get(
    "/sessions/{session_id}/approvals",
    response_model=ApprovalPage,
    responses=error_responses(401, 404, 422, 503),
)
async def list_approvals(
    session_id: SessionId, request: Request, user: CurrentUser, res: ResourcesDep
) -> ApprovalPage:
    """The tool calls the session's running turn waits on a person's decision for (an
    `approval_required` event each): what a page reloaded or a script that sent with
    `?wait=false` decides on."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    return ApprovalPage(items=await pending_approvals(request, res, session_id))
