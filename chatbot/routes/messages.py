"""Messages: send one (JSON, SSE or fire-and-forget) and read a session's history."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic.json_schema import SkipJsonSchema

from chatbot import idempotency, metrics, repository
from chatbot.approvals import result_or_pause
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.ratelimit import enforce
from chatbot.relay import record_owner
from chatbot.resources import Resources
from chatbot.schemas import (
    MessageCreate,
    MessagePage,
    PendingApproval,
    Seq,
    SessionId,
    TurnAccepted,
    error_responses,
)
from chatbot.sse import relay_sse
from chatbot.turns import DuplicateMessage, Turns, over_budget, temporal_call
from shared.logging import bind
from shared.models import TurnResult
from shared.usage import BudgetExceeded

router = APIRouter(
    prefix="/sessions/{session_id}/messages", tags=["messages"], dependencies=[LogIds]
)


@router.post(
    "",
    response_model=TurnResult,
    responses={
        **error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503),
        202: {
            "model": TurnAccepted,
            "description": "`?wait=false`: accepted, not answered yet; or a waiting JSON "
            "request whose turn paused for a tool call's approval (`pending_approvals`)",
        },
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
    wants_sse = "text/event-stream" in request.headers.get("accept", "")
    # Independent checks, one round trip's wait instead of four.
    limited, spent, owned, stored = await asyncio.gather(
        enforce(res.redis, user, limit_per_minute=res.settings.rate_limit_per_minute),
        res.ledger.check(user, tokens=res.settings.max_tokens),
        repository.ensure_session(
            res.engine,
            session_id=session_id,
            user_id=user,
            max_sessions=res.settings.max_sessions_per_user,
        ),
        _stored_turn(res, session_id, body.client_message_id),
        return_exceptions=True,
    )
    for failed in (owned, stored):
        if isinstance(failed, BaseException):
            raise failed
    if isinstance(stored, TurnResult):
        # A retry of a turn that ran: its answer, in the shape asked for, even when rate
        # limited (it costs nothing) or while Redis is down.
        if stored.user_text != body.text:
            raise idempotency.conflict(body.client_message_id or "")
        return answer(request, res, user, stored.turn_id, session_id, wait, wants_sse, stored)
    refuse_over_limits(limited, spent)
    if body.on_busy is None and isinstance(owned, str):  # the session's own setting
        body = body.model_copy(update={"on_busy": owned})
    if wants_sse and wait:
        res.slots.check(user)
    if body.client_message_id:
        await idempotency.claim(
            res.redis,
            session_id=session_id,
            client_message_id=body.client_message_id,
            text=body.text,
        )
    turns = Turns(await res.temporal(), res.settings)
    # A tool-calling turn may pause for a person: a waiting JSON request then answers 202
    # with what it waits on, so it is sent to be accepted, and the result awaited after.
    waits_here = wait and not wants_sse
    pausable = waits_here and res.settings.tool_calling_enabled
    try:
        turn_id, handle = await turns.send(
            session_id=session_id,
            user_id=user,
            message=body,
            until_done=waits_here and not pausable,
        )
    except DuplicateMessage:
        stored = await repository.find_turn(
            res.engine, session_id=session_id, client_message_id=body.client_message_id or ""
        )
        if stored is None:
            raise
        if stored.user_text != body.text:
            raise idempotency.conflict(body.client_message_id or "") from None
        return answer(request, res, user, stored.turn_id, session_id, wait, wants_sse, stored)
    bind(turn_id=turn_id)
    await record_owner(res, turn_id, session_id, user)
    if waits_here:
        if pausable:
            outcome = await result_or_pause(request, res, session_id, turn_id, handle)
            if not isinstance(outcome, TurnResult):
                return _accepted(request, turn_id, session_id, outcome)
            result = outcome
        else:
            result = await temporal_call(handle.result())
        metrics.record_turn(result.status, result.timings_ms, time.perf_counter() - started)
        return result
    return answer(request, res, user, turn_id, session_id, wait, wants_sse, None)


def refuse_over_limits(limited: object, spent: object) -> None:
    """Raise what the rate limit or the budget refused (their checks gathered with
    return_exceptions, beside the request's other checks)."""
    if isinstance(limited, BaseException):
        raise limited
    if isinstance(spent, BudgetExceeded):
        raise over_budget(str(spent), spent.details())
    if isinstance(spent, BaseException):
        raise spent


async def admit(res: Resources, user: str) -> None:
    """A new turn's checks: the user's rate limit and budget (one round trip's wait)."""
    limited, spent = await asyncio.gather(
        enforce(res.redis, user, limit_per_minute=res.settings.rate_limit_per_minute),
        res.ledger.check(user, tokens=res.settings.max_tokens),
        return_exceptions=True,
    )
    refuse_over_limits(limited, spent)


def answer(
    request: Request,
    res: Resources,
    user: str,
    turn_id: str,
    session_id: str,
    wait: bool,
    wants_sse: bool,
    stored: TurnResult | None,
) -> TurnResult | JSONResponse | StreamingResponse:
    """A turn's answer in the shape the request asked for: 202, SSE, or the result."""
    if not wait:
        return _accepted(request, turn_id, session_id, [])
    if wants_sse:
        return StreamingResponse(
            relay_sse(res, user, turn_id, "0-0", fresh=stored is None),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Turn-Id": turn_id},
        )
    if stored is None:
        raise RuntimeError("a JSON answer that waits is given its result")
    return stored


def _accepted(
    request: Request, turn_id: str, session_id: str, pending: list[PendingApproval]
) -> JSONResponse:
    accepted = TurnAccepted(
        turn_id=turn_id,
        session_id=session_id,
        events_url=str(request.url_for("turn_events", turn_id=turn_id)),
        pending_approvals=pending,
    )
    return JSONResponse(accepted.model_dump(), status.HTTP_202_ACCEPTED)


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
