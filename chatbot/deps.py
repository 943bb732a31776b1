"""Typed FastAPI dependencies. Each is `async def` though none awaits: FastAPI runs a plain
`def` dependency in its thread pool, a thread hop per request for a dictionary lookup (and
a log binding made there would stay in that thread's copy of the context)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from chatbot.resources import Resources
from shared.logging import bind
from shared.models import workflow_id


async def get_resources(request: Request) -> Resources:
    return cast(Resources, request.app.state.resources)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def bind_path_ids(request: Request) -> None:
    """Put the session and turn a request is about into every log line it causes."""
    params = request.path_params
    if "session_id" in params:
        bind(session_id=params["session_id"], workflow_id=workflow_id(params["session_id"]))
    if "turn_id" in params:
        bind(turn_id=params["turn_id"])


LogIds = Depends(bind_path_ids)
