"""Per-request plumbing: a request id, a log scope carrying the request's ids, a tracing
span that Temporal's interceptor continues into the workflow and activities, one log line
per request, and the body size limit."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from chatbot.errors import error_body
from shared.config import Settings
from shared.logging import log_scope

log = logging.getLogger("chatbot.request")
tracer = trace.get_tracer("chatbot.gateway")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = ("/health", "/ready", "/metrics")


def install_middleware(app: FastAPI, settings: Settings) -> None:
    @app.middleware("http")
    async def per_request(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        length = request.headers.get("content-length")
        too_big = length is not None and (
            not length.isdigit() or int(length) > settings.max_request_bytes
        )
        started = time.perf_counter()
        with (
            log_scope(request_id=request_id) as scope,
            tracer.start_as_current_span(
                f"{request.method} {request.url.path}", kind=SpanKind.SERVER
            ) as span,
        ):
            if too_big:
                response: Response = JSONResponse(
                    error_body(
                        "payload_too_large",
                        f"request body over {settings.max_request_bytes} bytes",
                    ),
                    413,
                )
            else:
                response = await call_next(request)
            response.headers["X-Request-ID"] = request_id
            span.set_attribute("http.status_code", response.status_code)
            for key, value in scope.items():
                span.set_attribute(f"chatbot.{key}", value)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            if request.url.path not in _QUIET_PATHS:
                log.info(
                    "%s %s -> %s",
                    request.method,
                    request.url.path,
                    response.status_code,
                    extra={
                        "status": response.status_code,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
        return response
