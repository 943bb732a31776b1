"""Session-wide real dependencies: a Temporal dev server, Postgres and Redis.

Postgres and Redis come from DATABASE_URL / REDIS_URL when set (CI points them at the
machine's services), else from the embedded servers of the `local` extra, so both paths
run. Each test that needs a database gets a fresh one, migrated by our own Alembic code."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import httpx
import pytest
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from activities.llm import build_openai_client
from chatbot.app import create_app
from chatbot.embedded import redis as embedded_redis
from chatbot.embedded import temporal as embedded_temporal
from chatbot.embedded.postgres import EmbeddedPostgres
from chatbot.embedded.process import EmbeddedError
from loadtest.fakes import FakeOpenAIServer, ServerThread
from shared.config import Settings, get_settings, load_settings
from shared.db import migrate
from shared.db.engine import create_engine, data_engine_from_settings, engine_from_settings
from shared.redis import redis_from_settings
from shared.temporal_client import connect_temporal
from tests.chatbot.api_support import auth
from tests.support import free_port
from workers import versioning
from workers.main import build_worker

_EXTERNAL_DATABASE_URL = os.environ.pop("DATABASE_URL", None)
_EXTERNAL_REDIS_URL = os.environ.pop("REDIS_URL", None)
REDIS_CLAIM = "chatbot-tests:run"  # held by a test run in the database it uses
REDIS_CLAIM_SECONDS = 3 * 3600


def _claim_redis_database(base: str) -> tuple[str, SyncRedis]:
    """A database of the machine's Redis for this run alone (1-15, not the one REDIS_URL
    names), emptied first: keys an earlier run left (turn streams under the same
    deterministic turn ids, with their final events) must not answer for this run's
    turns, and two runs at once must not share one."""
    for db in range(1, 16):
        url = urlsplit(base)._replace(path=f"/{db}").geturl()
        client = SyncRedis.from_url(url)
        if client.set(REDIS_CLAIM, os.getpid(), nx=True, ex=REDIS_CLAIM_SECONDS):
            client.flushdb()
            client.set(REDIS_CLAIM, os.getpid(), ex=REDIS_CLAIM_SECONDS)
            return url, client
        client.close()
    raise RuntimeError("every Redis database 1-15 is held by a test run")


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings are cached per process; every test starts from the environment it sets."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


MAX_DEPLOYMENTS = 5000


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("temporal")
    # A port found free can be taken before the server binds it (other tests' servers pick
    # ports too): start again on another one rather than fail the whole session.
    for attempt in range(3):
        port = free_port()
        argv = embedded_temporal.dev_server_argv(
            port=port, db_file=None, namespace="default", ui_port=None
        )
        # Each test's worker is a deployment of its own; the server allows 100 per
        # namespace by default, fewer than the suite's tests with a worker.
        argv += ["--dynamic-config-value", f"matching.maxDeployments={MAX_DEPLOYMENTS}"]
        proc = embedded_temporal.dev_server_process(
            argv, port=port, log_path=logs / f"temporal-{attempt}.log"
        )
        proc.start()
        try:
            proc.wait_ready()
        except EmbeddedError:
            proc.stop()
            if attempt == 2:
                raise
            continue
        break
    yield f"127.0.0.1:{port}"
    proc.stop()


@pytest.fixture(scope="session")
def embedded_postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """pgserver's Postgres 16 with pgvector: always embedded, for the vector paths."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    url = server.start()
    yield url
    server.stop()


@pytest.fixture(scope="session")
def postgres_server_url(request: pytest.FixtureRequest) -> str:
    if _EXTERNAL_DATABASE_URL:
        return _EXTERNAL_DATABASE_URL
    return str(request.getfixturevalue("embedded_postgres_url"))


async def _fresh_database(server_url: str) -> AsyncIterator[str]:
    url = make_url(server_url)
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(server_url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield url.set(database=name).render_as_string(hide_password=False)
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def _asyncpg_dsn(server_url: str) -> str:
    return make_url(server_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture
async def database_url(postgres_server_url: str) -> AsyncIterator[str]:
    """A new, empty database on the session's Postgres, dropped after the test."""
    async for url in _fresh_database(postgres_server_url):
        yield url


@pytest.fixture
async def vector_database_url(embedded_postgres_url: str) -> AsyncIterator[str]:
    async for url in _fresh_database(embedded_postgres_url):
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if _EXTERNAL_REDIS_URL:
        url, client = _claim_redis_database(_EXTERNAL_REDIS_URL)
        yield url
        client.flushdb()
        client.close()
        return
    port = free_port()
    data: Path = tmp_path_factory.mktemp("redis")
    proc = embedded_redis.redis_process(port=port, data_dir=data, log_path=data / "redis.log")
    proc.start()
    proc.wait_ready()
    yield f"redis://127.0.0.1:{port}/0"
    proc.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer(api_key="test-key").start()
    yield server
    server.stop()


@pytest.fixture
def llm(fake_llm: FakeOpenAIServer) -> Iterator[FakeOpenAIServer]:
    """The session's fake OpenAI server, with no script, requests or slowness left over."""
    fake_llm.reset()
    fake_llm.latency_ms, fake_llm.tokens_per_second = 0, 0
    yield fake_llm
    fake_llm.reset()


@pytest.fixture
async def migrated_database_url(database_url: str) -> str:
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    await migrate.upgrade(engine)
    await engine.dispose()
    return database_url


@pytest.fixture
def settings(
    request: pytest.FixtureRequest,
    temporal_address: str,
    migrated_database_url: str,
    redis_url: str,
    llm: FakeOpenAIServer,
) -> Settings:
    """Settings for one test: real Temporal/Postgres/Redis, the fake LLM, a fresh task queue.
    Embeddings come from the fake too (scriptable, recorded), unless the test is marked
    `@pytest.mark.embedder("local")` to run the local model."""
    marker = request.node.get_closest_marker("embedder")
    queue = f"tq-{uuid.uuid4().hex[:10]}"
    return load_settings(
        embedder=marker.args[0] if marker else "openai",
        temporal_address=temporal_address,
        database_url=migrated_database_url,
        redis_url=redis_url,
        openai_base_url=llm.url,
        openai_api_key="test-key",
        temporal_task_queue=queue,
        # A deployment of its own: the test's first worker build becomes its current one.
        worker_deployment_name=f"chatbot-{queue}",
        jwt_secret="test-secret-" + "x" * 32,
        rate_limit_per_minute=1000,
        # Scripted fake replies are for generate_reply; the router's LLM layer has its own
        # tests (tests/activities), so turns here route offline.
        intent_llm_fallback=False,
        # The router's path, as with the local model; tool-calling turns have their tests.
        tool_calling="off",
        # Workflow code runs in the SDK's sandbox here (off where it ships, for CPU): any
        # non-deterministic call on a path the suite takes fails its test.
        workflow_sandbox=True,
    )


@pytest.fixture
async def temporal_client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address, data_converter=pydantic_data_converter)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    """A real worker, built by the worker's own code, on the test's task queue."""
    temporal = await connect_temporal(settings)
    redis_client = redis_from_settings(settings)
    engine = engine_from_settings(settings)
    llm_client = build_openai_client(settings)
    data_engine = data_engine_from_settings(settings)
    w = build_worker(
        temporal,
        settings,
        redis=redis_client,
        engine=engine,
        llm_client=llm_client,
        data_engine=data_engine,
    )
    async with w:
        await versioning.promote(temporal, settings, only_if_none=True)  # as `chatbot worker`
        yield w
    await llm_client.close()
    await redis_client.aclose()
    await engine.dispose()
    if data_engine is not None:
        await data_engine.dispose()


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The test's database, to check what a request stored."""
    assert settings.database_url is not None
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=2, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture
def gateway(settings: Settings) -> Iterator[str]:
    """The real gateway app on a real port (streaming and WebSockets need a server)."""
    server = ServerThread(create_app(settings), lifespan="on", ws="auto").start()
    yield server.url
    server.stop()


@pytest.fixture
async def alice(gateway: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, "alice"), timeout=60
    ) as client:
        yield client


@pytest.fixture
async def bob(gateway: str, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=f"{gateway}/v1", headers=auth(settings, "bob"), timeout=60
    ) as client:
        yield client
