"""Conversation memory: a 300-turn session stays bounded and remembers, summaries are
applied exactly once, an idle session restarts with its summary and recent turns, and the
prompt fits its token budget."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from openai import AsyncOpenAI
from sqlalchemy import text
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.worker import Worker

from activities.embeddings import LocalEmbedder, vector_literal
from activities.memory import MemoryActivities
from activities.prompt import assemble
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.db import migrate
from shared.db.engine import create_engine, engine_from_settings
from shared.models import ChatMessage, PromptParts, RetrieveInput, SummarizeInput, workflow_id
from tests.support import assert_eventually
from tests.workflows.test_replay import ARTIFACTS, replayer, scheduled_activities
from workflows.chat_session import ChatSessionWorkflow

# The bounds this design keeps, per workflow run (stated in README "Conversation memory").
MAX_EVENTS_PER_RUN = 10_000
MAX_PAYLOAD_BYTES = 256 * 1024


@pytest.fixture
async def migrated_database_url(vector_database_url: str) -> str:
    """This module runs on Postgres with pgvector, where retrieval works."""
    engine = create_engine(vector_database_url, pool_size=1, max_overflow=0)
    await migrate.upgrade(engine)
    await engine.dispose()
    return vector_database_url


def _prompt_for(llm: FakeOpenAIServer, text_: str) -> list[dict[str, str]]:
    """The messages of the latest reply request that ended with the user's `text_`."""
    return next(
        r["body"]["messages"]
        for r in reversed(llm.requests)
        if r["endpoint"] == "chat" and r["body"]["messages"][-1]["content"] == text_
    )


async def _talk(alice: httpx.AsyncClient, sid: str, turns: int) -> None:
    """Messages "turn 1" .. "turn N" in the session, each answered."""
    for n in range(1, turns + 1):
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": f"turn {n}"})
        assert resp.status_code == 200, resp.text


def _summary_requests(llm: FakeOpenAIServer) -> list[dict[str, Any]]:
    """Summaries are the chat requests that are not streamed."""
    return [r for r in llm.requests if r["endpoint"] == "chat" and not r["body"].get("stream")]


async def _until_completed(handle: WorkflowHandle[Any, Any]) -> None:
    async def completed() -> None:
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await assert_eventually(completed, within=60)


def _payload_sizes(node: object) -> list[int]:
    if isinstance(node, dict):
        sizes = [len(node["data"]) * 3 // 4] if "metadata" in node and "data" in node else []
        return sizes + [s for v in node.values() for s in _payload_sizes(v)]
    if isinstance(node, list):
        return [s for v in node for s in _payload_sizes(v)]
    return []


@pytest.mark.timeout(900)
async def test_three_hundred_turns_stay_bounded_and_remember_turn_three(
    settings: Settings,
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    settings.turns_per_run = 50
    settings.retrieval_threshold = 0.5  # the fake's embeddings are word hashes, not meaning
    sid = f"long-{uuid.uuid4().hex[:6]}"
    for n in range(1, 301):
        if n == 3:
            text_ = "Remember this: my project codename is BLUEHERON."
        elif n == 250:
            text_ = "What is my project codename?"
        else:
            text_ = f"filler note {n} about lunch plans and weather"
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text_})
        assert resp.status_code == 200, (n, resp.text)
        if n == 250:
            turn_250 = resp.json()
            prompt_250 = _prompt_for(llm, text_)
    system = prompt_250[0]["content"]
    assert "BLUEHERON" in system, system[:2000]
    # Said when it fails (it did once, on a loaded machine, issue 16): what went into the
    # prompt and how long each step took, retrieval included.
    assert turn_250["context"]["retrieved"] >= 1, (turn_250["context"], turn_250["timings_ms"])
    # The 10 recent turns, and up to a batch (5) more on their way into the summary.
    assert 10 <= turn_250["context"]["recent_turns"] <= 15
    assert turn_250["context"]["summary"] is True

    async def all_runs() -> list[Any]:
        query = f"WorkflowId = '{workflow_id(sid)}'"
        found = [e async for e in temporal_client.list_workflows(query)]
        # 50 turns a run, a few more when the next message is already waiting (the run
        # continues as new once its handlers finish); visibility catches up a moment later.
        assert len(found) >= 4
        return found

    runs = await assert_eventually(all_runs, within=30)
    worst_events, worst_payload = 0, 0
    for run in runs:
        handle = temporal_client.get_workflow_handle(run.id, run_id=run.run_id)
        history = await handle.fetch_history()
        worst_events = max(worst_events, len(history.events))
        worst_payload = max(worst_payload, *_payload_sizes(json.loads(history.to_json())))
    print(
        f"\n300 turns, 6 runs: at most {worst_events} events and a largest payload of "
        f"{worst_payload} bytes in one run"
    )
    assert worst_events < MAX_EVENTS_PER_RUN
    assert worst_payload < MAX_PAYLOAD_BYTES


async def test_summary_is_applied_once_even_when_the_activity_is_retried(
    settings: Settings, llm: FakeOpenAIServer
) -> None:
    engine = engine_from_settings(settings)
    client = AsyncOpenAI(base_url=llm.url, api_key="test-key", max_retries=0)
    memory = MemoryActivities(client, engine, None, settings)
    sid = f"sum-{uuid.uuid4().hex[:6]}"
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO sessions (id, user_id) VALUES (:i, 'u')"), {"i": sid}
            )
        turns = [
            ChatMessage(role="user", content="I am Ada"),
            ChatMessage(role="assistant", content="Hi Ada"),
        ]
        req = SummarizeInput(session_id=sid, version=0, summary="", turns=turns)

        llm.script({"endpoint": "chat", "status": 500})
        with pytest.raises(Exception, match="500"):
            await memory.summarize(req)  # a failed attempt changes nothing
        llm.script({"endpoint": "chat", "reply": "The user is Ada."})
        first = await memory.summarize(req)
        assert (first.summary, first.version) == ("The user is Ada.", 1)
        calls = len(llm.requests)
        again = await memory.summarize(req)  # a retry after the write landed
        assert (again.summary, again.version) == ("The user is Ada.", 1)
        assert len(llm.requests) == calls  # the model was not asked to fold twice
        async with engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT summary, summary_version FROM sessions WHERE id = :i"), {"i": sid}
                )
            ).one()
        assert (row.summary, row.summary_version) == ("The user is Ada.", 1)
    finally:
        await client.close()
        await engine.dispose()


async def test_idle_session_restarts_with_its_summary_and_recent_turns(
    settings: Settings,
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    settings.context_recent_turns = 2
    settings.inactivity_timeout_minutes = 0.04
    sid = f"idle-mem-{uuid.uuid4().hex[:6]}"
    await _talk(alice, sid, 4)
    handle = temporal_client.get_workflow_handle(workflow_id(sid))

    async def idle() -> None:
        assert (await alice.get(f"/sessions/{sid}")).json()["status"] == "idle"

    await assert_eventually(idle, within=60)
    llm.clear_requests()
    assert (
        await alice.post(f"/sessions/{sid}/messages", json={"text": "turn 5"})
    ).status_code == 200
    prompt = _prompt_for(llm, "turn 5")
    assert "Summary of the conversation so far:" in prompt[0]["content"]
    assert "turn 1" in prompt[0]["content"]  # folded into the summary
    assert [m["content"] for m in prompt[1:]] == [
        "turn 3",
        "Fake reply to: turn 3",
        "turn 4",
        "Fake reply to: turn 4",
        "turn 5",
    ]
    desc = await handle.describe()
    assert desc.run_id is not None


async def test_turns_short_of_a_fold_are_folded_before_the_session_goes_idle(
    settings: Settings, worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    settings.context_recent_turns = 4  # folds go 2 turns at a time
    settings.inactivity_timeout_minutes = 0.04
    sid = f"idle-fold-{uuid.uuid4().hex[:6]}"
    await _talk(alice, sid, 5)  # turn 5 leaves turn 1 alone outside the window: no fold yet
    assert not _summary_requests(llm)

    async def idle() -> None:
        assert (await alice.get(f"/sessions/{sid}")).json()["status"] == "idle"

    await assert_eventually(idle, within=60)
    llm.clear_requests()
    resp = await alice.post(f"/sessions/{sid}/messages", json={"text": "turn 6"})
    assert resp.status_code == 200
    [prompt] = [r["body"]["messages"] for r in llm.requests if r["endpoint"] == "chat"]
    assert "turn 1" in prompt[0]["content"]  # in the summary, folded before going idle
    assert [m["content"] for m in prompt[1::2]] == [
        "turn 2",
        "turn 3",
        "turn 4",
        "turn 5",
        "turn 6",
    ]


async def test_a_turn_does_not_wait_for_the_summary_of_the_turns_before(
    settings: Settings,
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    """Folding runs beside the turns: a message sent while the model is still summarising
    is answered at once, with the turns waiting to be folded in its prompt verbatim."""
    settings.context_recent_turns = 2  # turn 3 sends turn 1 off to the summary
    # The summary (the one chat request that is not streamed) takes 5 s to come back.
    llm.script(
        {"endpoint": "chat", "stream": False, "latency_ms": 5000, "reply": "Counted to one."}
    )
    sid = f"aside-{uuid.uuid4().hex[:6]}"

    async def send(text_: str) -> list[dict[str, str]]:
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": text_})
        assert resp.status_code == 200, resp.text
        return _prompt_for(llm, text_)

    for n in (1, 2, 3):
        await send(f"turn {n}")

    async def summarising() -> None:
        assert _summary_requests(llm)

    await assert_eventually(summarising, within=10)
    prompt_4 = await send("turn 4")
    assert "Summary of the conversation so far:" not in prompt_4[0]["content"]
    assert [m["content"] for m in prompt_4[1:]] == [
        "turn 1",  # still on its way into the summary: verbatim, not missing
        "Fake reply to: turn 1",
        "turn 2",
        "Fake reply to: turn 2",
        "turn 3",
        "Fake reply to: turn 3",
        "turn 4",
    ]
    engine = engine_from_settings(settings)
    try:

        async def folded() -> None:
            async with engine.connect() as conn:
                version = (
                    await conn.execute(
                        text("SELECT summary_version FROM sessions WHERE id = :i"), {"i": sid}
                    )
                ).scalar_one()
            assert version == 2  # turn 1, then turn 2 once turn 4 pushed it out

        await assert_eventually(folded, within=30)
    finally:
        await engine.dispose()
    prompt_5 = await send("turn 5")
    assert "Counted to one." in prompt_5[0]["content"]
    assert [m["content"] for m in prompt_5[1:]] == [
        "turn 3",
        "Fake reply to: turn 3",
        "turn 4",
        "Fake reply to: turn 4",
        "turn 5",
    ]
    # A turn and a fold side by side replay deterministically.
    history = await temporal_client.get_workflow_handle(workflow_id(sid)).fetch_history()
    await replayer().replay_workflow(history)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "session_fold_aside.json").write_text(history.to_json())


async def test_a_refused_summary_is_asked_again_once_per_turn_and_the_session_still_ends(
    settings: Settings,
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    settings.context_recent_turns = 2
    # Every summary is refused (a 400 is not retried): the conversation goes on.
    llm.script({"endpoint": "chat", "stream": False, "status": 400, "times": 1000})
    sid = f"refused-{uuid.uuid4().hex[:6]}"
    await _talk(alice, sid, 5)
    handle = temporal_client.get_workflow_handle(workflow_id(sid))
    await handle.signal(ChatSessionWorkflow.end_session)
    await _until_completed(handle)
    summaries = scheduled_activities(await handle.fetch_history()).count("summarize")
    assert 1 <= summaries <= 3  # turns 3, 4 and 5 each left a turn to fold


async def test_a_message_during_the_last_fold_keeps_the_session_active(
    settings: Settings,
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    settings.context_recent_turns = 4  # folds go 2 turns at a time
    settings.inactivity_timeout_minutes = 0.05  # 3 s
    llm.script({"endpoint": "chat", "stream": False, "latency_ms": 3000, "reply": "Five turns."})
    sid = f"late-{uuid.uuid4().hex[:6]}"
    await _talk(alice, sid, 5)  # turn 5 leaves turn 1 alone outside the window

    async def folding() -> None:  # the session timed out and folds what is left
        assert _summary_requests(llm)

    await assert_eventually(folding, within=30)
    resp = await alice.post(f"/sessions/{sid}/messages", json={"text": "turn 6"})
    assert resp.status_code == 200
    handle = temporal_client.get_workflow_handle(workflow_id(sid))
    await _until_completed(handle)  # idle
    # Once, 3 quiet seconds after turn 6: not after the fold, with turn 6 just answered.
    assert scheduled_activities(await handle.fetch_history()).count("mark_idle") == 1


async def test_turns_waiting_to_be_folded_are_not_also_retrieved(
    settings: Settings, worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    settings.context_recent_turns = 4  # folds go 2 turns at a time
    settings.retrieval_threshold = 0.5  # the fake's embeddings are word hashes
    sid = f"nodup-{uuid.uuid4().hex[:6]}"
    await _talk(alice, sid, 5)  # turn 5 leaves turn 1 outside the window, short of a fold
    resp = await alice.post(f"/sessions/{sid}/messages", json={"text": "turn 1"})
    assert resp.status_code == 200
    embedded = [r["body"]["input"] for r in llm.requests if r["endpoint"] == "embeddings"]
    assert ["turn 1", "turn 1", "Fake reply to: turn 1"] in embedded  # query + turn 1
    prompt = _prompt_for(llm, "turn 1")
    assert [m["content"] for m in prompt[1:3]] == ["turn 1", "Fake reply to: turn 1"]
    assert "Relevant earlier context" not in prompt[0]["content"]  # not a second time


def test_prompt_is_trimmed_to_budget_in_the_stated_order() -> None:
    def count(text_: str) -> int:
        return len(text_.split())

    parts = PromptParts(
        system="be brief",
        summary="summary " * 50,
        retrieved=["similar one " * 10, "similar two " * 10],
        recent=[
            ChatMessage(role="user", content="old " * 30),
            ChatMessage(role="assistant", content="reply " * 30),
        ]
        * 2,
        tool_context="tools " * 40,
        user="the question",
    )
    messages, full = assemble(parts, 10_000, count)
    assert full.trimmed == [] and full.retrieved == 2 and full.recent_turns == 2
    messages, report = assemble(parts, 200, count)
    assert report.prompt_tokens <= 200
    assert report.retrieved == 0 and "retrieved" in report.trimmed
    assert messages[-1].content == "the question" and messages[0].content.startswith("be brief")
    _, tight = assemble(parts, 30, count)
    assert tight.recent_turns == 0 and tight.retrieved == 0
    assert set(tight.trimmed) >= {"retrieved", "recent_turn", "tool_context"}


async def test_messages_are_embedded_when_they_leave_the_recent_window(
    settings: Settings,
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    """No turn waits on the embeddings API while the session is short; once turns leave
    the recent window, one request embeds the query and those turns together."""
    settings.context_recent_turns = 2
    sid = f"embed-{uuid.uuid4().hex[:6]}"

    def embedding_inputs() -> list[list[str]]:
        return [r["body"]["input"] for r in llm.requests if r["endpoint"] == "embeddings"]

    for n in range(1, 4):
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": f"note {n}"})
        assert resp.status_code == 200, resp.text
    assert embedding_inputs() == []

    resp = await alice.post(f"/sessions/{sid}/messages", json={"text": "note 4"})
    assert resp.status_code == 200, resp.text
    [inputs] = embedding_inputs()
    assert inputs[0] == "note 4" and inputs[1] == "note 1" and len(inputs) == 3

    engine = engine_from_settings(settings)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(
                    text(
                        "SELECT content, embedding IS NOT NULL AS embedded FROM messages "
                        "WHERE session_id = :s ORDER BY seq"
                    ),
                    {"s": sid},
                )
            ).all()
    finally:
        await engine.dispose()
    assert [r.embedded for r in rows] == [True, True] + [False] * 6


@pytest.mark.embedder("local")
async def test_the_local_embedder_recalls_an_early_fact_offline(
    settings: Settings, worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    """Issue 16: with the embed extra (the default install), recall by meaning needs no
    embeddings API; the reply's context names the embedder, and its own threshold (no
    RETRIEVAL_THRESHOLD set) keeps the unrelated turns out."""
    settings.context_recent_turns = 4
    assert settings.retrieval_threshold is None
    sid = f"local-{uuid.uuid4().hex[:6]}"
    for n in range(1, 13):
        said = (
            "Remember this: my project codename is BLUEHERON."
            if n == 2
            else f"filler note {n} about lunch plans and weather"
        )
        resp = await alice.post(f"/sessions/{sid}/messages", json={"text": said})
        assert resp.status_code == 200, resp.text
    question = "What is my project codename?"
    resp = await alice.post(f"/sessions/{sid}/messages", json={"text": question})
    assert resp.status_code == 200, resp.text
    context = resp.json()["context"]
    assert context["embedder"] == LocalEmbedder.name
    assert context["retrieved"] >= 1, context
    system = _prompt_for(llm, question)[0]["content"]
    recalled = system.split("Relevant earlier context from this conversation:")[1]
    assert "BLUEHERON" in recalled.split("\n\n")[0]
    assert "filler note" not in recalled.split("\n\n")[0]
    assert [r for r in llm.requests if r["endpoint"] == "embeddings"] == []


async def test_retrieval_is_exact_within_the_session(
    settings: Settings, llm: FakeOpenAIServer
) -> None:
    """The cause of issue 16's loaded-machine miss: an approximate (HNSW) scan takes its
    ~40 nearest vectors and filters them afterwards (other sessions, the recent window),
    and it is approximate besides, so when many vectors nearer to the question do not
    qualify, the one that does is never a candidate: retrieved 0. Retrieval is exact
    within the session. Here the 3000 nearest are in the recent window (the question asked
    again and again), the answer older than all of them."""
    embedder = LocalEmbedder()
    engine = engine_from_settings(settings)
    client = AsyncOpenAI(base_url=llm.url, api_key="test-key", max_retries=0)
    memory = MemoryActivities(client, engine, embedder, settings)
    sid = f"exact-{uuid.uuid4().hex[:6]}"
    fact = "Remember this: my project codename is BLUEHERON."
    asked = "What is my project codename? I keep forgetting it."
    fact_vector, asked_vector = await embedder.embed([fact, asked])
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO sessions (id, user_id) VALUES (:i, 'u')"), {"i": sid}
            )
            insert = text(
                "INSERT INTO messages (id, turn_id, session_id, role, content, embedding, "
                "embedding_model) VALUES (gen_random_uuid(), gen_random_uuid(), :s, 'user', "
                ":c, CAST(:v AS vector), :m)"
            )
            row = {"s": sid, "m": embedder.name}
            await conn.execute(insert, {**row, "c": fact, "v": vector_literal(fact_vector)})
            await conn.execute(
                insert, [{**row, "c": asked, "v": vector_literal(asked_vector)}] * 3000
            )
            await conn.execute(text("ANALYZE messages"))
        found = await memory.retrieve_context(
            RetrieveInput(session_id=sid, query="What is my project codename?", exclude_recent=3000)
        )
        assert found.snippets == [f"user: {fact}"], found
    finally:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM sessions WHERE id = :i"), {"i": sid})
        await client.close()
        await engine.dispose()
