"""Regenerate: the latest turn answered again, in the context it had, its replies kept as
versions; later turns see the one in use. End to end on the real stack, and through a
worker SIGKILLed mid-answer."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.db.engine import create_engine
from shared.models import workflow_id
from tests.chatbot.api_support import reply_prompts, say, sse_events
from tests.support import assert_eventually, worker_process

pytestmark = pytest.mark.timeout(180)


async def _regenerate(
    client: httpx.AsyncClient, session: str, turn_id: str, **body: Any
) -> httpx.Response:
    return await client.post(f"/sessions/{session}/turns/{turn_id}/regenerate", json=body)


async def _versions(settings: Settings, turn_id: str) -> list[dict[str, Any]]:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text(
                    "SELECT version, content FROM reply_versions WHERE turn_id = :t "
                    "ORDER BY version"
                ),
                {"t": uuid.UUID(turn_id)},
            )
            return [dict(r) for r in rows.mappings()]
    finally:
        await engine.dispose()


async def test_a_regenerated_reply_is_a_new_version_later_turns_see(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    await say(alice, "rg1", "hello")
    first = await say(alice, "rg1", "name a colour")
    llm.script({"endpoint": "chat", "stream": True, "reply": "Green."})
    again = await _regenerate(alice, "rg1", first["turn_id"])
    assert again.status_code == 200, again.text
    turn = again.json()
    assert turn["turn_id"] == first["turn_id"]
    assert turn["reply"] == "Green." and turn["version"] == 2 and turn["versions"] == 2
    original, regenerated = reply_prompts(llm)[-2:]
    assert regenerated == original  # the same message, in the context it had

    history = (await alice.get("/sessions/rg1/messages")).json()["items"]
    assert [m["content"] for m in history] == [
        "hello",
        "Fake reply to: hello",
        "name a colour",
        "Green.",
    ]
    assert (history[-1]["version"], history[-1]["versions"]) == (2, 2)
    listed = (await alice.get(f"/sessions/rg1/turns/{first['turn_id']}/versions")).json()
    assert listed["version"] == 2
    assert [v["content"] for v in listed["items"]] == ["Fake reply to: name a colour", "Green."]

    await say(alice, "rg1", "and another?")
    seen = reply_prompts(llm)[-1]
    assert {"role": "assistant", "content": "Green."} in seen
    assert all("Fake reply to: name a colour" not in str(m["content"]) for m in seen)


async def test_the_version_picked_is_the_one_later_turns_see(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    first = await say(alice, "rg2", "name a colour")
    llm.script({"endpoint": "chat", "stream": True, "reply": "Green."})
    assert (await _regenerate(alice, "rg2", first["turn_id"])).status_code == 200
    picked = await alice.put(f"/sessions/rg2/turns/{first['turn_id']}/version", json={"version": 1})
    assert picked.status_code == 200, picked.text
    assert picked.json()["version"] == 1 and picked.json()["versions"] == 2
    history = (await alice.get("/sessions/rg2/messages")).json()["items"]
    assert history[-1]["content"] == "Fake reply to: name a colour"
    await say(alice, "rg2", "why that one?")
    assert {"role": "assistant", "content": "Fake reply to: name a colour"} in reply_prompts(llm)[
        -1
    ]
    missing = await alice.put(
        f"/sessions/rg2/turns/{first['turn_id']}/version", json={"version": 9}
    )
    assert missing.status_code == 409  # no longer the latest turn
    assert missing.json()["error"]["code"] == "conflict"


async def test_the_same_request_again_is_the_same_version(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, settings: Settings
) -> None:
    first = await say(alice, "rg3", "name a colour")
    llm.script({"endpoint": "chat", "stream": True, "reply": "Green."})
    one = await _regenerate(alice, "rg3", first["turn_id"], client_message_id="regen-1")
    two = await _regenerate(alice, "rg3", first["turn_id"], client_message_id="regen-1")
    assert one.status_code == two.status_code == 200, two.text
    assert one.json()["reply"] == two.json()["reply"] == "Green."
    assert len(await _versions(settings, first["turn_id"])) == 2


async def test_a_session_gone_idle_regenerates_its_latest_turn_from_postgres(
    temporal_client: Client,
    worker: Worker,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    settings.inactivity_timeout_minutes = 0.03  # ~2 s
    await say(alice, "rg-idle", "hello")
    first = await say(alice, "rg-idle", "name a colour")
    handle = temporal_client.get_workflow_handle(workflow_id("rg-idle"))

    async def completed() -> None:
        assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED

    await assert_eventually(completed, within=30)
    llm.script({"endpoint": "chat", "stream": True, "reply": "Green."})
    again = await _regenerate(alice, "rg-idle", first["turn_id"])
    assert again.status_code == 200, again.text
    assert again.json()["version"] == 2
    assert [m["content"] for m in reply_prompts(llm)[-1]][1:] == [
        "hello",
        "Fake reply to: hello",
        "name a colour",
    ]


async def test_regenerate_streams_its_tokens_and_final(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer
) -> None:
    first = await say(alice, "rg4", "name a colour")
    llm.script({"endpoint": "chat", "stream": True, "reply": "A deep green."})
    path = f"/sessions/rg4/turns/{first['turn_id']}/regenerate"
    async with alice.stream(
        "POST", path, json={}, headers={"Accept": "text/event-stream"}
    ) as stream:
        assert stream.status_code == 200
        events = [e async for e in sse_events(stream)]
    assert [e.type for e in events if e.type == "token"]
    final = events[-1]
    assert final.type == "final" and final.data["result"]["reply"] == "A deep green."
    assert final.data["result"]["version"] == 2


async def test_only_the_owners_latest_answered_turn(
    worker: Worker, alice: httpx.AsyncClient, bob: httpx.AsyncClient
) -> None:
    older = await say(alice, "rg5", "one")
    await say(alice, "rg5", "two")
    stale = await _regenerate(alice, "rg5", older["turn_id"])
    assert stale.status_code == 409, stale.text
    assert "latest" in stale.json()["error"]["message"]
    assert (await _regenerate(bob, "rg5", older["turn_id"])).status_code == 404
    assert (await _regenerate(alice, "rg5", str(uuid.uuid4()))).status_code == 404
    assert (await _regenerate(alice, "rg5", "not-a-uuid")).status_code == 422
    assert (await _regenerate(alice, "rg5", older["turn_id"], extra=1)).status_code == 422
    other = await say(alice, "rg5b", "elsewhere")
    assert (await _regenerate(alice, "rg5", other["turn_id"])).status_code == 404


async def test_a_worker_killed_mid_regenerate_yields_one_new_version(
    gateway: str,
    settings: Settings,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    first_worker = await worker_process(settings, tmp_path / "worker1.log")
    second_worker = None
    try:
        first = await say(alice, "rg6", "name a colour")
        long_reply = " ".join(f"green{i}" for i in range(60))
        llm.script(
            {"endpoint": "chat", "stream": True, "reply": long_reply, "tokens_per_second": 5}
        )
        accepted = await alice.post(
            f"/sessions/rg6/turns/{first['turn_id']}/regenerate?wait=false",
            json={"client_message_id": "regen-kill"},
        )
        assert accepted.status_code == 202, accepted.text
        stream_id = accepted.json()["turn_id"]
        async with alice.stream("GET", f"/turns/{stream_id}/events") as stream:
            async for event in sse_events(stream):
                if event.type == "token":
                    break  # it is writing: kill the worker
        first_worker.send_signal(signal.SIGKILL)
        await first_worker.wait()
        second_worker = await worker_process(settings, tmp_path / "worker2.log")
        final = None
        async with alice.stream("GET", f"/turns/{stream_id}/events") as stream:
            async for event in sse_events(stream):
                if event.type in ("final", "error"):
                    final = event
                    break
        assert final is not None and final.type == "final", final
        assert final.data["result"]["version"] == 2
    finally:
        for proc in (first_worker, second_worker):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
    stored = await _versions(settings, first["turn_id"])
    assert [v["version"] for v in stored] == [1, 2]
    assert stored[1]["content"] == final.data["result"]["reply"]
    history = (await alice.get("/sessions/rg6/messages")).json()["items"]
    assert (history[-1]["version"], history[-1]["versions"]) == (2, 2)
    # The same request, retried after all that, is that version, not a third.
    again = await _regenerate(alice, "rg6", first["turn_id"], client_message_id="regen-kill")
    assert again.status_code == 200 and again.json()["version"] == 2
    assert len(await _versions(settings, first["turn_id"])) == 2
