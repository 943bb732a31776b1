"""Every model call lands in the usage ledger under its turn, not only the reply: the web
search model's tokens, the intent router's LLM layer, and the fold of older turns into
the summary (with PII_REDACTION=logs+prompts, the fold's prompt holds placeholders and
the stored summary the originals)."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.support import assert_eventually

pytestmark = pytest.mark.timeout(120)


async def rows(engine: AsyncEngine, where: str, **params: object) -> list[dict[str, object]]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT turn_id, step, kind, model, status, prompt_tokens, completion_tokens, "
                f"cost_usd FROM usage_ledger WHERE {where} ORDER BY step"
            ),
            params,
        )
        return [dict(r) for r in found.mappings()]


async def test_a_web_search_turn_records_the_search_models_tokens(
    worker: Worker, alice: httpx.AsyncClient, engine: AsyncEngine, settings: Settings
) -> None:
    resp = await alice.post(
        "/sessions/usage-web/messages",
        json={"text": "what are the latest news about the economy today?"},
    )
    assert resp.status_code == 200, resp.text
    turn = resp.json()
    assert turn["intent"] == "web_search"
    found = {r["step"]: r for r in await rows(engine, "turn_id = :t", t=turn["turn_id"])}
    assert set(found) == {"reply", "search:web", "tool:0:web_search"}
    search = found["search:web"]
    assert search["model"] == settings.openai_search_model and search["status"] == "settled"
    assert int(str(search["prompt_tokens"])) > 0 and int(str(search["completion_tokens"])) > 0
    assert float(str(search["cost_usd"])) > 0  # priced from the built-in table


class TestIntentLayer:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"intent_llm_fallback": True})

    async def test_the_routers_llm_call_is_recorded_under_the_turn(
        self, worker: Worker, alice: httpx.AsyncClient, engine: AsyncEngine, llm: FakeOpenAIServer
    ) -> None:
        decided = {"intent": "chat", "confidence": 0.9, "query": "", "location": None}
        llm.script({"endpoint": "chat", "stream": False, "reply": json.dumps(decided)})
        # The classifier is unsure of this one (0.49), so the model decides.
        resp = await alice.post("/sessions/usage-intent/messages", json={"text": "solar"})
        assert resp.status_code == 200, resp.text
        turn = resp.json()
        assert turn["intent"] == "chat" and turn["intent_confidence"] == 0.9
        found = {r["step"]: r for r in await rows(engine, "turn_id = :t", t=turn["turn_id"])}
        assert set(found) == {"intent", "reply"}
        assert int(str(found["intent"]["prompt_tokens"])) > 0


class TestSummaryFold:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(
            update={"context_recent_turns": 1, "pii_redaction": "logs+prompts"}
        )

    async def test_the_fold_is_recorded_and_sees_placeholders_only(
        self, worker: Worker, alice: httpx.AsyncClient, engine: AsyncEngine, llm: FakeOpenAIServer
    ) -> None:
        session = "usage-fold"
        for message in ("Write to ana.lopez@example.com about the order", "thanks", "and?"):
            resp = await alice.post(f"/sessions/{session}/messages", json={"text": message})
            assert resp.status_code == 200, resp.text

        async def folded() -> list[dict[str, object]]:
            found = await rows(engine, "session_id = :s AND step = 'summary'", s=session)
            assert found, "no summary step recorded yet"
            return found

        folds = await assert_eventually(folded, within=30)
        for fold in folds:  # one row per summary version folded, each its own key
            assert str(fold["turn_id"]).startswith("summary-") and fold["status"] == "settled"
            assert int(str(fold["prompt_tokens"])) > 0
        assert len({f["turn_id"] for f in folds}) == len(folds)
        asked = [
            r["body"]
            for r in llm.requests
            if r["endpoint"] == "chat" and "Summary so far" in json.dumps(r["body"])
        ]
        assert asked and "[EMAIL_1]" in json.dumps(asked)
        assert "ana.lopez@example.com" not in json.dumps(asked)
        async with engine.connect() as conn:
            summary = (
                await conn.execute(
                    text("SELECT summary FROM sessions WHERE id = :s"), {"s": session}
                )
            ).scalar_one()
        assert "ana.lopez@example.com" in summary  # the originals, back in what is stored
