from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from chatbot.app import create_app
from loadtest.fakes import ServerThread
from shared.config import Settings
from tests.chatbot.api_support import auth


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    """The real gateway app on a real port (streaming and WebSockets need a server)."""
    server = ServerThread(create_app(settings), lifespan="on", ws="auto").start()
    yield server.url
    server.stop()


@pytest.fixture
async def alice(gateway: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, "alice"), timeout=60
    ) as client:
        yield client


@pytest.fixture
async def bob(gateway: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, "bob"), timeout=60
    ) as client:
        yield client
