"""The gateway as a client sees it: served by uvicorn on a real port, with tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from chatbot.auth import mint_token
from chatbot.client import Event, SseParser
from shared.config import Settings


def auth(settings: Settings, user: str) -> dict[str, str]:
    assert settings.jwt_secret is not None
    return {"Authorization": f"Bearer {mint_token(settings.jwt_secret.get_secret_value(), user)}"}


async def sse_events(response: httpx.Response) -> AsyncIterator[Event]:
    """Parse a text/event-stream body as it arrives, with the CLI client's parser."""
    parser = SseParser()
    async for line in response.aiter_lines():
        if (event := parser.feed(line)) is not None:
            yield event
