"""ARTIFACT_STORE=s3 end to end: a query's files land in the bucket (a local S3 server),
their owner downloads them through the gateway, and deleting the session deletes its
objects. A bucket that fails is a 503 that says so."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from pydantic import HttpUrl
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.data_support import ask_tool, sql_reply, with_sample_data
from tests.s3_support import REGION, s3_client, s3_server, use_test_credentials
from tests.workflows.tool_support import answer

pytestmark = pytest.mark.timeout(120)
BUCKET = "turn-files"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    use_test_credentials(monkeypatch)
    with s3_server() as url:
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture
async def settings(settings: Settings, endpoint: str) -> Settings:
    return await with_sample_data(
        settings,
        artifact_store="s3",
        artifact_s3_bucket=BUCKET,
        artifact_s3_endpoint_url=HttpUrl(endpoint),
        artifact_s3_region=REGION,
    )


async def test_files_live_in_the_bucket_and_go_with_their_session(
    worker: Worker,
    alice: httpx.AsyncClient,
    bob: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    endpoint: str,
) -> None:
    sql = "SELECT status, count(*) AS orders FROM work_orders GROUP BY status ORDER BY status"
    llm.script(ask_tool("orders by status"), sql_reply(sql), answer("Here they are."))
    session = f"s3-{uuid.uuid4().hex[:8]}"
    resp = await alice.post(f"/sessions/{session}/messages", json={"text": "orders by status"})
    assert resp.status_code == 200, resp.text
    (ref,) = resp.json()["tool_results"][0]["artifacts"]
    bucket = s3_client(endpoint)
    keys = [o["Key"] for o in bucket.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == [f"artifacts/{ref['id']}"]

    got = await alice.get(f"/artifacts/{ref['id']}")
    assert got.status_code == 200 and got.text.startswith("status,orders\r\n")
    assert (await bob.get(f"/artifacts/{ref['id']}")).status_code == 404

    assert (await alice.delete(f"/sessions/{session}")).status_code == 204
    assert bucket.list_objects_v2(Bucket=BUCKET).get("KeyCount") == 0


async def test_a_bucket_that_fails_is_a_503_saying_so(
    worker: Worker, alice: httpx.AsyncClient, llm: FakeOpenAIServer, endpoint: str
) -> None:
    sql = "SELECT count(*) AS sites FROM sites"
    llm.script(ask_tool("how many sites"), sql_reply(sql), answer("Eight."))
    session = f"s3-{uuid.uuid4().hex[:8]}"
    resp = await alice.post(f"/sessions/{session}/messages", json={"text": "how many sites"})
    (ref,) = resp.json()["tool_results"][0]["artifacts"]
    bucket = s3_client(endpoint)
    for obj in bucket.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        bucket.delete_object(Bucket=BUCKET, Key=obj["Key"])
    bucket.delete_bucket(Bucket=BUCKET)  # gone (or misconfigured): every read fails
    got = await alice.get(f"/artifacts/{ref['id']}")
    assert got.status_code == 503, got.text
    error = got.json()["error"]
    assert error["code"] == "unavailable"
    assert f"the artifact bucket {BUCKET} failed" in error["message"]
