"""Liveness and readiness."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from chatbot.deps import ResourcesDep
from chatbot.health import HealthReport, check_dependencies

router = APIRouter(tags=["operations"])


@router.get("/health")
async def health(resources: ResourcesDep) -> HealthReport:
    """Liveness: always 200 while the process serves, with each dependency's state."""
    return await check_dependencies(resources)


@router.get("/ready", responses={503: {"model": HealthReport}})
async def ready(resources: ResourcesDep, response: Response) -> HealthReport:
    """Readiness: 503 until Temporal, Postgres, Redis (and a configured LLM) answer."""
    report = await check_dependencies(resources)
    if report.status != "ok":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report
