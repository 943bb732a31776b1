"""Messages: send one (JSON, SSE or fire-and-forget) and read a session's history."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic.json_schema import SkipJsonSchema

from chatbot import metrics, repository
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.ratelimit import enforce
from chatbot.resources import Resources
from chatbot.schemas import (
    MessageCreate,
    MessagePage,
    Seq,
    SessionId,
    TurnAccepted,
    error_responses,
)
from chatbot.sse import relay_sse
from chatbot.turns import DuplicateMessage, Turns, temporal_call
from shared.logging import bind
from shared.models import TurnResult
from shared.streams import TurnStreams

router = APIRouter(
    prefix="/sessions/{session_id}/messages", tags=["messages"], dependencies=[LogIds]
)


@router.post(
    "",
    response_model=TurnResult,
    responses={
        **error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503),
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
    # Independent checks, one round trip's wait instead of three.
    checks = await asyncio.gather(
        enforce(res.redis, user, limit_per_minute=res.settings.rate_limit_per_minute),
        repository.ensure_session(
            res.engine,
            session_id=session_id,
            user_id=user,
            max_sessions=res.settings.max_sessions_per_user,
        ),
        _stored_turn(res, session_id, body.client_message_id),
        return_exceptions=True,
    )
    for failed in checks:
        if isinstance(failed, BaseException):
            raise failed  # the rate limit first, then the session's ownership
    streams = TurnStreams(res.redis)
    wants_sse = "text/event-stream" in request.headers.get("accept", "")
    stored = checks[2]
    if isinstance(stored, TurnResult):
        return stored
    turns = Turns(await res.temporal(), res.settings)
    try:
        turn_id, handle = await turns.send(
            session_id=session_id, user_id=user, message=body, until_done=wait and not wants_sse
        )
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


async def _stored_turn(
    res: Resources, session_id: str, client_message_id: str | None
) -> TurnResult | None:
    """The turn a retried POST already produced, found by its client_message_id."""
    if not client_message_id:
        return None
    return await repository.find_turn(
        res.engine, session_id=session_id, client_message_id=client_message_id
    )


@router.get("", responses=error_responses(401, 404, 422, 503))
async def history(
    session_id: SessionId,
    user: CurrentUser,
    res: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[
        Seq | SkipJsonSchema[None], Query(description="next_before of a later page")
    ] = None,
) -> MessagePage:
    """The session's messages, newest page first, oldest first within a page."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    rows, next_before = await repository.list_messages(
        res.engine, session_id=session_id, limit=limit, before=before
    )
    return MessagePage.model_validate({"items": rows, "next_before": next_before})
