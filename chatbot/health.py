"""Dependency checks for /health and /ready: each one bounded in time, all run at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Literal

import httpx
from pydantic import BaseModel
from sqlalchemy import text

from chatbot.resources import Resources
from shared.db.migrate import current_revision, head_revision

CHECK_TIMEOUT_SECONDS = 3.0


class DependencyState(BaseModel):
    status: Literal["ok", "down", "not_configured"]
    latency_ms: float | None = None
    detail: str = ""


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    dependencies: dict[str, DependencyState]


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


async def _timed(check: Callable[[Resources], Awaitable[str]], res: Resources) -> DependencyState:
    started = time.perf_counter()
    try:
        detail = await asyncio.wait_for(check(res), CHECK_TIMEOUT_SECONDS)
    except TimeoutError:
        return DependencyState(status="down", detail=f"no answer in {CHECK_TIMEOUT_SECONDS:.0f} s")
    except Exception as err:  # a health check reports any failure instead of raising
        return DependencyState(status="down", detail=f"{type(err).__name__}: {err}"[:300])
    elapsed = (time.perf_counter() - started) * 1000
    return DependencyState(status="ok", latency_ms=round(elapsed, 1), detail=detail)


async def check_dependencies(res: Resources) -> HealthReport:
    checks: dict[str, Callable[[Resources], Awaitable[str]]] = {
        "temporal": _temporal,
        "postgres": _postgres,
        "redis": _redis,
        "llm": _llm,
    }
    states = await asyncio.gather(*(_timed(c, res) for c in checks.values()))
    deps = dict(zip(checks, states, strict=True))
    if not res.settings.llm_configured:
        deps["llm"] = DependencyState(
            status="not_configured", detail="set OPENAI_API_KEY or OPENAI_BASE_URL"
        )
    healthy = all(d.status != "down" for d in deps.values())
    return HealthReport(status="ok" if healthy else "degraded", dependencies=deps)
