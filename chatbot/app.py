"""The FastAPI gateway: `/v1` API, health, metrics, OpenAPI docs."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from chatbot.errors import error_body, install_error_handlers
from chatbot.resources import Resources
from chatbot.routes import health, messages, sessions, turns, ws
from shared.config import Settings, get_settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.jwt_secret is None:
            log.warning("JWT_SECRET is not set: dev mode, every request is the local user 'local'")
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

    @app.middleware("http")
    async def limit_body(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (
            not length.isdigit() or int(length) > settings.max_request_bytes
        ):
            return JSONResponse(
                error_body(
                    "payload_too_large",
                    f"request body over {settings.max_request_bytes} bytes",
                ),
                413,
            )
        return await call_next(request)

    for router in (sessions.router, messages.router, turns.router, ws.router):
        app.include_router(router, prefix="/v1")
    app.include_router(health.router)

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app
