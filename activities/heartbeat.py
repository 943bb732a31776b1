"""Heartbeats while an activity works, so a worker that dies is noticed within the
activity's heartbeat timeout rather than its whole start-to-close timeout."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from temporalio import activity

# Well inside the workflow's heartbeat timeouts (10 s); more often only costs CPU.
HEARTBEAT_SECONDS = 1.0


async def _beat(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        activity.heartbeat()


@contextlib.asynccontextmanager
async def heartbeating(seconds: float = HEARTBEAT_SECONDS) -> AsyncIterator[None]:
    """Beats every `seconds` while the block runs; a block shorter than that sends none."""
    task = asyncio.create_task(_beat(seconds))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
