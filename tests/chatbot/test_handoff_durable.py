"""A handoff is workflow state: a worker SIGKILLed while an agent has the session changes
nothing (a new worker carries on: the agent still has it, the bot still silent); and the
model's escalate_to_human, once the user approves it, hands the session over."""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import auth, say
from tests.support import worker_process
from tests.workflows.tool_support import (
    ToolCallStep,
    answer,
    calls,
    decide,
    enable_tool_calling,
    start_turn,
    until,
)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture
async def agent(gateway: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, "agent-k", "agent"), timeout=60
    ) as client:
        yield client


async def test_a_worker_killed_while_handed_off_changes_nothing(
    gateway: str,
    settings: Settings,
    alice: httpx.AsyncClient,
    agent: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    session = f"hk-{uuid.uuid4().hex[:8]}"
    first = await worker_process(settings, tmp_path / "worker1.log")
    second = None
    try:
        await say(alice, session, "hello")
        assert (await alice.post(f"/sessions/{session}/handoff", json={})).status_code == 200
        assert (await agent.post(f"/handoffs/{session}/claim")).status_code == 200
        first.send_signal(signal.SIGKILL)
        await first.wait()
        second = await worker_process(settings, tmp_path / "worker2.log")

        chats = sum(1 for r in llm.requests if r["endpoint"] == "chat")
        waiting = await say(alice, session, "are you still there?")
        assert waiting["reply"] == "" and waiting["handoff"]["agent_id"] == "agent-k"
        assert sum(1 for r in llm.requests if r["endpoint"] == "chat") == chats
        wrote = await agent.post(f"/handoffs/{session}/messages", json={"text": "Yes, still."})
        assert wrote.status_code == 200, wrote.text
        back = await agent.post(f"/handoffs/{session}/release", json={"outcome": "bot"})
        assert back.status_code == 204
        assert (await say(alice, session, "bye"))["reply"] == "Fake reply to: bye"
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 60)
    history = (await alice.get(f"/sessions/{session}/messages")).json()["items"]
    assert [m["role"] for m in history] == [
        "user", "assistant", "user", "agent", "user", "assistant"
    ]  # fmt: skip


@pytest.fixture
def settings(settings: Settings) -> Settings:
    enable_tool_calling(settings)
    return settings


async def test_the_models_handover_once_approved_puts_the_session_in_the_queue(
    worker: Worker,
    alice: httpx.AsyncClient,
    agent: httpx.AsyncClient,
    llm: FakeOpenAIServer,
) -> None:
    session = f"hm-{uuid.uuid4().hex[:8]}"
    llm.script(
        calls(ToolCallStep(id="call_h", name="escalate_to_human", arguments={"reason": "angry"})),
        answer("A colleague will take over."),
    )
    turn_id = await start_turn(alice, session, "I want to talk to a human")
    await until(alice, turn_id, "approval_required")
    assert (await decide(alice, session, turn_id, "call_h", "approve")).status_code == 200
    result = (await until(alice, turn_id, "final"))[-1].data["result"]
    assert result["reply"] == "A colleague will take over."
    assert result["handoff"]["state"] == "waiting" and result["handoff"]["source"] == "model"
    assert result["handoff"]["reason"] == "angry"
    queue = (await agent.get("/handoffs")).json()["items"]
    assert session in [q["session_id"] for q in queue]
    assert (await say(alice, session, "hello?"))["reply"] == ""  # the bot is silent now
