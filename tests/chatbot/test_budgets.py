"""Per-user budgets through the public API, on a real worker and gateway: 20 sessions of
one user at once against a small budget spend at most one reservation more than it, the
user is refused with 429 `budget_exceeded` (what was used, when it resets), other users
are not held, and GET /v1/me/usage reports what the ledger holds."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.usage import Limits, ledger_from_settings
from tests.workflows.tool_support import (
    ToolCallStep,
    answer,
    calls,
    decide,
    enable_tool_calling,
    start_turn,
    until,
)
from workflows.tool_turn import OUT_OF_BUDGET

BUDGET = 400  # tokens a day; a turn here uses ~60 and reserves ~110 (MAX_TOKENS=40)
MAX_TOKENS = 40


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"budget_tokens_per_day": BUDGET, "max_tokens": MAX_TOKENS})


async def _ledger(engine: AsyncEngine, user: str) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                "SELECT turn_id, step, status, tokens, prompt_tokens, completion_tokens "
                "FROM usage_ledger WHERE user_id = :u"
            ),
            {"u": user},
        )
        return [dict(r) for r in rows.mappings()]


async def test_twenty_sessions_of_one_user_never_overspend_a_small_budget(
    worker: Worker,
    alice: httpx.AsyncClient,
    bob: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    llm.latency_ms = 300  # a model that takes a while: the turns overlap

    async def send(i: int) -> httpx.Response:
        return await alice.post(
            f"/sessions/budget-{i}/messages", json={"text": f"question number {i} please"}
        )

    answers = await asyncio.gather(*(send(i) for i in range(20)))
    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) <= {200, 429}, [r.text for r in answers if r.status_code not in (200, 429)]
    answered = [r for r in answers if r.status_code == 200]
    refused = [r for r in answers if r.status_code == 429]
    assert answered and refused
    for r in refused:
        assert r.json()["error"]["code"] == "budget_exceeded", r.text
    rows = await _ledger(engine, "alice")
    settled = [r for r in rows if r["status"] == "settled"]
    assert len(settled) == len(answered)  # one charge per answered turn, none for the refused
    assert not [r for r in rows if r["status"] == "reserved"]  # nothing left held
    spent = sum(int(str(r["tokens"])) for r in settled)
    reservation = max(int(str(r["prompt_tokens"])) for r in settled) + MAX_TOKENS
    assert spent <= BUDGET + reservation, (spent, BUDGET, reservation)
    for r in answered:  # what the turn reports is what the ledger charged
        usage = r.json()["usage"]
        assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0

    # Once used up, a new message is refused before it reaches the workflow.
    # Used up (or too little left for a turn's worst case): refused, saying what and when.
    more = 0  # of these, answered
    for _ in range(10):  # what is left may still hold a turn or two
        over = await alice.post("/sessions/budget-0/messages", json={"text": "one more"})
        if over.status_code != 200:
            break
        more += 1
    assert over.status_code == 429
    error = over.json()["error"]
    assert error["code"] == "budget_exceeded" and "daily tokens budget" in error["message"]
    rows = await _ledger(engine, "alice")
    spent = sum(int(str(r["tokens"])) for r in rows if r["status"] == "settled")
    assert spent <= BUDGET + reservation
    assert error["details"]["used"] == spent and error["details"]["limit"] == BUDGET
    resets = datetime.fromisoformat(error["details"]["resets_at"])
    assert resets.hour == 0 and resets > datetime.now(UTC)
    assert 0 < int(over.headers["Retry-After"]) <= 86_400

    # Another user's budget is their own.
    assert (await bob.post("/sessions/bob-1/messages", json={"text": "hello"})).status_code == 200

    usage = (await alice.get("/me/usage")).json()
    assert usage["day"]["tokens"] == spent and usage["day"]["limit_tokens"] == BUDGET
    assert usage["day"]["reserved_tokens"] == 0
    assert usage["month"]["tokens"] == spent and usage["month"]["limit_tokens"] is None
    assert sum(s["tokens"] for s in usage["sessions"]) == spent
    # budget-0 spent something if it was answered in the burst or once more after it.
    assert {s["session_id"] for s in usage["sessions"]} == {
        f"budget-{i}" for i, r in enumerate(answers) if r.status_code == 200
    } | ({"budget-0"} if more else set())


class TestToolCallingTurn:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        changed = settings.model_copy(update={"budget_tokens_per_day": None})
        enable_tool_calling(changed)
        return changed

    async def test_a_turn_that_runs_out_between_rounds_answers_with_what_it_has(
        self,
        worker: Worker,
        alice: httpx.AsyncClient,
        llm: FakeOpenAIServer,
        engine: AsyncEngine,
        settings: Settings,
    ) -> None:
        llm.script(
            calls(ToolCallStep(id="call_b1", name="create_ticket", arguments={"title": "VPN"})),
            answer("The ticket is open."),
        )
        session = f"budget-loop-{uuid.uuid4().hex[:6]}"
        turn_id = await start_turn(alice, session, "Open a ticket about the VPN")
        await until(alice, turn_id, "approval_required")
        # While the call waits for approval, an operator cuts Alice's budget to what the
        # first round used: the next round cannot reserve anything.
        ledger = ledger_from_settings(engine, settings)
        spent = sum(int(str(r["tokens"])) for r in await _ledger(engine, "alice"))
        await ledger.set_limits("alice", Limits(tokens_per_day=spent + 1))
        decided = await decide(alice, session, turn_id, "call_b1", "approve")
        assert decided.status_code == 200, decided.text
        seen = await until(alice, turn_id, "final")
        result = seen[-1].data["result"]
        assert result["status"] == "complete", result
        assert result["reply"].endswith(OUT_OF_BUDGET)  # what it has, and why it stops
        assert [c["status"] for c in result["tool_calls"]] == ["ok"]  # the ticket is open
        steps = {r["step"]: r["status"] for r in await _ledger(engine, "alice")}
        assert steps["step:0"] == "settled"
        assert steps.get("step:1", "released") == "released"  # refused: nothing charged
        await ledger.clear_limits("alice")
