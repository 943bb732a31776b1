"""Answer the latest turn again (regenerate), list a reply's versions, and pick the one
later turns see. Only the session's owner does any of it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from chatbot import repository, versions
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.relay import record_owner
from chatbot.routes.messages import admit, answer
from chatbot.routes.turns import TurnId
from chatbot.schemas import SessionId, TurnAccepted, error_responses
from chatbot.turns import DuplicateMessage, Turns, temporal_call
from shared.models import ChosenVersion, Regenerate, SelectVersion, TurnResult

router = APIRouter(
    prefix="/sessions/{session_id}/turns/{turn_id}", tags=["turns"], dependencies=[LogIds]
)


class RegenerateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    client_message_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="The idempotency key: the same request again yields the same version",
    )


class ReplyVersion(BaseModel):
    version: int
    content: str
    status: Literal["complete", "cancelled", "failed"]
    completion_tokens: int | None
    created_at: datetime
    tool_data: dict[str, Any] | None


class VersionPage(BaseModel):
    turn_id: str
    version: int = Field(description="The version in use: the one later turns see")
    items: list[ReplyVersion] = Field(description="Every version, the first first")


class VersionChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1, le=10_000)


@router.post(
    "/regenerate",
    response_model=TurnResult,
    responses={
        **error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503),
        202: {"model": TurnAccepted, "description": "`?wait=false`: accepted, not answered yet"},
        200: {
            "description": "The turn with its new version; with `Accept: text/event-stream` "
            "its SSE frames, as a message's",
            "content": {"text/event-stream": {}},
        },
    },
)
async def regenerate(
    session_id: SessionId,
    turn_id: TurnId,
    body: RegenerateBody,
    request: Request,
    user: CurrentUser,
    res: ResourcesDep,
    wait: Annotated[bool, Query(description="false: 202 with the new answer's stream")] = True,
) -> TurnResult | JSONResponse | StreamingResponse:
    """Answer the session's latest turn again, with its message and the context it had:
    the reply gets a new version (kept beside the earlier ones), which later turns see.
    Only the latest answered turn (409 otherwise: edit an earlier message to branch)."""
    wants_sse = "text/event-stream" in request.headers.get("accept", "")
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    await versions.answered_turn(res.engine, session_id=session_id, turn_id=turn_id)
    cmid = body.client_message_id
    if made := await versions.made_by(res.engine, turn_id=turn_id, client_message_id=cmid):
        stream_id, stored = made
        return answer(request, res, user, stream_id, session_id, wait, wants_sse, stored)
    await admit(res, user)
    if wants_sse and wait:
        res.slots.check(user)
    turns = Turns(await res.temporal(), res.settings)
    waits_here = wait and not wants_sse
    try:
        stream_id, handle = await turns.regenerate(
            session_id=session_id,
            user_id=user,
            request=Regenerate(turn_id=turn_id, client_message_id=cmid),
            until_done=waits_here,
        )
    except DuplicateMessage:
        made = await versions.made_by(res.engine, turn_id=turn_id, client_message_id=cmid)
        if made is None:
            raise
        return answer(request, res, user, made[0], session_id, wait, wants_sse, made[1])
    await record_owner(res, stream_id, session_id, user)
    if waits_here:
        return await temporal_call(handle.result())
    return answer(request, res, user, stream_id, session_id, wait, wants_sse, None)


@router.get("/versions", responses=error_responses(401, 404, 422, 503))
async def list_versions(
    session_id: SessionId, turn_id: TurnId, user: CurrentUser, res: ResourcesDep
) -> VersionPage:
    """Every version of the turn's reply, and the one in use."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    await versions.answered_turn(res.engine, session_id=session_id, turn_id=turn_id)
    found = await versions.versions(res.engine, turn_id=turn_id)
    turn = await repository.find_turn_by_id(res.engine, turn_id=turn_id)
    in_use = turn.version if turn is not None else 1
    return VersionPage.model_validate({"turn_id": turn_id, "version": in_use, "items": found})


@router.put("/version", responses=error_responses(400, 401, 404, 409, 413, 422, 502, 503))
async def select_version(
    session_id: SessionId,
    turn_id: TurnId,
    body: VersionChoice,
    user: CurrentUser,
    res: ResourcesDep,
) -> ChosenVersion:
    """Use another version of the latest turn's reply: later turns see that one. An
    earlier turn's versions can be read, not picked (later turns saw the one in use)."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    await versions.answered_turn(res.engine, session_id=session_id, turn_id=turn_id)
    return await Turns(await res.temporal(), res.settings).select_version(
        session_id=session_id,
        user_id=user,
        request=SelectVersion(turn_id=turn_id, version=body.version),
    )
