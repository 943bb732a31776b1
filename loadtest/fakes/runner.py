"""Serve an ASGI app with uvicorn from a background thread (tests, and the fakes' CLI)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from typing import Any, Literal, Self

import uvicorn
from starlette.types import ASGIApp


class _Server(uvicorn.Server):
    """Reports readiness through a threading.Event, and owns the "stopping" event."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self.ready = ready
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stopping: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self.loop, self.stopping = asyncio.get_running_loop(), asyncio.Event()
        await super().startup(sockets)
        self.ready.set()


class ServerThread:
    """`app` served on `host:port` (0 picks a free port) by a daemon thread."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        lifespan: Literal["on", "off"] = "off",
        ws: Literal["auto", "none"] = "none",
    ) -> None:
        self.app, self.host, self.port = app, host, port
        self.lifespan, self.ws = lifespan, ws
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Origin of the running server, e.g. http://127.0.0.1:54321."""
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> Self:
        if self._server is not None:
            raise RuntimeError("server already started")
        # Binding here, not in uvicorn, makes the port known as soon as start() returns.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        # The graceful timeout is a safety net for requests still running at stop().
        config = uvicorn.Config(
            self.app,
            lifespan=self.lifespan,
            log_level="warning",
            ws=self.ws,
            timeout_graceful_shutdown=2,
        )
        self._server = _Server(config, ready := threading.Event())
        self._thread = threading.Thread(target=self._server.run, args=([sock],), daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not ready.wait(0.05):  # the thread dies if uvicorn fails to start
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server on port {self.port} failed to start")
        return self

    def stop(self, timeout: float = 10.0) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        # Wake handlers parked in sleep() (hangs, slow streams) so they don't hold shutdown up.
        if server.loop is not None and server.stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                server.loop.call_soon_threadsafe(server.stopping.set)
        server.should_exit = True
        thread.join(timeout)
        if thread.is_alive():
            server.force_exit = True
            thread.join(timeout)
        self._server = self._thread = None

    async def sleep(self, seconds: float | None) -> bool:
        """For handlers: sleep (None = forever), waking early if the server is stopping.
        Returns True if it is stopping."""
        stopping = self._server.stopping if self._server else None
        if stopping is None or seconds == 0:
            return stopping is None or stopping.is_set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), seconds)
        return stopping.is_set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()
