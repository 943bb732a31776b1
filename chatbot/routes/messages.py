"""Messages: send one (JSON, SSE or fire-and-forget) and read a session's history."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse, StreamingResponse

from chatbot import metrics, repository
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.ratelimit import enforce
from chatbot.schemas import MessageCreate, MessagePage, SessionId, TurnAccepted, error_responses
from chatbot.sse import relay_sse
from chatbot.turns import DuplicateMessage, Turns, temporal_call
from shared.logging import bind
from shared.models import TurnResult
from shared.streams import TurnStreams

router = APIRouter(
    prefix="/sessions/{session_id}/messages", tags=["messages"], dependencies=[LogIds]
)

ERRORS = error_responses(401, 404, 409, 413, 422, 429, 502, 503)


@router.post(
    "",
    response_model=TurnResult,
    responses={
        **ERRORS,
        202: {"model": TurnAccepted, "description": "`?wait=false`: accepted, not answered yet"},
        200: {
            "description": "The turn's result; with `Accept: text/event-stream`, SSE frames "
            "`token`, `restart`, `final`, `error`, each with an id",
            "content": {"text/event-stream": {}},
        },
    },
)
async def send_message(
    session_id: SessionId,
    body: MessageCreate,
    request: Request,
    user: CurrentUser,
    res: ResourcesDep,
    wait: Annotated[bool, Query(description="false: 202 with the turn id at once")] = True,
) -> TurnResult | JSONResponse | StreamingResponse:
    """One turn of the session's conversation."""
    started = time.perf_counter()
    await enforce(res.redis, user, limit_per_minute=res.settings.rate_limit_per_minute)
    await repository.ensure_session(res.engine, session_id=session_id, user_id=user)
    streams = TurnStreams(res.redis)
    wants_sse = "text/event-stream" in request.headers.get("accept", "")
    if body.client_message_id:
        stored = await repository.find_turn(
            res.engine, session_id=session_id, client_message_id=body.client_message_id
        )
        if stored is not None:
            return stored
    turns = Turns(await res.temporal(), res.settings)
    try:
        turn_id, handle = await turns.send(session_id=session_id, user_id=user, message=body)
    except DuplicateMessage:
        stored = await repository.find_turn(
            res.engine, session_id=session_id, client_message_id=body.client_message_id or ""
        )
        if stored is None:
            raise
        return stored
    bind(turn_id=turn_id)
    await streams.set_owner(turn_id, session_id, user)
    if not wait:
        accepted = TurnAccepted(
            turn_id=turn_id,
            session_id=session_id,
            events_url=str(request.url_for("turn_events", turn_id=turn_id)),
        )
        return JSONResponse(accepted.model_dump(), status.HTTP_202_ACCEPTED)
    if wants_sse:
        return StreamingResponse(
            relay_sse(streams, turn_id, "0-0"),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Turn-Id": turn_id},
        )
    result = await temporal_call(handle.result())
    metrics.record_turn(result.status, result.timings_ms, time.perf_counter() - started)
    return result


@router.get("", responses=ERRORS)
async def history(
    session_id: SessionId,
    user: CurrentUser,
    res: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1, description="next_before of a later page")] = None,
) -> MessagePage:
    """The session's messages, newest page first, oldest first within a page."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    rows, next_before = await repository.list_messages(
        res.engine, session_id=session_id, limit=limit, before=before
    )
    return MessagePage.model_validate({"items": rows, "next_before": next_before})
