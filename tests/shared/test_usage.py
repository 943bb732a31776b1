"""The usage ledger on real Postgres: a step is charged once however often it runs,
concurrent reservations of one user never overspend, budgets reset with the UTC day and
month, a user's own row overrides the defaults, and leftover reservations stop counting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db.engine import create_engine
from shared.models import TokenUsage
from shared.usage import (
    DEFAULT_MODEL_PRICES,
    BudgetExceeded,
    Limits,
    ModelPrice,
    Step,
    UsageLedger,
    period_end,
)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=25, max_overflow=0)
    yield engine
    await engine.dispose()


def _ledger(engine: AsyncEngine, clock: Clock, **limits: float) -> UsageLedger:
    return UsageLedger(
        engine,
        defaults=Limits.model_validate(limits),
        reservation_ttl=timedelta(minutes=30),
        clock=clock,
    )


def _step(user: str = "alice", step: str = "reply", turn: str | None = None) -> Step:
    return Step(turn_id=turn or uuid.uuid4().hex, step=step, user_id=user, session_id="s1")


async def _rows(engine: AsyncEngine, turn_id: str) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT step, status, tokens FROM usage_ledger WHERE turn_id = :t"),
            {"t": turn_id},
        )
        return [dict(r) for r in found.mappings()]


def test_cost_counts_cached_prompt_tokens_at_their_price() -> None:
    price = ModelPrice(prompt=2.0, completion=8.0, cached=0.5)
    usage = TokenUsage(prompt_tokens=1_000_000, completion_tokens=500_000, cached_tokens=400_000)
    assert price.cost(usage) == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0)
    assert DEFAULT_MODEL_PRICES["gpt-4o-mini"].cost(TokenUsage(prompt_tokens=1_000_000)) == 0.15


async def test_a_step_run_again_is_charged_once(engine: AsyncEngine) -> None:
    clock = Clock(datetime(2026, 12, 4, 12, tzinfo=UTC))
    ledger = _ledger(engine, clock, tokens_per_day=10_000)
    step = _step()
    for attempt in range(3):  # a retried activity: reserve, and (the last time) settle
        await ledger.reserve(step, tokens=600, cost=0.0)
        if attempt == 2:
            await ledger.settle(step, TokenUsage(prompt_tokens=40, completion_tokens=10))
    assert await _rows(engine, step.turn_id) == [
        {"step": "reply", "status": "settled", "tokens": 50}
    ]
    report = await ledger.report("alice")
    assert (report.day.tokens, report.month.tokens, report.day.reserved_tokens) == (50, 50, 0)
    assert report.sessions[0].session_id == "s1" and report.sessions[0].turns == 1


async def test_concurrent_reservations_of_one_user_never_overspend(engine: AsyncEngine) -> None:
    clock = Clock(datetime(2026, 12, 4, 12, tzinfo=UTC))
    ledger = _ledger(engine, clock, tokens_per_day=1_000)

    async def turn() -> bool:
        step = _step()
        try:
            await ledger.reserve(step, tokens=300, cost=0.0)
        except BudgetExceeded:
            return False
        await asyncio.sleep(0)  # others reserve meanwhile
        await ledger.settle(step, TokenUsage(prompt_tokens=200, completion_tokens=100))
        return True

    admitted = await asyncio.gather(*(turn() for _ in range(20)))
    report = await ledger.report("alice")
    # Each step used all it reserved: exactly as many pass as fit, never one more.
    assert sum(admitted) == 3 and report.day.tokens == 900


async def test_a_budget_used_up_refuses_until_the_day_rolls_over(engine: AsyncEngine) -> None:
    clock = Clock(datetime(2026, 12, 4, 23, 50, tzinfo=UTC))
    ledger = _ledger(engine, clock, tokens_per_day=100, tokens_per_month=200)
    step = _step()
    await ledger.reserve(step, tokens=100, cost=0.0)
    await ledger.settle(step, TokenUsage(prompt_tokens=80, completion_tokens=30))
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.check("alice")
    assert refused.value.period == "day" and refused.value.used == 110
    assert refused.value.resets_at == datetime(2026, 12, 5, tzinfo=UTC)
    assert "daily tokens budget of 100 tokens is used up" in str(refused.value)
    # Too little left for a step's worst case is refused too, before it runs.
    with pytest.raises(BudgetExceeded):
        await _ledger(engine, clock, tokens_per_day=150).reserve(_step(), tokens=50, cost=0.0)

    clock.now = datetime(2026, 12, 5, 0, 1, tzinfo=UTC)  # a new day, the same month
    await ledger.check("alice")
    step = _step()
    await ledger.reserve(step, tokens=90, cost=0.0)
    await ledger.settle(step, TokenUsage(prompt_tokens=70, completion_tokens=20))
    with pytest.raises(BudgetExceeded) as refused:  # 90 today, 200 this month
        await ledger.check("alice")
    assert refused.value.period == "month" and refused.value.used == 200
    assert refused.value.resets_at == datetime(2027, 1, 1, tzinfo=UTC)

    clock.now = datetime(2027, 1, 1, 0, 0, tzinfo=UTC)
    await ledger.check("alice")
    assert (await ledger.report("alice")).month.tokens == 0


async def test_a_users_own_budget_overrides_the_default(engine: AsyncEngine) -> None:
    clock = Clock(datetime(2026, 12, 4, 12, tzinfo=UTC))
    ledger = _ledger(engine, clock, tokens_per_day=1_000_000)
    await ledger.set_limits("alice", Limits(tokens_per_day=10, cost_per_month=0.5))
    assert await ledger.limits("alice") == Limits(tokens_per_day=10, cost_per_month=0.5)
    assert (await ledger.limits("bob")).tokens_per_day == 1_000_000
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(_step("alice"), tokens=11, cost=0.0)
    await ledger.reserve(_step("bob"), tokens=11, cost=0.0)
    # A cost budget counts estimated dollars.
    step = _step("alice")
    await ledger.reserve(step, tokens=5, cost=0.4)
    with pytest.raises(BudgetExceeded) as refused:
        await ledger.reserve(_step("alice"), tokens=1, cost=0.2)
    assert refused.value.measure == "cost" and refused.value.period == "month"


async def test_reservations_left_behind_stop_counting(engine: AsyncEngine) -> None:
    clock = Clock(datetime(2026, 12, 4, 12, tzinfo=UTC))
    ledger = _ledger(engine, clock, tokens_per_day=1_000)
    crashed, closed = _step(), _step()
    await ledger.reserve(crashed, tokens=900, cost=0.0)  # a worker died holding it
    with pytest.raises(BudgetExceeded):
        await ledger.reserve(_step(), tokens=200, cost=0.0)
    clock.now += timedelta(minutes=31)  # past BUDGET_RESERVATION_MINUTES
    await ledger.reserve(closed, tokens=900, cost=0.0)
    async with engine.begin() as conn:  # the turn was stored: what it holds is released
        await ledger.close_turn(closed.turn_id, conn)
    assert await _rows(engine, closed.turn_id) == [
        {"step": "reply", "status": "released", "tokens": 0}
    ]
    await ledger.reserve(_step(), tokens=900, cost=0.0)


def test_periods_end_at_utc_midnight_and_the_first_of_the_month() -> None:
    late = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert period_end(late, "day") == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end(late, "month") == datetime(2027, 1, 1, tzinfo=UTC)
    assert period_end(datetime(2026, 2, 3, tzinfo=UTC), "month") == datetime(2026, 3, 1, tzinfo=UTC)
