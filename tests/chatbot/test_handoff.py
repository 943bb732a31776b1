"""Handing a session to a person, through the public API on a real worker and gateway:
the user asks, the bot stops answering, agents see the queue, one claim of two at once
wins, the agent's messages reach the user stored with role agent, and the session goes
back to the bot or closes; nobody claiming within HANDOFF_SLA tells the user.
A `user` token gets 403 on every agent route. The model's handover and a worker killed
while handed off: test_handoff_durable.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.worker import Worker

from chatbot.auth import Role
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import auth, say, sse_events
from tests.support import assert_eventually

pytestmark = pytest.mark.timeout(150)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"handoff_sla_seconds": 5.0})


def _client(gateway: str, settings: Settings, user: str, *roles: Role) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, user, *roles), timeout=60
    )


@pytest.fixture
async def agents(gateway: str, settings: Settings) -> AsyncIterator[list[httpx.AsyncClient]]:
    clients = [_client(gateway, settings, f"agent-{i}", "agent") for i in (1, 2)]
    yield clients
    for c in clients:
        await c.aclose()


def sid() -> str:
    return f"ho-{uuid.uuid4().hex[:8]}"


def chat_requests(llm: FakeOpenAIServer) -> int:
    return sum(1 for r in llm.requests if r["endpoint"] == "chat")


async def test_the_user_asks_for_a_person_and_one_agent_takes_it(
    worker: Worker,
    alice: httpx.AsyncClient,
    agents: list[httpx.AsyncClient],
    llm: FakeOpenAIServer,
) -> None:
    session = sid()
    await say(alice, session, "hello")  # the bot answers, as always
    asked = await alice.post(f"/sessions/{session}/handoff", json={"reason": "billing"})
    assert asked.status_code == 200, asked.text
    assert asked.json()["state"] == "waiting" and asked.json()["reason"] == "billing"
    again = await alice.post(f"/sessions/{session}/handoff", json={"reason": "again"})
    assert again.json()["requested_at"] == asked.json()["requested_at"]  # the same one

    before = chat_requests(llm)
    waiting = await say(alice, session, "Is anyone there?")
    assert waiting["reply"] == "" and waiting["handoff"]["state"] == "waiting"
    assert chat_requests(llm) == before  # no model asked while a person has it

    agent1, agent2 = agents
    queue = (await agent1.get("/handoffs")).json()["items"]
    (queued,) = [q for q in queue if q["session_id"] == session]
    assert queued["user_id"] == "alice" and queued["handoff"]["state"] == "waiting"

    # Two agents at once: one wins, the other is told who.
    first, second = await asyncio.gather(
        agent1.post(f"/handoffs/{session}/claim"), agent2.post(f"/handoffs/{session}/claim")
    )
    codes = sorted([first.status_code, second.status_code])
    assert codes == [200, 409], (first.text, second.text)
    winner, loser = (agent1, agent2) if first.status_code == 200 else (agent2, agent1)
    lost = first if first.status_code == 409 else second
    won_by = (first if first.status_code == 200 else second).json()["agent_id"]
    assert f"claimed by {won_by} first" in lost.json()["error"]["message"]
    assert (await winner.post(f"/handoffs/{session}/claim")).status_code == 200  # theirs

    refused = await loser.post(f"/handoffs/{session}/messages", json={"text": "me too"})
    assert refused.status_code == 409
    once = {"text": "Hi Alice, I'm here to help.", "client_message_id": "agent-msg-1"}
    wrote = await winner.post(f"/handoffs/{session}/messages", json=once)
    assert wrote.status_code == 200, wrote.text
    again = await winner.post(f"/handoffs/{session}/messages", json=once)  # a retry
    assert again.status_code == 409 and "already used" in again.json()["error"]["message"]
    assert wrote.json()["agent_id"] == won_by
    history = (await alice.get(f"/sessions/{session}/messages")).json()["items"]
    assert [(m["role"], m["content"]) for m in history][-3:] == [
        ("assistant", "Fake reply to: hello"),
        ("user", "Is anyone there?"),
        ("agent", "Hi Alice, I'm here to help."),
    ]
    transcript = (await winner.get(f"/handoffs/{session}/messages")).json()["items"]
    assert transcript == history
    # Its stream is the user's to follow, like a bot turn's.
    events = await alice.get(f"/turns/{wrote.json()['turn_id']}/events")
    assert events.status_code == 200 and "Hi Alice" in events.text

    back = await winner.post(f"/handoffs/{session}/release", json={"outcome": "bot"})
    assert back.status_code == 204, back.text
    answered = await say(alice, session, "thanks")
    assert answered["reply"] == "Fake reply to: thanks" and answered["handoff"] is None
    queue = (await agent1.get("/handoffs")).json()["items"]
    assert session not in [q["session_id"] for q in queue]


async def test_an_agent_may_close_the_session(
    worker: Worker, alice: httpx.AsyncClient, agents: list[httpx.AsyncClient]
) -> None:
    session = sid()
    await say(alice, session, "hello")
    await alice.post(f"/sessions/{session}/handoff", json={})
    agent = agents[0]
    assert (await agent.post(f"/handoffs/{session}/claim")).status_code == 200
    closed = await agent.post(f"/handoffs/{session}/release", json={"outcome": "closed"})
    assert closed.status_code == 204

    async def ended() -> None:
        resp = await alice.post(f"/sessions/{session}/messages", json={"text": "more?"})
        assert resp.status_code == 409, resp.text

    await assert_eventually(ended, within=30)


async def test_a_user_token_is_refused_on_every_agent_route(
    worker: Worker, alice: httpx.AsyncClient
) -> None:
    session = sid()
    await say(alice, session, "hello")
    for method, path, body in [
        ("GET", "/handoffs", None),
        ("POST", f"/handoffs/{session}/claim", None),
        ("GET", f"/handoffs/{session}/messages", None),
        ("POST", f"/handoffs/{session}/messages", {"text": "x"}),
        ("POST", f"/handoffs/{session}/release", {"outcome": "bot"}),
    ]:
        resp = await alice.request(method, path, json=body)
        assert resp.status_code == 403, (path, resp.text)
        assert "needs the agent role" in resp.json()["error"]["message"]


async def test_nobody_claiming_within_the_sla_is_said(
    worker: Worker, alice: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    session = sid()
    await say(alice, session, "hello")
    await alice.post(f"/sessions/{session}/handoff", json={"reason": "urgent"})

    async def missed() -> dict[str, Any]:
        turn = await say(alice, session, "still waiting")
        assert turn["handoff"]["sla_missed"] is True
        return turn

    await assert_eventually(missed, within=30, interval=1)
    # Offered a ticket: one per handoff, however often asked.
    opened = await alice.post(f"/sessions/{session}/handoff/ticket", json={"note": "call me"})
    assert opened.status_code == 200, opened.text
    again = await alice.post(f"/sessions/{session}/handoff/ticket", json={})
    assert again.json()["ticket_id"] == opened.json()["ticket_id"]
    async with engine.connect() as conn:
        described = await conn.scalar(
            text("SELECT description FROM tickets WHERE session_id = :s"), {"s": session}
        )
    assert described == "Reason: urgent\n\ncall me"
    other = sid()
    await say(alice, other, "hello")
    refused = await alice.post(f"/sessions/{other}/handoff/ticket", json={})
    assert refused.status_code == 409  # not waiting for a person


async def test_the_users_feed_tells_the_handoff_and_brings_the_agents_messages(
    worker: Worker, alice: httpx.AsyncClient, agents: list[httpx.AsyncClient]
) -> None:
    session = sid()
    await say(alice, session, "hello")
    agent = agents[0]
    seen: list[tuple[str, Any]] = []

    async def follow() -> None:
        async with alice.stream("GET", f"/sessions/{session}/feed") as resp:
            assert resp.status_code == 200
            async for event in sse_events(resp):
                if event.type == "handoff":
                    handoff = event.data["handoff"]
                    seen.append(("handoff", handoff and handoff["state"]))
                    if handoff is None:
                        return
                elif event.type == "agent_message":
                    seen.append(("agent_message", event.data["text"]))

    reader = asyncio.create_task(follow())
    await alice.post(f"/sessions/{session}/handoff", json={})
    shown = (await alice.get(f"/sessions/{session}")).json()["handoff"]
    assert shown["state"] == "waiting" and shown["source"] == "user"
    await agent.post(f"/handoffs/{session}/claim")
    await agent.post(f"/handoffs/{session}/messages", json={"text": "On it."})
    await agent.post(f"/handoffs/{session}/release", json={"outcome": "bot"})
    await asyncio.wait_for(reader, 30)
    assert seen == [
        ("handoff", "waiting"),
        ("handoff", "claimed"),
        ("agent_message", "On it."),
        ("handoff", None),
    ]
    assert (await alice.get(f"/sessions/{session}")).json()["handoff"] is None


@pytest.mark.parametrize(
    ("text", "reply"),
    [
        ("Can I talk to a human, please?", "I've asked a person from the team"),
        ("Quiero hablar con una persona", "He pedido a una persona del equipo"),
    ],
)
async def test_asking_for_a_person_in_so_many_words_hands_over(
    worker: Worker,
    alice: httpx.AsyncClient,
    agents: list[httpx.AsyncClient],
    llm: FakeOpenAIServer,
    text: str,
    reply: str,
) -> None:
    session = sid()
    turn = await say(alice, session, text)
    assert turn["reply"].startswith(reply)
    assert turn["handoff"]["state"] == "waiting" and turn["handoff"]["source"] == "user"
    assert chat_requests(llm) == 0  # said plainly, no model asked
    queue = (await agents[0].get("/handoffs")).json()["items"]
    assert session in [q["session_id"] for q in queue]
