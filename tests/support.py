"""Helpers for tests: free ports and waiting on conditions with a deadline (never sleeps
as synchronisation)."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from shared.config import Settings

T = TypeVar("T")


def own_stack_env() -> dict[str, str]:
    """This environment without what points at services or settings: for a command that
    starts its whole stack itself (`chatbot bench`, `chatbot chaos`)."""
    own = ("OPENAI_", "DATABASE_", "REDIS_", "TEMPORAL_", "CHATBOT_")
    return {k: v for k, v in os.environ.items() if not k.startswith(own)}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def assert_eventually(
    check: Callable[[], Awaitable[T]], *, within: float = 10.0, interval: float = 0.05
) -> T:
    """Call `check` until it returns without AssertionError, or re-raise its last failure."""
    deadline = time.monotonic() + within
    while True:
        try:
            return await check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(interval)


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def worker_env(settings: Settings, **extra: str) -> dict[str, str]:
    """The environment a `chatbot worker` process needs to join a test's stack."""
    assert settings.database_url is not None and settings.redis_url is not None
    return {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "WORKER_DEPLOYMENT_NAME": settings.worker_deployment_name,
        "DATABASE_URL": settings.database_url.get_secret_value(),
        "REDIS_URL": settings.redis_url.get_secret_value(),
        "OPENAI_BASE_URL": settings.openai_base_url or "",
        "OPENAI_API_KEY": "test-key",
        **extra,
    }


async def worker_process(settings: Settings, log: Path) -> asyncio.subprocess.Process:
    """A `python -m workers` child on the test's stack (to SIGKILL), logging to `log`."""
    with log.open("ab") as out:  # the child keeps its own copy of the descriptor
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "workers",
            env=worker_env(settings),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
