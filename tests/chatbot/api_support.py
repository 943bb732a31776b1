"""The gateway as a client sees it: served by uvicorn on a real port, with tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from chatbot.auth import mint_token
from shared.config import Settings


def auth(settings: Settings, user: str) -> dict[str, str]:
    assert settings.jwt_secret is not None
    return {"Authorization": f"Bearer {mint_token(settings.jwt_secret.get_secret_value(), user)}"}


@dataclass
class SseEvent:
    id: str | None
    event: str
    data: dict[str, Any]


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """Parse a text/event-stream body as it arrives."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if "data" in fields:
                yield SseEvent(
                    fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])
                )
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
