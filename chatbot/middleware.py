"""Per-request plumbing: a request id, a log scope carrying the request's ids, a tracing
span that Temporal's interceptor continues into the workflow and activities, one log line
per request, and the body size limit.

A plain ASGI middleware, not `@app.middleware("http")`: Starlette's BaseHTTPMiddleware
runs the endpoint in a second task and relays every chunk of a streamed response through
a memory stream, which token streams (SSE) pay for on every frame."""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatbot.errors import error_body
from shared.config import Settings
from shared.logging import log_scope
from shared.pii import PiiRedactor

log = logging.getLogger("chatbot.request")
tracer = trace.get_tracer("chatbot.gateway")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_QUIET_PATHS = ("/health", "/ready", "/metrics")


class RequestScope:
    """Each HTTP request: its id, log scope, span, size limit and log line."""

    def __init__(
        self, app: ASGIApp, *, max_request_bytes: int, pii: PiiRedactor | None = None
    ) -> None:
        self.app = app
        self.max_request_bytes = max_request_bytes
        self.pii = pii  # PII_REDACTION: what a path may carry stays out of span names too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        length = headers.get("content-length")
        too_big = length is not None and (
            not length.isdigit() or int(length) > self.max_request_bytes
        )
        method, path = scope["method"], scope["path"]
        started = time.perf_counter()
        status = 500  # unless a response starts

        received = 0

        async def receive_within_limit() -> Message:
            # Counted as it arrives: a chunked body has no Content-Length to refuse it by.
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_request_bytes:
                    raise HTTPException(413, f"request body over {self.max_request_bytes} bytes")
            return message

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        with (
            log_scope(request_id=request_id) as ids,
            tracer.start_as_current_span(
                f"{method} {self.pii.redact(path) if self.pii else path}", kind=SpanKind.SERVER
            ) as span,
        ):
            try:
                if too_big:
                    refusal = JSONResponse(
                        error_body(
                            "payload_too_large",
                            f"request body over {self.max_request_bytes} bytes",
                        ),
                        413,
                    )
                    await refusal(scope, receive, send_with_id)
                else:
                    await self.app(scope, receive_within_limit, send_with_id)
            finally:
                span.set_attribute("http.status_code", status)
                for key, value in ids.items():
                    span.set_attribute(f"chatbot.{key}", value)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                if path not in _QUIET_PATHS:
                    # For a streamed reply (SSE) the duration is the whole stream's.
                    log.info(
                        "%s %s -> %s",
                        method,
                        path,
                        status,
                        extra={
                            "status": status,
                            "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                        },
                    )


def install_middleware(app: FastAPI, settings: Settings) -> None:
    app.add_middleware(
        RequestScope, max_request_bytes=settings.max_request_bytes, pii=settings.pii_in_logs
    )
