"""What the tool-calling tests share: the settings that turn it on, the fake model's
steps, and the gateway calls a client makes during such a turn."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
from sqlalchemy import text

from chatbot.client import Event
from loadtest.fakes import FakeOpenAIServer, Step, ToolCallStep
from shared.config import Settings
from shared.db.engine import create_engine
from tests.chatbot.api_support import sse_events


def enable_tool_calling(settings: Settings, *, approval_timeout: float = 60) -> None:
    """Before the worker and the gateway are built from these settings."""
    settings.tool_calling = "on"
    settings.tool_max_steps = 3
    settings.approval_timeout_seconds = approval_timeout


def calls(*steps: ToolCallStep) -> Step:
    return Step(endpoint="chat", tools=True, stream=True, tool_calls=list(steps))


def answer(reply: str) -> Step:
    return Step(endpoint="chat", stream=True, reply=reply)


def model_requests(llm: FakeOpenAIServer) -> list[dict[str, Any]]:
    """The bodies of the turn's model rounds (not the search model's)."""
    return [
        r["body"]
        for r in llm.requests
        if r["endpoint"] == "chat" and "search" not in r["body"]["model"]
    ]


async def start_turn(client: httpx.AsyncClient, session: str, message: str) -> str:
    resp = await client.post(f"/sessions/{session}/messages?wait=false", json={"text": message})
    assert resp.status_code == 202, resp.text
    return str(resp.json()["turn_id"])


async def events(client: httpx.AsyncClient, turn_id: str) -> AsyncIterator[Event]:
    async with client.stream(
        "GET", f"/turns/{turn_id}/events", headers={"Accept": "text/event-stream"}
    ) as resp:
        assert resp.status_code == 200
        async for event in sse_events(resp):
            yield event


async def until(
    client: httpx.AsyncClient, turn_id: str, kind: str, *, within: float = 60
) -> list[Event]:
    """The turn's events up to and including the first of `kind` (or its end)."""
    seen: list[Event] = []
    async with asyncio.timeout(within):
        async for event in events(client, turn_id):
            seen.append(event)
            if event.type in (kind, "final", "error"):
                break
    return seen


def decide(
    client: httpx.AsyncClient,
    session: str,
    turn_id: str,
    call_id: str,
    decision: str,
    note: str = "",
) -> Any:
    return client.post(
        f"/sessions/{session}/turns/{turn_id}/approvals/{call_id}",
        json={"decision": decision, "note": note},
    )


async def tickets(settings: Settings, session: str) -> list[Any]:
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT title, idempotency_key FROM tickets WHERE session_id = :s"),
                {"s": session},
            )
            return list(rows)
    finally:
        await engine.dispose()
