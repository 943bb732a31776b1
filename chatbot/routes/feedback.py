"""A user's rating of a reply: thumbs up or down with an optional reason, one per
assistant turn (a second PUT replaces it), removed by DELETE. Only the session's owner
rates; another user's session or turn is 404, as if it did not exist."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, ConfigDict, Field

from chatbot import feedback, repository
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.routes.turns import TurnId
from chatbot.schemas import SessionId, error_responses
from shared.db.models import FEEDBACK_REASON_CHARS
from shared.models import StorableText

router = APIRouter(tags=["feedback"], dependencies=[LogIds])
PATH = "/sessions/{session_id}/turns/{turn_id}/feedback"

Rating = Literal["up", "down"]


class FeedbackUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Rating
    reason: Annotated[StorableText, Field(max_length=FEEDBACK_REASON_CHARS)] | None = Field(
        None, description="Why, in the user's words"
    )


class FeedbackPublic(BaseModel):
    turn_id: str
    session_id: str
    rating: Rating
    reason: str | None
    updated_at: datetime


@router.put(PATH, responses=error_responses(400, 401, 404, 413, 422, 503))
async def rate_turn(
    session_id: SessionId,
    turn_id: TurnId,
    body: FeedbackUpdate,
    user: CurrentUser,
    res: ResourcesDep,
) -> FeedbackPublic:
    """Rate the reply of an assistant turn of the session; a rating given before is
    replaced. 404 when the turn is not an assistant turn of this session of the caller."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    row = await feedback.rate(
        res.engine,
        session_id=session_id,
        turn_id=turn_id,
        user_id=user,
        rating=body.rating,
        reason=body.reason,
    )
    return FeedbackPublic.model_validate(row)


@router.delete(
    PATH,
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422, 503),
)
async def unrate_turn(
    session_id: SessionId, turn_id: TurnId, user: CurrentUser, res: ResourcesDep
) -> Response:
    """Remove the caller's rating of the turn (204 also when it had none)."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    await feedback.unrate(res.engine, session_id=session_id, turn_id=turn_id, user_id=user)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
