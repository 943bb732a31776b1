"""The FastAPI gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from chatbot.resources import Resources
from chatbot.routes import health
from shared.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resources = Resources.from_settings(settings)
        app.state.resources = resources
        try:
            yield
        finally:
            await resources.close()

    app = FastAPI(
        title="Temporal chat backend",
        version="0.1.0",
        lifespan=lifespan,
        description="Durable AI chat sessions on Temporal. See README.md.",
    )
    app.include_router(health.router)
    return app
