"""Headers every response carries: `X-Content-Type-Options: nosniff` (a browser never
guesses a type, so a JSON body with user text is never run as HTML or script), and
`Cache-Control: no-store` on the API's own answers (a user's sessions and messages, live
health), unless a route chose otherwise: SSE keeps its `no-cache`, page assets their
revalidation.

Plain ASGI, like `chatbot.middleware`: Starlette's BaseHTTPMiddleware would relay every
SSE frame through a memory stream in a second task."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LIVE_PATHS = frozenset({"/health", "/ready"})


def _no_store(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/") or path in _LIVE_PATHS


class ResponseHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        no_store = _no_store(scope["path"])

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                if no_store:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
