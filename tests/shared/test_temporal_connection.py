"""Temporal Cloud's connection path (API key over TLS) against a TLS-terminating proxy in
front of the dev server, and the errors a misconfiguration gives."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from temporalio.client import WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from activities.llm import build_openai_client
from shared.config import Settings
from shared.db.engine import engine_from_settings
from shared.models import SendMessage, SessionStart, workflow_id
from shared.redis import redis_from_settings
from shared.temporal_client import TemporalConnectError, connect_temporal
from tests.support import free_port
from tests.tls_proxy import TlsProxy, write_test_pki
from workers import versioning
from workers.main import build_worker
from workflows.chat_session import ChatSessionWorkflow


@pytest.fixture
async def proxy(temporal_address: str, tmp_path: Path) -> AsyncIterator[TlsProxy]:
    _, cert, key = write_test_pki(tmp_path)
    server = await TlsProxy(temporal_address, cert, key).start()
    yield server
    await server.stop()


def _cloud(settings: Settings, proxy: TlsProxy, tmp_path: Path, **changes: object) -> Settings:
    values: dict[str, object] = {
        "temporal_cloud_address": proxy.address,
        "temporal_cloud_namespace": "default",
        "temporal_cloud_api_key": SecretStr("tk-test-api-key"),
        "temporal_tls_ca_path": tmp_path / "ca.crt",
        "startup_retry_seconds": 0,
    }
    values.update(changes)
    return settings.model_copy(update=values)


async def test_worker_runs_a_turn_over_tls_with_an_api_key(
    settings: Settings, proxy: TlsProxy, tmp_path: Path
) -> None:
    cloud = _cloud(settings, proxy, tmp_path)
    client = await connect_temporal(cloud, retry=True)
    redis, engine, llm = (
        redis_from_settings(cloud),
        engine_from_settings(cloud),
        build_openai_client(cloud),
    )
    sid = f"tls-{uuid.uuid4().hex[:6]}"
    try:
        async with build_worker(client, cloud, redis=redis, engine=engine, llm_client=llm):
            # The deployment APIs go through the TLS proxy too.
            await versioning.promote(client, cloud, only_if_none=True)
            async with engine.begin() as conn:
                await conn.execute(
                    text("INSERT INTO sessions (id, user_id) VALUES (:i, 'u')"), {"i": sid}
                )
            result = await client.execute_update_with_start_workflow(
                ChatSessionWorkflow.send_message,
                SendMessage(text="over TLS"),
                start_workflow_operation=WithStartWorkflowOperation(
                    ChatSessionWorkflow.run,
                    SessionStart(session_id=sid, user_id="u"),
                    id=workflow_id(sid),
                    task_queue=cloud.temporal_task_queue,
                    id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                ),
            )
    finally:
        await llm.close()
        await redis.aclose()
        await engine.dispose()
    assert result.reply == "Fake reply to: over TLS"
    # Every call through the proxy carried the API key as a bearer token.
    assert proxy.headers, "the proxy decoded no request headers"
    assert {h.get("authorization") for h in proxy.headers} == {"Bearer tk-test-api-key"}
    assert any(h[":path"].endswith("/PollWorkflowTaskQueue") for h in proxy.headers)


async def test_an_untrusted_certificate_is_a_clear_error(
    settings: Settings, proxy: TlsProxy, tmp_path: Path
) -> None:
    other_ca, _, _ = write_test_pki(tmp_path / "other")
    cloud = _cloud(settings, proxy, tmp_path, temporal_tls_ca_path=other_ca)
    with pytest.raises(TemporalConnectError) as info:
        await connect_temporal(cloud)
    message = str(info.value)
    assert f"cannot connect to Temporal at {proxy.address}" in message
    assert "TLS on, API key" in message and "TEMPORAL_TLS_CA_PATH" in message


async def test_a_wrong_namespace_is_a_clear_error(
    settings: Settings, proxy: TlsProxy, tmp_path: Path
) -> None:
    cloud = _cloud(settings, proxy, tmp_path, temporal_cloud_namespace="nope.acct")
    with pytest.raises(TemporalConnectError, match=r"namespace 'nope\.acct' does not exist"):
        await connect_temporal(cloud)


async def test_plain_text_to_a_tls_port_and_nothing_listening_are_clear_errors(
    settings: Settings, proxy: TlsProxy
) -> None:
    plain = settings.model_copy(update={"temporal_address": proxy.address})
    with pytest.raises(TemporalConnectError, match="TLS off"):
        await connect_temporal(plain)
    nowhere = settings.model_copy(update={"temporal_address": f"127.0.0.1:{free_port()}"})
    with pytest.raises(TemporalConnectError, match="cannot connect to Temporal"):
        await connect_temporal(nowhere)
