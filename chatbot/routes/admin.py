"""What admins see in the console: sessions by status (and handed to a person), usage and
budgets by user today, failed turns by kind, the escalation rate, and each provider's
circuit breaker. Read from Postgres and Redis as they are now; admin role only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlalchemy import text

from chatbot.auth import AdminPrincipal
from chatbot.deps import LogIds, ResourcesDep
from chatbot.schemas import error_responses
from shared.breaker import states
from shared.redis import REDIS_UNAVAILABLE

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[LogIds])
TOP_USERS = 50
ERROR_KINDS = 20


class UserUsage(BaseModel):
    user_id: str
    tokens: int
    cost_usd: float
    limit_tokens: int | None  # today's token budget (theirs, or BUDGET_TOKENS_PER_DAY)


class ErrorKind(BaseModel):
    kind: str  # the error's first clause ("the model provider rejected the request")
    turns: int


class Escalations(BaseModel):
    sessions: int  # active within the window
    escalated: int  # of those, handed to a person (or escalated by the model)
    rate: float


class Breaker(BaseModel):
    provider: str
    state: str
    failures: int
    retry_after: float


class Overview(BaseModel):
    since: datetime
    sessions_by_status: dict[str, int]
    handoffs: dict[str, int]  # waiting, claimed
    usage_today: list[UserUsage]
    errors: list[ErrorKind]
    escalations: Escalations
    breakers: list[Breaker] | None  # None: Redis unreachable


@router.get("/overview", responses=error_responses(401, 403, 422, 503))
async def overview(
    admin: AdminPrincipal,
    res: ResourcesDep,
    days: Annotated[
        int, Query(ge=1, le=90, description="The window for errors and escalations")
    ] = 7,
) -> Overview:
    since = datetime.now(UTC) - timedelta(days=days)
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    async with res.engine.connect() as conn:
        by_status: dict[str, int] = dict(
            (
                await conn.execute(text("SELECT status, count(*) FROM sessions GROUP BY status"))
            ).all()
        )
        handoffs: dict[str, int] = dict(
            (
                await conn.execute(
                    text(
                        "SELECT handoff->>'state', count(*) FROM sessions "
                        "WHERE handoff IS NOT NULL GROUP BY 1"
                    )
                )
            ).all()
        )
        usage = (
            await conn.execute(
                text(
                    "SELECT u.user_id, sum(u.tokens) AS tokens, sum(u.cost_usd) AS cost, "
                    "b.tokens_per_day FROM usage_ledger u "
                    "LEFT JOIN user_budgets b ON b.user_id = u.user_id "
                    "WHERE u.status = 'settled' AND u.created_at >= :today "
                    "GROUP BY u.user_id, b.tokens_per_day ORDER BY tokens DESC LIMIT :n"
                ),
                {"today": today, "n": TOP_USERS},
            )
        ).all()
        errors = (
            await conn.execute(
                text(
                    "SELECT left(split_part(split_part(coalesce(tool_data->>'error', 'unknown'),"
                    " ':', 1), ' (', 1), 120) AS kind, count(*) FROM messages "
                    "WHERE role = 'assistant' AND status = 'failed' AND created_at >= :since "
                    "GROUP BY 1 ORDER BY 2 DESC LIMIT :n"
                ),
                {"since": since, "n": ERROR_KINDS},
            )
        ).all()
        active, escalated = (
            await conn.execute(
                text(
                    "SELECT count(*), count(*) FILTER (WHERE escalated_at >= :since) "
                    "FROM sessions WHERE last_activity_at >= :since OR escalated_at >= :since"
                ),
                {"since": since},
            )
        ).one()
    default_limit = res.settings.budget_tokens_per_day
    try:
        found = await states(res.redis, res.settings)
        breakers: list[Breaker] | None = [
            Breaker(
                provider=b.provider, state=b.state, failures=b.failures, retry_after=b.retry_after
            )
            for b in found
        ]
    except REDIS_UNAVAILABLE:
        breakers = None
    return Overview(
        since=since,
        sessions_by_status={str(k): int(v) for k, v in by_status.items()},
        handoffs={str(k): int(v) for k, v in handoffs.items()},
        usage_today=[
            UserUsage(
                user_id=r.user_id,
                tokens=int(r.tokens or 0),
                cost_usd=float(r.cost or 0),
                limit_tokens=r.tokens_per_day if r.tokens_per_day is not None else default_limit,
            )
            for r in usage
        ],
        errors=[ErrorKind(kind=str(k), turns=int(n)) for k, n in errors],
        escalations=Escalations(
            sessions=int(active),
            escalated=int(escalated),
            rate=round(int(escalated) / int(active), 4) if active else 0.0,
        ),
        breakers=breakers,
    )
