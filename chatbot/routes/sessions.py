"""Sessions: create, list, read, rename, delete."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic.json_schema import SkipJsonSchema

from chatbot import repository
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.schemas import (
    Cursor,
    SessionCreate,
    SessionId,
    SessionPage,
    SessionPublic,
    SessionUpdate,
    error_responses,
)
from chatbot.turns import Turns
from shared.artifacts import ArtifactUnavailable, artifact_store_from_settings
from shared.config import Settings
from shared.models import workflow_id
from shared.redis import REDIS_UNAVAILABLE
from shared.streams import TurnStreams

router = APIRouter(prefix="/sessions", tags=["sessions"], dependencies=[LogIds])
log = logging.getLogger(__name__)
# How long a DELETE lets a running turn finish before ending the workflow outright.
DELETE_GRACE_SECONDS = 10.0


def to_public(row: dict[str, Any], settings: Settings) -> SessionPublic:
    wid = workflow_id(row["id"])
    ns = settings.temporal_cloud_namespace or settings.temporal_namespace
    return SessionPublic(
        **row,
        workflow_id=wid,
        temporal_ui_url=f"{settings.temporal_ui_url}/namespaces/{ns}/workflows/{wid}",
    )


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 409, 413, 422, 503),
)
async def create_session(
    body: SessionCreate, user: CurrentUser, res: ResourcesDep
) -> SessionPublic:
    """A new session; 409 `session_limit_reached` when the user has MAX_SESSIONS_PER_USER."""
    row = await repository.create_session(
        res.engine,
        session_id=body.id,
        user_id=user,
        title=body.title,
        max_sessions=res.settings.max_sessions_per_user,
    )
    return to_public(row, res.settings)


@router.get("", responses=error_responses(400, 401, 422, 503))
async def list_sessions(
    user: CurrentUser,
    res: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[
        Cursor | SkipJsonSchema[None],
        Query(description="`next_cursor` of the previous page"),
    ] = None,
) -> SessionPage:
    """The caller's sessions, newest first."""
    rows, next_cursor = await repository.list_sessions(
        res.engine, user_id=user, limit=limit, cursor=cursor
    )
    return SessionPage(items=[to_public(r, res.settings) for r in rows], next_cursor=next_cursor)


@router.get("/{session_id}", responses=error_responses(401, 404, 422, 503))
async def get_session(session_id: SessionId, user: CurrentUser, res: ResourcesDep) -> SessionPublic:
    row = await repository.get_session(res.engine, session_id=session_id, user_id=user)
    return to_public(row, res.settings)


@router.patch("/{session_id}", responses=error_responses(400, 401, 404, 413, 422, 503))
async def rename_session(
    session_id: SessionId, body: SessionUpdate, user: CurrentUser, res: ResourcesDep
) -> SessionPublic:
    row = await repository.update_session(
        res.engine, session_id=session_id, user_id=user, changes=body.model_dump(exclude_unset=True)
    )
    return to_public(row, res.settings)


@router.delete(
    "/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422, 503),
)
async def delete_session(session_id: SessionId, user: CurrentUser, res: ResourcesDep) -> Response:
    """End the session's workflow, then remove the transcript and its turns' streams. The
    id can be used again at once, for a new session with nothing of the old one."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)
    cut_short = await Turns(await res.temporal(), res.settings).close(
        session_id=session_id, within=DELETE_GRACE_SECONDS
    )
    files = artifact_store_from_settings(res.engine, res.settings)
    objects = await files.object_keys(session_id=session_id, user_id=user)  # bucket ones
    turn_ids = await repository.delete_session(res.engine, session_id=session_id, user_id=user)
    try:
        await files.forget_objects(objects)
    except ArtifactUnavailable as err:  # no row names them any more: unreachable anyway
        log.warning("%d artifact objects of a deleted session not removed: %s", len(objects), err)
    streams = TurnStreams(res.redis)
    try:
        if cut_short is not None:  # its readers hear why it stopped
            await streams.append(
                cut_short,
                "error",
                {"error": "the session was deleted", "error_type": "SessionDeleted"},
            )
        await streams.forget(turn_ids)
    except REDIS_UNAVAILABLE as err:  # they expire within the hour
        log.warning("streams of a deleted session not removed: %s", err)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
