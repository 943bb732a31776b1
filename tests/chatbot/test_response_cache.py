"""The response cache through the public API, on a real worker, gateway and Redis: an
exact repeat is answered without a provider call (the fake's request log), streamed like
a reply and stored as `cached`; a tool turn, a message with personal data, a question
asked again inside a conversation and another user's same question are not served from
it; CACHE_SCOPE=shared shares across users; semantic mode matches a paraphrase and not a
different question; the hit rate reaches /metrics."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.workflows.tool_support import (
    ToolCallStep,
    answer,
    calls,
    enable_tool_calling,
    start_turn,
    until,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"cache_mode": "exact"})


def sid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def model_calls(llm: FakeOpenAIServer) -> int:
    """Reply-model requests so far (not the search model's, not embeddings)."""
    return sum(
        1
        for r in llm.requests
        if r["endpoint"] == "chat" and "search" not in str(r["body"].get("model"))
    )


def lookups(gateway: str) -> dict[str, float]:
    """The response cache's figures on /metrics."""
    found = {"hit": 0.0, "miss": 0.0, "ratio": 0.0}
    for line in httpx.get(f"{gateway}/metrics").text.splitlines():
        for key, name in (
            ("hit", 'chatbot_response_cache_lookups{result="hit"}'),
            ("miss", 'chatbot_response_cache_lookups{result="miss"}'),
            ("ratio", "chatbot_response_cache_hit_ratio"),
        ):
            if line.startswith(name + " "):
                found[key] = float(line.split()[-1])
    return found


async def ask(client: httpx.AsyncClient, session: str, text: str) -> dict[str, Any]:
    resp = await client.post(f"/sessions/{session}/messages", json={"text": text})
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


async def test_an_exact_repeat_is_served_without_the_provider(
    worker: Worker,
    gateway: str,
    alice: httpx.AsyncClient,
    bob: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    engine: AsyncEngine,
) -> None:
    before = lookups(gateway)
    llm.script(answer("Temporal runs durable workflows: code that survives crashes."))
    first = await ask(alice, sid("c1"), "What is Temporal?")
    assert first["cached"] is False and first["usage"]["completion_tokens"] > 0
    assert model_calls(llm) == 1

    # Another session of Alice's, the question spelled differently: from the cache, streamed.
    session = sid("c2")
    turn = await start_turn(alice, session, "  what is   TEMPORAL ")
    seen = await until(alice, turn, "final")
    tokens = "".join(e.data["text"] for e in seen if e.type == "token")
    assert tokens == first["reply"]
    assert len([e for e in seen if e.type == "token"]) > 1  # in pieces, like a reply
    final = seen[-1].data["result"]
    assert final["cached"] is True and final["reply"] == first["reply"]
    assert final["usage"]["prompt_tokens"] == final["usage"]["completion_tokens"] == 0
    assert model_calls(llm) == 1  # no provider call
    history = (await alice.get(f"/sessions/{session}/messages")).json()["items"]
    (reply,) = [m for m in history if m["role"] == "assistant"]
    assert reply["tool_data"]["cached"] is True and reply["content"] == first["reply"]
    async with engine.connect() as conn:  # in the ledger: a turn, of no tokens
        charged = (
            await conn.execute(
                text("SELECT step, model, tokens FROM usage_ledger WHERE turn_id = :t"),
                {"t": turn},
            )
        ).all()
    assert [tuple(r) for r in charged] == [("reply", "cache:gpt-4o-mini", 0)]

    # Bob asks the same: his own answer, not Alice's.
    llm.script(answer("Bob's own answer about Temporal."))
    theirs = await ask(bob, sid("c3"), "What is Temporal?")
    assert theirs["cached"] is False and theirs["reply"] == "Bob's own answer about Temporal."
    assert model_calls(llm) == 2

    # Inside a conversation the same words are another question: the model is asked.
    llm.script(answer("As I said: durable workflows."))
    again = await ask(alice, session, "What is Temporal?")
    assert again["cached"] is False and model_calls(llm) == 3

    # On /metrics: one hit and three misses more (other tests' lookups count there too).
    after = lookups(gateway)
    assert (after["hit"] - before["hit"], after["miss"] - before["miss"]) == (1, 3)
    assert after["ratio"] == pytest.approx(after["hit"] / (after["hit"] + after["miss"]))


async def test_tool_turns_and_personal_messages_are_not_cached(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    # A web search turn (the router's path): its reply rests on what the search found.
    for _ in range(2):
        turn = await ask(alice, sid("t"), "what are the latest news about the economy today?")
        assert turn["intent"] == "web_search" and turn["cached"] is False
    # A message with an email address in it is personal: asked of the model each time.
    before = model_calls(llm)
    for _ in range(2):
        llm.script(answer("I will write to them."))
        turn = await ask(alice, sid("p"), "Please draft a note to ana.lopez@example.com")
        assert turn["cached"] is False
    assert model_calls(llm) == before + 2


@pytest.mark.usefixtures("_tool_calling")
async def test_a_tool_calling_turn_is_cached_only_when_it_called_no_tool(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.script(
        calls(ToolCallStep(id="c1", name="search_companies", arguments={"query": "solar"})),
        answer("Two solar suppliers."),
    )
    used = await ask(alice, sid("k"), "Which companies sell solar panels?")
    assert used["tool_calls"] and used["cached"] is False
    llm.script(
        calls(ToolCallStep(id="c2", name="search_companies", arguments={"query": "solar"})),
        answer("Two solar suppliers, again."),
    )
    again = await ask(alice, sid("k"), "Which companies sell solar panels?")
    assert again["cached"] is False and again["tool_calls"]  # looked up again, not replayed

    llm.script(answer("A haiku: code that never dies."))
    plain = await ask(alice, sid("k"), "Write a haiku about durable code")
    before = model_calls(llm)
    repeat = await ask(alice, sid("k"), "write a haiku about durable code.")
    assert repeat["cached"] is True and repeat["reply"] == plain["reply"]
    assert model_calls(llm) == before


@pytest.fixture
def _tool_calling(settings: Settings) -> None:
    enable_tool_calling(settings)


class TestShared:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"cache_scope": "shared"})

    async def test_shared_scope_answers_every_user(
        self,
        worker: Worker,
        alice: httpx.AsyncClient,
        bob: httpx.AsyncClient,
        llm: FakeOpenAIServer,
    ) -> None:
        llm.script(answer("Office hours are 9 to 5."))
        first = await ask(alice, sid("s"), "What are the office hours?")
        theirs = await ask(bob, sid("s"), "What are the office hours?")
        assert theirs["cached"] is True and theirs["reply"] == first["reply"]


@pytest.mark.embedder("local")
class TestSemantic:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"cache_mode": "semantic"})

    async def test_a_paraphrase_is_a_hit_and_another_question_is_not(
        self, worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
    ) -> None:
        llm.script(answer("Open Settings, then Security, then Reset password."))
        first = await ask(alice, sid("m"), "How do I reset my password?")
        paraphrase = await ask(alice, sid("m"), "how can I reset my password")
        assert paraphrase["cached"] is True and paraphrase["reply"] == first["reply"]
        before = model_calls(llm)
        llm.script(answer("Open Settings, then Profile, then Email."))
        other = await ask(alice, sid("m"), "How do I change my email address?")
        assert other["cached"] is False and model_calls(llm) == before + 1
