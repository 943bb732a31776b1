"""HANDOFF_INTENTS: a message of an intent the team keeps for people hands the session
over at once on the router's path (source `rule`), without a search or a model."""

from __future__ import annotations

import uuid

import httpx
import pytest
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import ConfigError, Settings, load_settings

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"handoff_intents": ["web_search"]})


async def test_a_kept_intent_goes_to_a_person(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    session = f"hi-{uuid.uuid4().hex[:8]}"
    chat = await alice.post(f"/sessions/{session}/messages", json={"text": "hello"})
    assert chat.json()["handoff"] is None  # chat is not kept
    before = len(llm.requests)
    news = await alice.post(
        f"/sessions/{session}/messages", json={"text": "What are today's top news headlines?"}
    )
    turn = news.json()
    assert turn["intent"] == "web_search"
    assert turn["handoff"]["source"] == "rule"
    assert turn["handoff"]["reason"].startswith("web_search questions go to a person")
    assert turn["reply"].startswith("I've asked a person from the team")
    assert len(llm.requests) == before  # no web search, no model


def test_unknown_intents_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HANDOFF_INTENTS", "web_search,weather")
    with pytest.raises(ConfigError, match="HANDOFF_INTENTS"):
        load_settings()
