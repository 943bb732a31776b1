"""The worker: builds the clients once, registers workflows and activities, runs until
SIGTERM/SIGINT, then shuts down gracefully (running activities get time to finish)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, NoReturn

from openai import AsyncOpenAI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from activities.company_search import CompanySearch
from activities.embeddings import build_embedder, embedder_name
from activities.intent import IntentActivities, build_router
from activities.llm import LlmActivities, build_openai_client
from activities.memory import MemoryActivities
from activities.sessions import SessionStore
from activities.sql.tool import DataTool
from activities.streams import StreamActivities
from activities.tools.builtin import builtin_tools
from activities.tools.registry import ToolRegistry
from activities.tools.runner import ToolActivities
from activities.web_search import WebSearch
from shared.artifacts import artifact_store_from_settings
from shared.breaker import breakers
from shared.build import build_id
from shared.config import Settings, get_settings
from shared.db.engine import data_engine_from_settings, engine_from_settings
from shared.logging import configure_logging
from shared.redis import redis_from_settings
from shared.response_cache import ResponseCache
from shared.streams import TurnStreams
from shared.temporal_client import (
    SearchAttributesMissing,
    TemporalConnectError,
    connect_temporal,
    ensure_search_attributes,
)
from shared.tracing import configure_tracing
from shared.usage import ledger_from_settings
from workers import versioning
from workers.versioning import deployment_config
from workflows.chat_session import ChatSessionWorkflow

log = logging.getLogger(__name__)

# A generation in flight gets this long to finish before the worker exits; past it the
# activity is cancelled and Temporal retries it on another worker.
GRACEFUL_SHUTDOWN = timedelta(seconds=30)


def build_worker(
    client: Client,
    settings: Settings,
    *,
    redis: Redis,
    engine: AsyncEngine,
    llm_client: AsyncOpenAI,
    task_queue: str | None = None,
    data_engine: AsyncEngine | None = None,
) -> Worker:
    """`data_engine`: the query_data tool's database (None: the tool is not offered)."""
    guards = breakers(redis, settings)  # per provider, shared by all workers through Redis
    embedder = build_embedder(llm_client, settings, guards["embeddings"])
    companies = CompanySearch(
        settings=settings, engine=engine, embedder=embedder, breaker=guards["databricks"]
    )
    ledger = ledger_from_settings(engine, settings)
    web = WebSearch(llm_client, settings, guards["web_search"], ledger)
    data = (
        DataTool(
            llm_client,
            data_engine,
            artifact_store_from_settings(engine, settings),
            settings,
            breaker=guards["llm"],
            ledger=ledger,
        )
        if data_engine is not None
        else None
    )
    registry = ToolRegistry(
        builtin_tools(
            companies=companies, web=web, engine=engine, enabled=set(settings.tools), data=data
        ),
        mcp_servers=settings.mcp_servers,
        auto_approve=settings.tools_auto_approve,
        mcp_refresh_seconds=settings.mcp_refresh_seconds,
    )
    registry.start_listing()
    cache = ResponseCache(redis, settings.cache_config, embedder, embedder_name(settings) or "")
    llm = LlmActivities(llm_client, redis, settings, registry, ledger, guards["llm"], cache)
    tools = ToolActivities(registry)
    memory = MemoryActivities(
        llm_client, engine, embedder, settings, breaker=guards["llm"], ledger=ledger
    )
    store = SessionStore(engine, TurnStreams(redis), ledger, settings.tool_prices)
    streams = StreamActivities(redis)
    router = build_router(
        settings, llm_client if settings.intent_llm_fallback else None, breaker=guards["llm"]
    )
    router.warm()  # load the classifier now, not inside the first turn's local activity
    if embedder is not None:
        embedder.load()  # likewise the local embedding model (~0.3 s)
    llm.warm()
    # With a tool-calling model the model decides to query; without, nothing can answer.
    unanswerable = data if not settings.tool_calling_enabled else None
    intent = IntentActivities(router, ledger, unanswerable_data=unanswerable)
    return Worker(
        client,
        task_queue=task_queue or settings.temporal_task_queue,
        workflows=[ChatSessionWorkflow],
        activities=[
            intent.detect_intent,
            llm.generate_reply,
            llm.model_step,
            tools.tool_catalog,
            tools.call_tool,
            companies.search_companies,
            web.search_web,
            memory.summarize,
            memory.retrieve_context,
            store.load_session,
            store.persist_turn,
            store.mark_idle,
            store.mark_ended,
            store.record_handoff,
            store.persist_agent_turn,
            store.persist_version,
            store.select_version,
            streams.publish_turn_event,
            streams.publish_feed_event,
            streams.request_cancel,
        ],
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_concurrent_local_activities=settings.max_concurrent_activity_tasks,
        max_cached_workflows=settings.max_cached_workflows,
        identity=f"chatbot-worker@{socket.gethostname()}:{os.getpid()}",
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        deployment_config=deployment_config(settings),
        workflow_runner=(
            SandboxedWorkflowRunner() if settings.workflow_sandbox else UnsandboxedWorkflowRunner()
        ),
    )


def build_runtime(settings: Settings) -> Runtime | None:
    """A Temporal runtime exposing the SDK's worker metrics to Prometheus, when asked."""
    if settings.worker_metrics_port is None:
        return None
    address = f"0.0.0.0:{settings.worker_metrics_port}"
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))


async def wait_for_database(engine: AsyncEngine, settings: Settings) -> None:
    """Neon scales to zero and containers start in any order: retry with backoff."""
    async for attempt in AsyncRetrying(
        stop=stop_after_delay(settings.startup_retry_seconds),
        wait=wait_exponential(multiplier=0.2, max=5),
        retry=retry_if_exception_type((OSError, SQLAlchemyError)),
        reraise=True,
    ):
        with attempt:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))


async def run_worker(settings: Settings, stop: asyncio.Event, *, promote: bool = False) -> None:
    configure_tracing(settings, "worker")
    client = await connect_temporal(settings, runtime=build_runtime(settings), retry=True)
    await ensure_search_attributes(client)
    redis = redis_from_settings(settings)
    engine = engine_from_settings(settings)
    await wait_for_database(engine, settings)
    llm_client = build_openai_client(settings)
    data_engine = data_engine_from_settings(settings)
    worker = build_worker(
        client, settings, redis=redis, engine=engine, llm_client=llm_client, data_engine=data_engine
    )
    build = build_id(settings)
    log.info(
        "worker started",
        extra={
            "task_queue": settings.temporal_task_queue,
            "deployment": settings.worker_deployment_name,
            "build_id": build,
        },
    )
    try:
        async with worker:
            # The deployment's first build serves at once; a later one when promoted.
            current = await versioning.promote(client, settings, only_if_none=not promote)
            if current == build:
                log.info("this build is the current version", extra={"build_id": build})
            else:
                log.warning(
                    "this build is not the current version: sessions start on %s until "
                    "`chatbot worker --promote` runs with this build",
                    current,
                    extra={"build_id": build},
                )
            await stop.wait()
    finally:
        await llm_client.close()
        await redis.aclose()
        await engine.dispose()
        if data_engine is not None:
            await data_engine.dispose()
    log.info("worker stopped")


def run_loop(main: Coroutine[Any, Any, None]) -> None:
    """uvloop where it is installed (uvicorn[standard] brings it on Linux and macOS): the
    worker spends much of its CPU in the event loop's socket handling."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def run_worker_until_signalled(settings: Settings, *, promote: bool = False) -> NoReturn:
    configure_logging(settings.log_level, settings.pii_in_logs)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_worker(settings, stop, promote=promote)

    code = 0
    try:
        run_loop(main())
    except (TemporalConnectError, SearchAttributesMissing, versioning.PromoteError) as err:
        log.error("worker cannot start: %s", err)
        code = 1
    except (OSError, SQLAlchemyError) as err:
        log.error("worker cannot reach Postgres (DATABASE_URL): %s", err)
        code = 1
    # Leave without interpreter teardown: the Temporal runtime's native threads can abort
    # a finalizing interpreter (temporalio/sdk-python#300), turning the exit code into
    # SIGABRT. Everything is closed and the logs are flushed by now.
    logging.shutdown()
    os._exit(code)


def main() -> None:
    run_worker_until_signalled(get_settings())
