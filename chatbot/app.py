"""The FastAPI gateway: `/v1` API, health, metrics, OpenAPI docs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chatbot.errors import install_error_handlers
from chatbot.headers import ResponseHeaders
from chatbot.health import shared_metrics
from chatbot.middleware import install_middleware
from chatbot.resources import Resources
from chatbot.routes import (
    admin,
    artifacts,
    branches,
    feedback,
    handoff,
    health,
    messages,
    sessions,
    turns,
    ui,
    usage,
    versions,
    ws,
)
from shared.config import Settings, get_settings
from shared.tracing import configure_tracing

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.jwt_secret is None:
            log.warning("JWT_SECRET is not set: dev mode, every request is the local user 'local'")
        configure_tracing(settings, "gateway")
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
        description="Durable AI chat sessions on Temporal. Bearer JWT auth on /v1.",
    )
    install_error_handlers(app)

    # The last added runs first: response headers wrap everything, CORS answers preflights
    # before auth and also marks the request scope's 413s, which a browser must read.
    install_middleware(app, settings)
    if settings.cors_allow_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            # Bearer tokens, never cookies: no credentialed requests.
            allow_credentials=False,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID", "X-Request-ID"],
            expose_headers=["X-Request-ID", "X-Turn-Id", "Retry-After"],
            max_age=600,
        )
    app.add_middleware(ResponseHeaders)

    for router in (
        sessions.router,
        messages.router,
        turns.router,
        versions.router,
        branches.router,
        ws.router,
        ui.me_router,
        usage.router,
        artifacts.router,
        feedback.router,
        handoff.router,
        admin.router,
    ):
        app.include_router(router, prefix="/v1")
    app.include_router(health.router)
    app.include_router(ui.page_router)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics(request: Request) -> Response:
        await shared_metrics(request.app.state.resources)  # read from Redis at scrape
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
