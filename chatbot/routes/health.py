"""Liveness and readiness. Anyone gets each dependency's state and latency; an
authenticated caller (with JWT_SECRET set: a valid bearer token; in dev mode: anyone)
also gets each one's detail, which can name internal hosts and carry exception text."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response, status

from chatbot.auth import OptionalUser
from chatbot.deps import ResourcesDep
from chatbot.health import HealthReport, check_dependencies
from chatbot.resources import Resources

router = APIRouter(tags=["operations"])
# The token is optional here: `{}` is the OpenAPI way to say "or no auth at all".
_OPTIONAL_AUTH: dict[str, Any] = {"security": [{}]}


async def _report(resources: Resources, user: str | None) -> HealthReport:
    report = await check_dependencies(resources)
    return report if user is not None else report.without_details()


@router.get("/health", openapi_extra=_OPTIONAL_AUTH, response_model_exclude_none=True)
async def health(resources: ResourcesDep, user: OptionalUser) -> HealthReport:
    """Liveness: always 200 while the process serves, with each dependency's state."""
    return await _report(resources, user)


@router.get(
    "/ready",
    responses={503: {"model": HealthReport}},
    openapi_extra=_OPTIONAL_AUTH,
    response_model_exclude_none=True,
)
async def ready(resources: ResourcesDep, user: OptionalUser, response: Response) -> HealthReport:
    """Readiness: 503 until Temporal, Postgres, Redis (and a configured LLM) answer."""
    report = await _report(resources, user)
    if report.status != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
