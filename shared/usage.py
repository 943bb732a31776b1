"""What turns cost, and per-user budgets: a ledger in Postgres keyed by turn and step.

Before a model call the step reserves its worst case (the prompt plus `max_tokens`);
after it, the step settles what the provider reported. A retried activity or a crashed
worker writes the same (turn, step) row again, so a step is charged once, whatever ran it
how often. A reservation left behind by a crash is released when the turn is stored, and
stops counting after BUDGET_RESERVATION_MINUTES in any case.

Reservations of one user are serialized by a transaction-level advisory lock, so
concurrent turns of one user cannot all pass the check against the same remaining budget:
spend exceeds a budget by at most what one reservation underestimated.

Days and months are UTC."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from shared.models import TokenUsage

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

Period = Literal["day", "month"]
Measure = Literal["tokens", "cost"]
Clock = Callable[[], datetime]


class ModelPrice(BaseModel):
    """USD per million tokens; cached prompt tokens at their own (lower) price."""

    prompt: float = Field(ge=0)
    completion: float = Field(ge=0)
    cached: float | None = Field(None, ge=0)  # None: the prompt price

    def cost(self, usage: TokenUsage) -> float:
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        cached_price = self.prompt if self.cached is None else self.cached
        return (
            (usage.prompt_tokens - cached) * self.prompt
            + cached * cached_price
            + usage.completion_tokens * self.completion
        ) / 1_000_000


# Published list prices (USD per 1M tokens) as of 2026-12; MODEL_PRICES overrides them.
# A model not listed costs 0 in estimates, and a warning says so once.
DEFAULT_MODEL_PRICES: dict[str, ModelPrice] = {
    "gpt-4o-mini": ModelPrice(prompt=0.15, completion=0.60, cached=0.075),
    "gpt-4o": ModelPrice(prompt=2.50, completion=10.00, cached=1.25),
    "gpt-4o-search-preview": ModelPrice(prompt=2.50, completion=10.00),
    "gpt-4.1-mini": ModelPrice(prompt=0.40, completion=1.60, cached=0.10),
    "gpt-4.1": ModelPrice(prompt=2.00, completion=8.00, cached=0.50),
}
_unpriced: set[str] = set()


def cost_of(prices: Mapping[str, ModelPrice], model: str, usage: TokenUsage) -> float:
    price = prices.get(model)
    if price is None:
        if model not in _unpriced:
            _unpriced.add(model)
            log.warning("no price for model %s: its cost counts as 0 (set MODEL_PRICES)", model)
        return 0.0
    return price.cost(usage)


def reported_usage(reported: Mapping[str, Any] | BaseModel | None) -> TokenUsage:
    """The `usage` of an OpenAI-compatible response: a streamed chunk's dict, or the
    client's model of a whole completion's."""
    if isinstance(reported, BaseModel):
        reported = reported.model_dump()
    reported = reported or {}
    details = reported.get("prompt_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=int(reported.get("prompt_tokens") or 0),
        completion_tokens=int(reported.get("completion_tokens") or 0),
        cached_tokens=int(details.get("cached_tokens") or 0) if isinstance(details, dict) else 0,
    )


def summary_step(session_id: str, user_id: str, version: int, model: str) -> Step:
    """The ledger key of folding turns into a session's summary (version N -> N+1): a
    step of no turn, so it has a key of its own."""
    digest = hashlib.sha256(session_id.encode()).hexdigest()[:32]
    return Step(
        turn_id=f"summary-{digest}-{version}"[:64],
        step="summary",
        user_id=user_id,
        session_id=session_id,
        model=model,
    )


class Limits(BaseModel):
    """A user's budgets; None is no limit."""

    tokens_per_day: int | None = Field(None, ge=0)
    tokens_per_month: int | None = Field(None, ge=0)
    cost_per_day: float | None = Field(None, ge=0)
    cost_per_month: float | None = Field(None, ge=0)

    def limit(self, period: Period, measure: Measure) -> float | None:
        value: float | None = getattr(self, f"{measure}_per_{period}")
        return value

    @property
    def any(self) -> bool:
        return any(v is not None for v in self.model_dump().values())


class Spent(BaseModel):
    """What one period holds: settled steps and live reservations."""

    tokens: int = 0
    cost_usd: float = 0.0
    tool_calls: int = 0
    reserved_tokens: int = 0


class PeriodUsage(Spent):
    period: Period
    since: datetime
    resets_at: datetime
    limit_tokens: int | None = None
    limit_cost_usd: float | None = None


class SessionUsage(BaseModel):
    session_id: str
    turns: int
    tokens: int
    cost_usd: float
    tool_calls: int


class UsageReport(BaseModel):
    """GET /v1/me/usage: today, this month, and this month by session."""

    user_id: str
    day: PeriodUsage
    month: PeriodUsage
    sessions: list[SessionUsage]


class BudgetExceeded(Exception):
    """A budget is used up, or too little of it is left for the step's worst case."""

    def __init__(
        self,
        *,
        period: Period,
        measure: Measure,
        used: float,
        limit: float,
        resets_at: datetime,
        needed: float = 0.0,
    ) -> None:
        self.period, self.measure = period, measure
        self.used, self.limit, self.resets_at = used, limit, resets_at

        def shown(value: float) -> str:
            return f"{value:,.0f} tokens" if measure == "tokens" else f"${value:.4f}"

        budget = (
            f"the {'daily' if period == 'day' else 'monthly'} {measure} budget of {shown(limit)}"
        )
        state = (
            f"is used up ({shown(used)} used)"
            if used >= limit
            else f"has {shown(limit - used)} left, less than a reply may use ({shown(needed)})"
        )
        super().__init__(f"{budget} {state}; it resets at {resets_at.isoformat()}")

    def details(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "measure": self.measure,
            "used": self.used,
            "limit": self.limit,
            "resets_at": self.resets_at.isoformat(),
        }


def period_start(now: datetime, period: Period) -> datetime:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day if period == "day" else day.replace(day=1)


def period_end(now: datetime, period: Period) -> datetime:
    start = period_start(now, period)
    if period == "day":
        return start + timedelta(days=1)
    return (start + timedelta(days=32)).replace(day=1)


# What counts against a budget: settled steps, and reservations still live.
_COUNTED = "(status = 'settled' OR (status = 'reserved' AND updated_at > :live_after))"

_SPENT = text(
    f"""
    SELECT coalesce(sum(tokens) FILTER (WHERE created_at >= :day), 0) AS day_tokens,
           coalesce(sum(cost_usd) FILTER (WHERE created_at >= :day), 0) AS day_cost,
           coalesce(sum(tool_calls) FILTER (WHERE created_at >= :day), 0) AS day_tools,
           coalesce(sum(tokens) FILTER (WHERE created_at >= :day AND status = 'reserved'), 0)
               AS day_reserved,
           coalesce(sum(tokens), 0) AS month_tokens,
           coalesce(sum(cost_usd), 0) AS month_cost,
           coalesce(sum(tool_calls), 0) AS month_tools,
           coalesce(sum(tokens) FILTER (WHERE status = 'reserved'), 0) AS month_reserved
    FROM usage_ledger
    WHERE user_id = :user AND created_at >= :month AND {_COUNTED}
      AND NOT (turn_id = :turn AND step = :step)
    """
)

_LIMITS = text(
    "SELECT tokens_per_day, tokens_per_month, cost_per_day, cost_per_month "
    "FROM user_budgets WHERE user_id = :user"
)

# A step's row: a retry (or a second reservation of the same step) overwrites it.
_UPSERT = text(
    """
    INSERT INTO usage_ledger (turn_id, step, user_id, session_id, kind, model, status, tokens,
                              prompt_tokens, completion_tokens, cached_tokens, tool_calls,
                              cost_usd, created_at, updated_at)
    VALUES (:turn, :step, :user, :session, :kind, :model, :status, :tokens, :prompt,
            :completion, :cached, :tool_calls, :cost, :now, :now)
    ON CONFLICT (turn_id, step) DO UPDATE SET
        status = EXCLUDED.status, model = EXCLUDED.model, tokens = EXCLUDED.tokens,
        prompt_tokens = EXCLUDED.prompt_tokens, completion_tokens = EXCLUDED.completion_tokens,
        cached_tokens = EXCLUDED.cached_tokens, tool_calls = EXCLUDED.tool_calls,
        cost_usd = EXCLUDED.cost_usd, updated_at = EXCLUDED.updated_at
    """
)


# A turn's reservations (one step's, with `AND step = :step`) no longer held.
_RELEASE = (
    "UPDATE usage_ledger SET status = 'released', tokens = 0, cost_usd = 0, "
    "updated_at = :now WHERE turn_id = :turn AND status = 'reserved'"
)


@dataclass(frozen=True)
class Step:
    """One charged step of a turn: its ledger key and whose it is."""

    turn_id: str
    step: str
    user_id: str
    session_id: str
    model: str = ""


class UsageLedger:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        defaults: Limits,
        reservation_ttl: timedelta,
        clock: Clock = lambda: datetime.now(UTC),
        prices: Mapping[str, ModelPrice] | None = None,
    ) -> None:
        self._engine = engine
        self._defaults = defaults
        self._ttl = reservation_ttl
        self._clock = clock
        self._prices = DEFAULT_MODEL_PRICES if prices is None else prices

    async def limits(self, user_id: str, conn: AsyncConnection | None = None) -> Limits:
        """The user's budgets: their row in user_budgets where it sets one, else BUDGET_*."""
        own = await self.own_limits(user_id, conn)
        if own is None:
            return self._defaults
        set_here = own.model_dump(exclude_none=True)
        return self._defaults.model_copy(update=set_here)

    async def own_limits(self, user_id: str, conn: AsyncConnection | None = None) -> Limits | None:
        """The user's row in user_budgets, None without one."""
        if conn is None:
            async with self._engine.connect() as fresh:
                return await self.own_limits(user_id, fresh)
        row = (await conn.execute(_LIMITS, {"user": user_id})).mappings().first()
        if row is None:
            return None
        return Limits.model_validate(
            {k: float(v) if isinstance(v, Decimal) else v for k, v in row.items()}
        )

    async def clear_limits(self, user_id: str) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM user_budgets WHERE user_id = :user"), {"user": user_id}
            )

    async def set_limits(self, user_id: str, limits: Limits) -> None:
        """A user's own budgets (None fields: the default)."""
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO user_budgets (user_id, tokens_per_day, tokens_per_month, "
                    "cost_per_day, cost_per_month, updated_at) VALUES (:user, :td, :tm, :cd, "
                    ":cm, now()) ON CONFLICT (user_id) DO UPDATE SET tokens_per_day = :td, "
                    "tokens_per_month = :tm, cost_per_day = :cd, cost_per_month = :cm, "
                    "updated_at = now()"
                ),
                {
                    "user": user_id,
                    "td": limits.tokens_per_day,
                    "tm": limits.tokens_per_month,
                    "cd": limits.cost_per_day,
                    "cm": limits.cost_per_month,
                },
            )

    async def _spent(
        self, conn: AsyncConnection, user_id: str, now: datetime, *, turn: str = "", step: str = ""
    ) -> dict[Period, Spent]:
        row = (
            (
                await conn.execute(
                    _SPENT,
                    {
                        "user": user_id,
                        "day": period_start(now, "day"),
                        "month": period_start(now, "month"),
                        "live_after": now - self._ttl,
                        "turn": turn,
                        "step": step,
                    },
                )
            )
            .mappings()
            .one()
        )
        return {
            p: Spent(
                tokens=int(row[f"{p}_tokens"]),
                cost_usd=float(row[f"{p}_cost"]),
                tool_calls=int(row[f"{p}_tools"]),
                reserved_tokens=int(row[f"{p}_reserved"]),
            )
            for p in ("day", "month")
        }

    @staticmethod
    def _refuse(
        limits: Limits, spent: dict[Period, Spent], now: datetime, tokens: int, cost: float
    ) -> None:
        """Raise BudgetExceeded if `tokens` and `cost` more would pass a limit (with
        nothing more, once a limit is reached)."""
        periods: tuple[Period, ...] = ("day", "month")
        for period in periods:
            used = spent[period]
            measures: tuple[tuple[Measure, float, float], ...] = (
                ("tokens", used.tokens, tokens),
                ("cost", used.cost_usd, cost),
            )
            for measure, have, more in measures:
                limit = limits.limit(period, measure)
                if limit is None:
                    continue
                if have >= limit or (more > 0 and have + more > limit):
                    raise BudgetExceeded(
                        period=period,
                        measure=measure,
                        used=have,
                        limit=limit,
                        resets_at=period_end(now, period),
                        needed=more,
                    )

    async def check(self, user_id: str, *, tokens: int = 0) -> None:
        """Refuse a new message when a budget is used up already, or has less left than
        `tokens` (the least a reply can reserve: MAX_TOKENS), which its first model call
        would be refused for anyway (the gateway's check; each model call still reserves
        its own worst case)."""
        now = self._clock()
        async with self._engine.connect() as conn:
            limits = await self.limits(user_id, conn)
            if not limits.any:
                return
            spent = await self._spent(conn, user_id, now)
        self._refuse(limits, spent, now, tokens, 0.0)

    async def reserve(self, step: Step, *, tokens: int, cost: float) -> None:
        """Hold a step's worst case, or raise BudgetExceeded when the user's budget
        cannot cover it. The same step reserved again replaces its reservation."""
        now = self._clock()
        async with self._engine.begin() as conn:
            limits = await self.limits(step.user_id, conn)
            if limits.any:
                await conn.execute(
                    text("SELECT pg_advisory_xact_lock(hashtextextended(:user, 20))"),
                    {"user": step.user_id},
                )
                spent = await self._spent(
                    conn, step.user_id, now, turn=step.turn_id, step=step.step
                )
                self._refuse(limits, spent, now, tokens, cost)
            await self._write(conn, step, "reserved", now, tokens=tokens, cost=cost)

    async def settle(
        self, step: Step, usage: TokenUsage, *, kind: str = "model", tool_calls: int = 0
    ) -> None:
        """What the step used, in place of its reservation (or as a new row)."""
        async with self._engine.begin() as conn:
            await self._write(
                conn,
                step,
                "settled",
                self._clock(),
                kind=kind,
                tokens=usage.prompt_tokens + usage.completion_tokens,
                usage=usage,
                cost=usage.cost_usd,
                tool_calls=tool_calls,
            )

    async def record(self, step: Step, usage: TokenUsage) -> TokenUsage:
        """A call made without a reservation (an intent check, a web search, a summary):
        its usage settled, with its estimated cost. A database fault is logged, not
        raised: failing the step would make the call again and spend twice."""
        used = usage.prompt_tokens + usage.completion_tokens
        cost = round(cost_of(self._prices, step.model, usage), 6) if used else 0.0
        priced = usage.model_copy(update={"cost_usd": cost})
        try:
            await self.settle(step, priced)
        except (OSError, SQLAlchemyError) as err:
            log.warning("usage of step %s not recorded: %s", step.step, err)
        return priced

    async def release(self, step: Step) -> None:
        """A step that ended without using anything it can be charged for."""
        async with self._engine.begin() as conn:
            await conn.execute(
                text(f"{_RELEASE} AND step = :step"),
                {"turn": step.turn_id, "step": step.step, "now": self._clock()},
            )

    async def close_turn(self, turn_id: str, conn: AsyncConnection) -> None:
        """The turn is over: what it still holds reserved (a step a crash cut short and
        nothing retried) stops counting."""
        await conn.execute(text(_RELEASE), {"turn": turn_id, "now": self._clock()})

    async def record_tools(
        self, conn: AsyncConnection, step: Step, calls: list[tuple[str, float]]
    ) -> None:
        """A turn's tool calls (name, price), one settled row each, once per call."""
        now = self._clock()
        for index, (name, price) in enumerate(calls):
            one = Step(
                turn_id=step.turn_id,
                step=f"tool:{index}:{name}"[:64],
                user_id=step.user_id,
                session_id=step.session_id,
                model=name,
            )
            await self._write(conn, one, "settled", now, kind="tool", cost=price, tool_calls=1)

    async def _write(
        self,
        conn: AsyncConnection,
        step: Step,
        status: str,
        now: datetime,
        *,
        kind: str = "model",
        tokens: int = 0,
        usage: TokenUsage | None = None,
        cost: float = 0.0,
        tool_calls: int = 0,
    ) -> None:
        usage = usage or TokenUsage()
        await conn.execute(
            _UPSERT,
            {
                "turn": step.turn_id,
                "step": step.step,
                "user": step.user_id,
                "session": step.session_id,
                "kind": kind,
                "model": step.model,
                "status": status,
                "tokens": tokens,
                "prompt": usage.prompt_tokens,
                "completion": usage.completion_tokens,
                "cached": usage.cached_tokens,
                "tool_calls": tool_calls,
                "cost": round(cost, 6),
                "now": now,
            },
        )

    async def top_users(self, limit: int = 50) -> list[dict[str, Any]]:
        """Users by tokens this month, with today's share: `chatbot ops usage`."""
        now = self._clock()
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                text(
                    f"""
                    SELECT user_id,
                           coalesce(sum(tokens) FILTER (WHERE created_at >= :day), 0)
                               AS day_tokens,
                           coalesce(sum(cost_usd) FILTER (WHERE created_at >= :day), 0)
                               AS day_cost,
                           coalesce(sum(tokens), 0) AS month_tokens,
                           coalesce(sum(cost_usd), 0) AS month_cost,
                           coalesce(sum(tool_calls), 0) AS month_tools,
                           count(DISTINCT turn_id) AS month_turns
                    FROM usage_ledger
                    WHERE created_at >= :month AND {_COUNTED}
                    GROUP BY user_id ORDER BY month_tokens DESC, user_id LIMIT :limit
                    """
                ),
                {
                    "day": period_start(now, "day"),
                    "month": period_start(now, "month"),
                    "live_after": now - self._ttl,
                    "limit": limit,
                },
            )
            return [dict(r) for r in rows.mappings()]

    async def report(self, user_id: str) -> UsageReport:
        now = self._clock()
        async with self._engine.connect() as conn:
            limits = await self.limits(user_id, conn)
            spent = await self._spent(conn, user_id, now)
            rows = (
                await conn.execute(
                    text(
                        f"""
                        SELECT session_id, count(DISTINCT turn_id) AS turns,
                               coalesce(sum(tokens), 0) AS tokens,
                               coalesce(sum(cost_usd), 0) AS cost_usd,
                               coalesce(sum(tool_calls), 0) AS tool_calls
                        FROM usage_ledger
                        WHERE user_id = :user AND created_at >= :month AND {_COUNTED}
                        GROUP BY session_id ORDER BY max(created_at) DESC LIMIT 100
                        """
                    ),
                    {
                        "user": user_id,
                        "month": period_start(now, "month"),
                        "live_after": now - self._ttl,
                    },
                )
            ).mappings()
            sessions = [
                SessionUsage(
                    session_id=r["session_id"],
                    turns=int(r["turns"]),
                    tokens=int(r["tokens"]),
                    cost_usd=float(r["cost_usd"]),
                    tool_calls=int(r["tool_calls"]),
                )
                for r in rows
            ]

        def period(p: Period) -> PeriodUsage:
            tokens_limit = limits.limit(p, "tokens")
            return PeriodUsage(
                **spent[p].model_dump(),
                period=p,
                since=period_start(now, p),
                resets_at=period_end(now, p),
                limit_tokens=None if tokens_limit is None else int(tokens_limit),
                limit_cost_usd=limits.limit(p, "cost"),
            )

        return UsageReport(
            user_id=user_id, day=period("day"), month=period("month"), sessions=sessions
        )


def ledger_from_settings(engine: AsyncEngine, settings: Settings) -> UsageLedger:
    return UsageLedger(
        engine,
        defaults=settings.budget_limits,
        reservation_ttl=timedelta(minutes=settings.budget_reservation_minutes),
        prices=settings.prices,
    )
