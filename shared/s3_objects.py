"""Artifacts' bytes in an S3-compatible bucket (ARTIFACT_STORE=s3), through boto3: AWS S3,
or MinIO, R2 and the like at ARTIFACT_S3_ENDPOINT_URL. boto3 blocks, so each call runs
in a thread; its retries are bounded and every call has a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from shared.artifacts import ArtifactUnavailable

try:
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError as err:  # pragma: no cover - the `s3` extra is not installed
    raise ImportError("ARTIFACT_STORE=s3 needs boto3: pip install 'temporal-chatbot[s3]'") from err

# Connect and read deadlines, and attempts in all (boto3's standard retry mode backs off).
CLIENT_CONFIG = Config(
    connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"}
)
MISSING = {"NoSuchKey", "404", "NotFound"}
T = TypeVar("T")


class S3Objects:
    def __init__(
        self, bucket: str, *, endpoint_url: str | None = None, region: str | None = None
    ) -> None:
        self.bucket = bucket
        self._client: Any = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region, config=CLIENT_CONFIG
        )

    async def put(self, key: str, data: bytes, media_type: str) -> None:
        await self._call(
            "put_object", Bucket=self.bucket, Key=key, Body=data, ContentType=media_type
        )

    async def get(self, key: str) -> bytes | None:
        def read() -> bytes | None:
            try:
                found = self._client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as err:
                if err.response.get("Error", {}).get("Code") in MISSING:
                    return None
                raise
            return bytes(found["Body"].read())

        return await self._guarded(read)

    async def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # the API's most per request
            batch = [{"Key": k} for k in keys[start : start + 1000]]
            await self._call("delete_objects", Bucket=self.bucket, Delete={"Objects": batch})

    async def _call(self, method: str, **kwargs: Any) -> Any:
        return await self._guarded(lambda: getattr(self._client, method)(**kwargs))

    async def _guarded(self, fn: Callable[[], T]) -> T:
        try:
            return await asyncio.to_thread(fn)
        except (BotoCoreError, ClientError) as err:
            raise ArtifactUnavailable(f"the artifact bucket {self.bucket} failed: {err}") from err
