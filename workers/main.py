"""The worker: builds the clients once, registers workflows and activities, runs until
SIGTERM/SIGINT, then shuts down gracefully (running activities are allowed to finish)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from datetime import timedelta

from temporalio.worker import Worker

from activities.llm import LlmActivities, build_openai_client
from shared.config import Settings, get_settings
from shared.logging import configure_logging
from shared.redis import redis_from_settings
from shared.temporal_client import connect_temporal
from workflows.chat_session import ChatSessionWorkflow

log = logging.getLogger(__name__)

# A generation in flight gets this long to finish before the worker exits; past it the
# activity is cancelled and Temporal retries it on another worker.
GRACEFUL_SHUTDOWN = timedelta(seconds=30)


async def run_worker(settings: Settings, stop: asyncio.Event) -> None:
    client = await connect_temporal(settings)
    redis = redis_from_settings(settings)
    llm = LlmActivities(build_openai_client(settings), redis, settings)
    worker = Worker(
        client,
        task_queue=settings.temporal_task_queue,
        workflows=[ChatSessionWorkflow],
        activities=[llm.generate_reply],
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        identity=f"chatbot-worker@{socket.gethostname()}:{os.getpid()}",
        max_concurrent_local_activities=settings.max_concurrent_activity_tasks,
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
    )
    log.info("worker started", extra={"task_queue": settings.temporal_task_queue})
    async with worker:
        await stop.wait()
    await redis.aclose()
    log.info("worker stopped")


def run_worker_until_signalled(settings: Settings) -> int:
    configure_logging(settings.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop)

    asyncio.run(main())
    return 0


def main() -> None:
    raise SystemExit(run_worker_until_signalled(get_settings()))
