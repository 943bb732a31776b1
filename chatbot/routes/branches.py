"""Edit an earlier message: a branch, a new session of its own (its own workflow) holding
the turns before that message, answered with the edited text; the original untouched."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from chatbot import branches, repository
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.relay import record_owner
from chatbot.routes.messages import admit
from chatbot.routes.sessions import to_public
from chatbot.routes.turns import TurnId
from chatbot.schemas import (
    SESSION_ID_PATTERN,
    SessionId,
    SessionPage,
    SessionPublic,
    error_responses,
)
from chatbot.turns import Turns, temporal_call
from shared.models import MAX_MESSAGE_CHARS, SendMessage, StorableText, TurnResult

router = APIRouter(prefix="/sessions/{session_id}", tags=["sessions"], dependencies=[LogIds])


class BranchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: StorableText = Field(
        min_length=1, max_length=MAX_MESSAGE_CHARS, description="The message, as edited"
    )
    id: str | None = Field(
        None, pattern=SESSION_ID_PATTERN, description="The branch's session id (default: new)"
    )
    title: StorableText = Field("", max_length=200)


class BranchCreated(BaseModel):
    session: SessionPublic
    turn_id: str = Field(description="The branch's first turn: the edited message")
    events_url: str
    turn: TurnResult | None = Field(None, description="Its result (unless `?wait=false`)")


@router.post(
    "/turns/{turn_id}/branch",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 404, 409, 413, 422, 429, 502, 503),
)
async def branch(
    session_id: SessionId,
    turn_id: TurnId,
    body: BranchCreate,
    request: Request,
    user: CurrentUser,
    res: ResourcesDep,
    wait: Annotated[
        bool, Query(description="false: answer at once, the turn still running")
    ] = True,
) -> BranchCreated:
    """Edit the message of turn `turn_id`: a new session with this session's turns
    before it (nothing after it: no later turn, summary or memory), whose first turn is
    the edited message. Both are linked: the branch's `parent_session_id` and
    `branched_at_turn`, and this session's `GET .../branches`."""
    await admit(res, user)  # the edited message is a turn like any other
    title = body.title
    if not title:
        parent = await repository.get_session(res.engine, session_id=session_id, user_id=user)
        title = f"{parent['title'] or session_id} (edited)"[:200]
    row = await branches.create_branch(
        res.engine,
        parent_id=session_id,
        user_id=user,
        turn_id=turn_id,
        branch_id=body.id,
        title=title,
        max_sessions=res.settings.max_sessions_per_user,
    )
    new_id = row["id"]
    turns = Turns(await res.temporal(), res.settings)
    first_turn, handle = await turns.send(
        session_id=new_id, user_id=user, message=SendMessage(text=body.text), until_done=wait
    )
    await record_owner(res, first_turn, new_id, user)
    result = await temporal_call(handle.result()) if wait else None
    return BranchCreated(
        session=to_public(row, res.settings),
        turn_id=first_turn,
        events_url=str(request.url_for("turn_events", turn_id=first_turn)),
        turn=result,
    )


@router.get("/branches", responses=error_responses(401, 404, 422, 503))
async def list_branches(session_id: SessionId, user: CurrentUser, res: ResourcesDep) -> SessionPage:
    """The sessions branched from this one (an earlier message edited), oldest first."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    rows = await branches.list_branches(res.engine, session_id=session_id, user_id=user)
    return SessionPage(items=[to_public(r, res.settings) for r in rows], next_cursor=None)
