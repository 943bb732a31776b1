"""The gateway as a client sees it: served by uvicorn on a real port, with tokens, and
the `chatbot` command run as a person runs it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx

from chatbot.auth import Role, mint_token
from chatbot.client import Event, SseParser
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings


def auth(settings: Settings, user: str, *roles: Role) -> dict[str, str]:
    """The header of `user`'s token, with `roles` beside user."""
    assert settings.jwt_secret is not None
    token = mint_token(settings.jwt_secret.get_secret_value(), user, roles=roles)
    return {"Authorization": f"Bearer {token}"}


async def sse_events(response: httpx.Response) -> AsyncIterator[Event]:
    """Parse a text/event-stream body as it arrives, with the CLI client's parser."""
    parser = SseParser()
    async for line in response.aiter_lines():
        if (event := parser.feed(line)) is not None:
            yield event


def token(settings: Settings, user: str) -> str:
    return auth(settings, user)["Authorization"].split()[1]


async def run_chatbot(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """`python -m chatbot ARGS` in a child process: its exit code, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatbot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    return proc.returncode or 0, out.decode(), err.decode()


async def say(client: httpx.AsyncClient, session: str, text: str) -> dict[str, Any]:
    """Send a message and wait for its answer (200), the turn's result."""
    resp = await client.post(f"/sessions/{session}/messages", json={"text": text})
    assert resp.status_code == 200, resp.text
    turn: dict[str, Any] = resp.json()
    return turn


def reply_prompts(llm: FakeOpenAIServer) -> list[list[dict[str, Any]]]:
    """The messages of each streamed reply the chat model was asked for, in order (not
    the search model's, summaries or embeddings)."""
    return [
        list(r["body"]["messages"])
        for r in llm.requests
        if r["endpoint"] == "chat"
        and r["body"]["model"] == "gpt-4o-mini"
        and r["body"].get("stream")
    ]
