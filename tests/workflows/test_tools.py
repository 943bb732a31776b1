"""Tools in a turn, end to end through the workflow: company search on Postgres and on
(fake) Databricks, web search on the (fake) OpenAI search model, both in parallel, and
failures that leave the turn standing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from openai import AsyncOpenAI
from pydantic import SecretStr
from temporalio.worker import Worker

from chatbot.companies import SAMPLE_FILE, import_companies
from loadtest.fakes import Citation, FakeDatabricksServer, FakeOpenAIServer
from shared.config import Settings, load_settings
from shared.db.engine import engine_from_settings
from shared.redis import redis_from_settings
from shared.temporal_client import connect_temporal
from tests.chatbot.api_support import sse_events
from workers import versioning
from workers.main import build_worker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def sample_companies(settings: Settings) -> None:
    engine = engine_from_settings(settings)
    await import_companies(engine, SAMPLE_FILE, embedder=None, source="sample")
    await engine.dispose()


@pytest.fixture
def databricks(settings: Settings) -> Iterator[FakeDatabricksServer]:
    server = FakeDatabricksServer(token="dapi-test").start()
    settings.databricks_host = server.url
    settings.databricks_token = SecretStr("dapi-test")
    settings.databricks_endpoint_name = server.endpoint_name
    settings.databricks_index_name = server.index_name
    yield server
    server.stop()


def _chat_prompts(llm: FakeOpenAIServer) -> list[str]:
    """The system message of each reply's prompt, where the tool results are."""
    return [
        r["body"]["messages"][0]["content"]
        for r in llm.requests
        if r["endpoint"] == "chat" and "search" not in r["body"]["model"]
    ]


async def test_company_question_searches_postgres_and_says_sample(
    sample_companies: None, worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    resp = await alice.post(
        "/sessions/t1/messages", json={"text": "Which suppliers do PCB assembly in Ohio?"}
    )
    assert resp.status_code == 200, resp.text
    turn = resp.json()
    assert turn["intent"] == "company_search"
    [found] = turn["tool_results"]
    assert found["tool"] == "company_search" and found["source"] == "postgres"
    assert found["sample"] is True
    names = [c["name"] for c in found["companies"]]
    assert names[0] == "Buckeye Circuit Works"
    prompt = _chat_prompts(llm)[-1]
    assert "SAMPLE DATA" in prompt and "Buckeye Circuit Works" in prompt
    assert "company_search" in turn["timings_ms"]
    # Whatever the model said, the reply carries what the search found.
    assert turn["findings"].startswith("Companies found (sample data):\n  1. Buckeye Circuit Works")


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        (
            "Which suppliers do PCB assembly in Ohio?",
            "I found 1 company for “PCB assembly” in Ohio. They are listed below",
        ),
        ("¿Me puedes recomendar proveedores de PCB en Ohio?", "He encontrado 1 empresa para «"),
    ],
)
async def test_templated_tool_replies_report_the_results_without_the_model(
    sample_companies: None,
    settings: Settings,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    text: str,
    starts: str,
) -> None:
    """TOOL_REPLIES=template (auto without a key, as on `chatbot dev`'s small model): the
    reply says what was searched and found, in the user's language, above the findings;
    no model is asked to list companies, so none can invent or repeat them."""
    settings.tool_replies = "template"
    resp = await alice.post(f"/sessions/tpl-{uuid.uuid4().hex[:6]}/messages", json={"text": text})
    assert resp.status_code == 200, resp.text
    turn = resp.json()
    assert turn["intent"] == "company_search"
    assert turn["reply"].startswith(starts), turn["reply"]
    assert "sample data" in turn["reply"] or "datos de ejemplo" in turn["reply"]
    [found] = turn["tool_results"]
    assert len(found["companies"]) == int(starts.split()[2])
    assert turn["findings"].startswith("Companies found (sample data):")
    assert _chat_prompts(llm) == []


def test_auto_tool_replies_are_templated_only_without_a_key() -> None:
    assert load_settings(openai_api_key=None).templated_tool_replies
    assert not load_settings(openai_api_key="sk-x").templated_tool_replies
    assert load_settings(openai_api_key="sk-x", tool_replies="template").templated_tool_replies
    assert not load_settings(tool_replies="model").templated_tool_replies


async def test_findings_reach_the_next_turn_and_the_history(
    sample_companies: None, worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    """The model ignores the results, as SmolLM2-135M did: the user still sees the
    companies, and "the first one" in the next turn refers to what they saw."""
    llm.script({"endpoint": "chat", "reply": "I'm a tech consultant.", "times": 1})
    first = await alice.post(
        "/sessions/t1b/messages", json={"text": "Which suppliers do PCB assembly in Ohio?"}
    )
    assert first.json()["reply"] == "I'm a tech consultant."
    findings = first.json()["findings"]
    assert "Buckeye Circuit Works" in findings
    await alice.post("/sessions/t1b/messages", json={"text": "tell me about the first one"})
    later = next(
        r["body"]["messages"]
        for r in reversed(llm.requests)
        if r["endpoint"] == "chat" and r["body"]["messages"][-1]["content"].endswith("first one")
    )
    assert later[-2] == {"role": "assistant", "content": f"{first.json()['reply']}\n\n{findings}"}
    history = (await alice.get("/sessions/t1b/messages")).json()["items"]
    stored = next(m for m in history if m["role"] == "assistant")
    assert stored["content"] == first.json()["reply"]
    assert stored["tool_data"]["findings"] == findings


async def test_company_question_uses_databricks_when_configured(
    databricks: FakeDatabricksServer, worker: Worker, alice: httpx.AsyncClient
) -> None:
    resp = await alice.post("/sessions/t2/messages", json={"text": "find welding suppliers"})
    assert resp.status_code == 200, resp.text
    [found] = resp.json()["tool_results"]
    assert found["source"] == "databricks" and found["sample"] is False
    assert found["companies"], found
    query = next(r for r in databricks.requests if r["path"].endswith("/query"))
    assert query["body"]["query_text"]
    assert set(query["body"]["columns"]) >= {"name", "location", "capabilities"}


async def test_databricks_401_is_a_clear_unretried_error_and_the_turn_still_answers(
    databricks: FakeDatabricksServer, worker: Worker, alice: httpx.AsyncClient
) -> None:
    databricks.script({"endpoint": "query", "status": 401})
    resp = await alice.post("/sessions/t3/messages", json={"text": "find welding suppliers"})
    assert resp.status_code == 200, resp.text
    turn = resp.json()
    [found] = turn["tool_results"]
    assert found["unavailable"] is True
    assert "refused the query (401)" in found["message"] and "DATABRICKS_TOKEN" in found["message"]
    assert len([r for r in databricks.requests if r["path"].endswith("/query")]) == 1
    assert turn["status"] == "complete" and turn["reply"]


async def test_databricks_503_is_retried(
    databricks: FakeDatabricksServer, worker: Worker, alice: httpx.AsyncClient
) -> None:
    databricks.script({"endpoint": "query", "status": 503, "times": 2})
    resp = await alice.post("/sessions/t4/messages", json={"text": "find welding suppliers"})
    [found] = resp.json()["tool_results"]
    assert found["unavailable"] is False and found["companies"]
    assert len([r for r in databricks.requests if r["path"].endswith("/query")]) == 3


async def test_news_question_searches_the_web_with_numbered_citations(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    llm.search_citations = [
        Citation(url="https://news.example/rates", title="Fed holds rates"),
        Citation(url="https://news.example/markets", title="Markets react"),
    ]
    headers = {"Accept": "text/event-stream"}
    async with alice.stream(
        "POST",
        "/sessions/t5/messages",
        json={"text": "what is the latest news on interest rates today"},
        headers=headers,
    ) as stream:
        events = [e async for e in sse_events(stream)]
    kinds = [e.type for e in events]
    assert "tool" in kinds and kinds.index("tool") < kinds.index("token") < kinds.index("final")
    result = events[-1].data["result"]
    assert result["intent"] == "web_search"
    assert [c["index"] for c in result["citations"]] == [1, 2]
    assert result["citations"][0]["url"] == "https://news.example/rates"
    search = next(r for r in llm.requests if "search" in r["body"].get("model", ""))
    assert "web_search_options" in search["body"]
    prompt = _chat_prompts(llm)[-1]
    assert "[1] Fed holds rates https://news.example/rates" in prompt
    assert result["findings"].splitlines() == [
        "Sources:",
        "  [1] Fed holds rates <https://news.example/rates>",
        "  [2] Markets react <https://news.example/markets>",
    ]


async def test_without_a_key_web_search_says_it_is_not_configured(
    alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    """A deployment on a local model (no OPENAI_API_KEY) has no search model."""
    local = settings.model_copy(update={"openai_api_key": None, "embedder": "auto"})
    client = await connect_temporal(local)
    redis, engine = redis_from_settings(local), engine_from_settings(local)
    chat_model = AsyncOpenAI(base_url=llm.url, api_key="test-key", max_retries=0)
    try:
        async with build_worker(client, local, redis=redis, engine=engine, llm_client=chat_model):
            await versioning.promote(client, local, only_if_none=True)  # as `chatbot worker`
            resp = await alice.post(
                "/sessions/t6/messages", json={"text": "what is bitcoin trading at right now"}
            )
    finally:
        await chat_model.close()
        await redis.aclose()
        await engine.dispose()
    assert resp.status_code == 200, resp.text
    turn = resp.json()
    [web] = turn["tool_results"]
    assert web["tool"] == "web_search" and web["unavailable"] is True
    assert "not configured" in web["message"]
    assert not any("search" in r["body"].get("model", "") for r in llm.requests)
    # Only the web could answer: no model is asked, so none can invent a price.
    assert turn["reply"].startswith("I can't look that up: real-time web search is not configured")
    assert not _chat_prompts(llm)
    assert turn["findings"].startswith("Web search is unavailable: Real-time web search is not")


async def test_both_tools_run_in_parallel(
    sample_companies: None,
    databricks: FakeDatabricksServer,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    # The query itself is slow, not the client's first-call lookups of the index and its
    # embedding endpoint (sequential, so they would make the company search 3 s alone).
    databricks.script({"endpoint": "query", "latency_ms": 1000})
    llm.script({"endpoint": "chat", "model": "gpt-4o-search-preview", "latency_ms": 1000})
    resp = await alice.post(
        "/sessions/t7/messages",
        json={"text": "latest news about welding suppliers this week"},
    )
    assert resp.status_code == 200, resp.text
    turn = resp.json()
    assert turn["intent"] == "both"
    assert {r["tool"] for r in turn["tool_results"]} == {"company_search", "web_search"}
    t = turn["timings_ms"]
    assert t["company_search"] >= 1000 and t["web_search"] >= 1000
    assert t["tools"] < 0.75 * (t["company_search"] + t["web_search"]), t
    # Each tool its own query: the companies without the news clause, the web all of it.
    [asked] = [r for r in databricks.requests if r["path"].endswith("/query")]
    assert asked["body"]["query_text"] == "welding suppliers this week"
    search = next(r for r in llm.requests if "search" in r["body"].get("model", ""))
    assert search["body"]["messages"][-1]["content"].endswith(
        "latest news about welding suppliers this week"
    )
