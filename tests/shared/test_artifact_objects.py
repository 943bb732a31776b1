"""The artifact store with ARTIFACT_STORE=s3: the bytes in a bucket (a local S3 server,
driven by boto3), the row in real Postgres saying whose they are."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.artifacts import ArtifactStore, ArtifactUnavailable
from shared.db.engine import create_engine
from shared.s3_objects import S3Objects
from tests.s3_support import REGION, s3_client, s3_server, use_test_credentials
from tests.support import free_port

BUCKET = "chatbot-artifacts"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    use_test_credentials(monkeypatch)
    with s3_server() as url:
        s3_client(url).create_bucket(Bucket=BUCKET)
        yield url


@pytest.fixture
async def engine(migrated_database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(migrated_database_url, pool_size=2, max_overflow=0)
    yield engine
    await engine.dispose()


async def a_session(engine: AsyncEngine, user: str) -> str:
    session = f"art-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO sessions (id, user_id, title) VALUES (:s, :u, 't')"),
            {"s": session, "u": user},
        )
    return session


def store(engine: AsyncEngine, endpoint: str) -> ArtifactStore:
    objects = S3Objects(BUCKET, endpoint_url=endpoint, region=REGION)
    return ArtifactStore(engine, max_bytes=10_000, objects=objects, prefix="files/")


async def put(files: ArtifactStore, session: str, data: bytes, **kw: Any) -> Any:
    return await files.put(
        key=kw.get("key", "turn-1:0"),
        session_id=session,
        user_id="ann",
        turn_id="turn-1",
        name="result.csv",
        media_type="text/csv",
        data=data,
    )


async def test_the_bytes_go_to_the_bucket_and_only_their_owner_reads_them(
    engine: AsyncEngine, endpoint: str
) -> None:
    files = store(engine, endpoint)
    session = await a_session(engine, "ann")
    ref = await put(files, session, b"a,b\n1,2\n")
    obj = s3_client(endpoint).get_object(Bucket=BUCKET, Key=f"files/{ref.id}")
    assert obj["Body"].read() == b"a,b\n1,2\n" and obj["ContentType"] == "text/csv"
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text("SELECT data, object_key FROM artifacts WHERE id = :i"),
                {"i": uuid.UUID(ref.id)},
            )
        ).one()
    assert row.data is None and row.object_key == f"files/{ref.id}"  # not in Postgres too

    found = await files.get(ref.id, user_id="ann")
    assert found is not None and found.data == b"a,b\n1,2\n" and found.name == "result.csv"
    assert await files.get(ref.id, user_id="bob") is None  # someone else's: no such file

    again = await put(files, session, b"a,b\n1,2\n3,4\n")  # a retried call: replaced
    assert again.id == ref.id and again.size_bytes == 12
    replaced = await files.get(ref.id, user_id="ann")
    assert replaced is not None and replaced.data.endswith(b"3,4\n")


async def test_an_object_gone_from_the_bucket_is_not_found_and_a_dead_bucket_says_so(
    engine: AsyncEngine, endpoint: str
) -> None:
    files = store(engine, endpoint)
    session = await a_session(engine, "ann")
    ref = await put(files, session, b"x")
    s3_client(endpoint).delete_object(Bucket=BUCKET, Key=f"files/{ref.id}")  # a lifecycle rule
    assert await files.get(ref.id, user_id="ann") is None

    dead = store(engine, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(ArtifactUnavailable, match=f"the artifact bucket {BUCKET} failed"):
        await put(dead, session, b"y", key="turn-1:1")
    async with engine.connect() as conn:  # no row names bytes that were never stored
        count = await conn.scalar(
            text("SELECT count(*) FROM artifacts WHERE session_id = :s"), {"s": session}
        )
    assert count == 1


async def test_forgetting_a_sessions_objects_deletes_them(
    engine: AsyncEngine, endpoint: str
) -> None:
    files = store(engine, endpoint)
    session = await a_session(engine, "ann")
    for i in range(3):
        await put(files, session, b"z", key=f"turn-1:{i}")
    keys = await files.object_keys(session_id=session, user_id="ann")
    assert len(keys) == 3 and await files.object_keys(session_id=session, user_id="bob") == ()
    await files.forget_objects(keys)
    listed = s3_client(endpoint).list_objects_v2(Bucket=BUCKET, Prefix="files/")
    assert listed.get("KeyCount") == 0
