"""A turn's event stream (resumable with Last-Event-ID) and its cancellation."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, status
from fastapi.responses import Response, StreamingResponse
from pydantic.json_schema import SkipJsonSchema

from chatbot import repository
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.errors import NotFound
from chatbot.schemas import SessionId, StreamId, error_responses
from chatbot.sse import relay_sse
from chatbot.turns import Turns
from shared.streams import TurnStreams

router = APIRouter(tags=["turns"], dependencies=[LogIds])
TurnId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="A turn id (UUID)")]


@router.get(
    "/turns/{turn_id}/events",
    name="turn_events",
    responses={
        **error_responses(401, 404, 422, 503),
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
    its end whether or not anyone listens; streams are kept for an hour."""
    streams = TurnStreams(res.redis)
    owner = await streams.owner(turn_id)
    if owner is None or owner["user_id"] != user:
        raise NotFound(f"turn {turn_id} not found (streams are kept for an hour)")
    return StreamingResponse(
        relay_sse(streams, turn_id, last_event_id or "0-0"),
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
