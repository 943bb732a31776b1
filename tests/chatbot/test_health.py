from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from chatbot.app import create_app
from shared.config import load_settings
from shared.db import migrate
from tests.chatbot.api_support import auth
from tests.support import free_port


async def _client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            yield client


async def test_health_and_ready_report_each_dependency(
    temporal_address: str, migrated_database_url: str, redis_url: str
) -> None:
    settings = load_settings(
        temporal_address=temporal_address,
        database_url=migrated_database_url,
        redis_url=redis_url,
    )
    async for client in _client(create_app(settings)):
        health = (await client.get("/health")).json()
        deps = health["dependencies"]
        assert deps["temporal"]["status"] == "ok"
        assert deps["postgres"] == {
            "status": "ok",
            "latency_ms": deps["postgres"]["latency_ms"],
            "detail": f"schema {migrate.head_revision()}",
        }
        assert deps["redis"]["status"] == "ok"
        assert deps["llm"]["status"] == "not_configured"
        # Issue 16: which embedder search and memory use, said plainly.
        assert deps["embeddings"] == {"status": "ok", "detail": "local:all-MiniLM-L6-v2-int8"}
        assert health["status"] == "ok"
        assert (await client.get("/ready")).status_code == 200
    off = load_settings(
        temporal_address=temporal_address,
        database_url=migrated_database_url,
        redis_url=redis_url,
        embedder="none",
    )
    async for client in _client(create_app(off)):
        deps = (await client.get("/health")).json()["dependencies"]
        assert deps["embeddings"]["status"] == "not_configured"
        assert "full text only" in deps["embeddings"]["detail"]


async def test_a_down_dependency_is_named_and_ready_fails(
    temporal_address: str, database_url: str, redis_url: str
) -> None:
    settings = load_settings(
        temporal_address=temporal_address,
        database_url=database_url,  # not migrated
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    )
    async for client in _client(create_app(settings)):
        resp = await client.get("/health")
        assert resp.status_code == 200  # liveness: the process itself is fine
        body = resp.json()
        assert body["status"] == "degraded"
        assert body["dependencies"]["redis"]["status"] == "down"
        assert "run `chatbot db upgrade`" in body["dependencies"]["postgres"]["detail"]
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["dependencies"]["temporal"]["status"] == "ok"


async def test_pool_exhaustion_is_503_with_retry_after_not_a_hang(
    temporal_address: str, migrated_database_url: str, redis_url: str
) -> None:
    settings = load_settings(
        temporal_address=temporal_address,
        database_url=migrated_database_url,
        redis_url=redis_url,
        db_pool_size=1,
        db_max_overflow=0,
        db_pool_timeout_seconds=0.3,
    )
    app = create_app(settings)
    async for client in _client(app):
        held = await app.state.resources.engine.connect()  # the pool's only connection
        try:
            resp = await client.get("/v1/sessions")
        finally:
            await held.close()
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "2"
        assert resp.json()["error"]["message"] == "the service is at capacity; retry shortly"
        assert (await client.get("/v1/sessions")).status_code == 200  # and it recovers


async def test_unreachable_database_is_503(temporal_address: str, redis_url: str) -> None:
    settings = load_settings(
        temporal_address=temporal_address,
        database_url=f"postgresql://u@127.0.0.1:{free_port()}/db",
        redis_url=redis_url,
    )
    async for client in _client(create_app(settings)):
        resp = await client.get("/v1/sessions")
        assert resp.status_code == 503
        assert "unreachable" in resp.json()["error"]["message"]
        assert int(resp.headers["retry-after"]) >= 1


async def test_anonymous_callers_get_states_and_latencies_only(
    temporal_address: str, database_url: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """With JWT_SECRET set, /health and /ready show no URLs or exception text to callers
    without a valid token (the log has the detail); a valid token gets the details."""
    settings = load_settings(
        temporal_address=temporal_address,
        database_url=database_url,  # not migrated: postgres is down with a reason
        redis_url=redis_url,
        openai_base_url=f"http://127.0.0.1:{free_port()}/v1",  # nothing listens there
        jwt_secret="health-secret-" + "x" * 32,
    )
    async for client in _client(create_app(settings)):
        for path in ("/health", "/ready"):
            for headers in ({}, {"Authorization": "Bearer forged"}):
                body = (await client.get(path, headers=headers)).json()
                assert body["status"] == "degraded"
                for name, dep in body["dependencies"].items():
                    assert set(dep) <= {"status", "latency_ms"}, (name, dep)
                assert body["dependencies"]["postgres"]["status"] == "down"
                assert body["dependencies"]["llm"]["status"] == "down"
                assert "127.0.0.1" not in str(body)
        assert "run `chatbot db upgrade`" in caplog.text
        token = auth(settings, "operator")
        deps = (await client.get("/health", headers=token)).json()["dependencies"]
        assert "run `chatbot db upgrade`" in deps["postgres"]["detail"]
        assert deps["temporal"]["detail"] == "namespace default"
