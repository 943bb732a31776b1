"""Files the caller's turns produced (a query's CSV, its chart): listed per session and
downloaded by id. Another user's artifact is 404, as if it did not exist."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel

from chatbot import repository
from chatbot.auth import CurrentUser
from chatbot.deps import LogIds, ResourcesDep
from chatbot.errors import NotFound, Unavailable
from chatbot.schemas import SessionId, error_responses
from shared.artifacts import ArtifactRef, ArtifactUnavailable, artifact_store_from_settings

router = APIRouter(tags=["artifacts"], dependencies=[LogIds])

ArtifactId = Annotated[str, Path(min_length=36, max_length=36, pattern=r"^[0-9a-f-]{36}$")]


class ArtifactPublic(BaseModel):
    id: str
    turn_id: str
    name: str
    media_type: str
    size_bytes: int
    created_at: datetime | None
    download_url: str


class ArtifactPage(BaseModel):
    items: list[ArtifactPublic]


def _public(ref: ArtifactRef) -> ArtifactPublic:
    return ArtifactPublic(**ref.model_dump(exclude={"session_id"}), download_url=ref.download_path)


@router.get("/sessions/{session_id}/artifacts", responses=error_responses(401, 404, 422, 503))
async def list_artifacts(
    session_id: SessionId, user: CurrentUser, res: ResourcesDep
) -> ArtifactPage:
    """The session's files, oldest first (without their bytes)."""
    await repository.get_session(res.engine, session_id=session_id, user_id=user)  # or 404
    store = artifact_store_from_settings(res.engine, res.settings)
    refs = await store.list(session_id=session_id, user_id=user)
    return ArtifactPage(items=[_public(r) for r in refs])


@router.get(
    "/artifacts/{artifact_id}",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}, "image/png": {}}, "description": "The file"},
        **error_responses(401, 404, 422, 503),
    },
)
async def download_artifact(
    artifact_id: ArtifactId, user: CurrentUser, res: ResourcesDep
) -> Response:
    """The file itself, as an attachment named as listed."""
    store = artifact_store_from_settings(res.engine, res.settings)
    try:
        found = await store.get(artifact_id, user_id=user)
    except ArtifactUnavailable as err:
        raise Unavailable(f"{err}; try again in a moment") from err
    if found is None:
        raise NotFound(f"artifact {artifact_id} not found")
    return Response(
        found.data,
        media_type=found.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{found.name}"',
            "Cache-Control": "private, max-age=3600",
            "X-Content-Type-Options": "nosniff",
        },
    )
