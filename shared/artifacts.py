"""Files a turn produced (a query's full result as CSV, its chart as PNG), up to
ARTIFACT_MAX_BYTES each. A row in Postgres beside the session says who owns each; the
bytes are in that row or, with ARTIFACT_STORE=s3, in an S3-compatible bucket
(`s3_objects.py`). Only the session's user reads them: anyone else is told they do not
exist."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from shared.config import Settings

ARTIFACT_NAMESPACE = uuid.UUID("6f1f6c1e-5d7b-4a53-9f5e-3c2b8a4d7e10")


class ArtifactTooLarge(ValueError):
    """Over ARTIFACT_MAX_BYTES."""


class ArtifactUnavailable(Exception):
    """The bucket holding the bytes could not be reached or refused; try again later."""


class ObjectStore(Protocol):
    """Where the bytes go when they are not in Postgres."""

    async def put(self, key: str, data: bytes, media_type: str) -> None: ...

    async def get(self, key: str) -> bytes | None: ...  # None: no such object

    async def delete(self, keys: list[str]) -> None: ...


class ArtifactRef(BaseModel):
    """An artifact as listed and as a tool's result names it (the bytes apart)."""

    id: str
    session_id: str
    turn_id: str
    name: str
    media_type: str
    size_bytes: int
    created_at: datetime | None = None

    @property
    def download_path(self) -> str:
        return f"/v1/artifacts/{self.id}"


class Artifact(ArtifactRef):
    data: bytes


def artifact_id(key: str, name: str) -> str:
    """The artifact's id from the call that made it: a retried call writes the same row."""
    return str(uuid.uuid5(ARTIFACT_NAMESPACE, f"{key}\x00{name}"))


_COLUMNS = "id, session_id, turn_id, name, media_type, size_bytes, created_at"


class ArtifactStore:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_bytes: int,
        objects: ObjectStore | None = None,
        prefix: str = "",
    ) -> None:
        """`objects`: where the bytes go (None: in the row); `prefix`: their keys' start."""
        self._engine = engine
        self.max_bytes = max_bytes
        self._objects = objects
        self._prefix = prefix

    async def put(
        self,
        *,
        key: str,
        session_id: str,
        user_id: str,
        turn_id: str,
        name: str,
        media_type: str,
        data: bytes,
    ) -> ArtifactRef:
        """Store it under `key` (the tool call's idempotency key) and its name; the same
        key and name again replaces it."""
        if len(data) > self.max_bytes:
            raise ArtifactTooLarge(
                f"{name} is {len(data)} bytes, over the {self.max_bytes} allowed"
            )
        row_id = artifact_id(key, name)
        object_key = None
        if self._objects is not None:
            # The object first: a row is never listed whose bytes are not there yet.
            object_key = f"{self._prefix}{row_id}"
            await self._objects.put(object_key, data, media_type)
        async with self._engine.begin() as conn:
            row = (
                (
                    await conn.execute(
                        text(
                            f"INSERT INTO artifacts ({_COLUMNS}, user_id, data, object_key) "
                            "VALUES (:id, :s, :t, :n, :m, :size, now(), :u, :d, :k) "
                            "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, "
                            "object_key = EXCLUDED.object_key, "
                            "size_bytes = EXCLUDED.size_bytes RETURNING " + _COLUMNS
                        ),
                        {
                            "id": uuid.UUID(row_id),
                            "s": session_id,
                            "t": turn_id,
                            "n": name,
                            "m": media_type,
                            "size": len(data),
                            "u": user_id,
                            "d": None if object_key else data,
                            "k": object_key,
                        },
                    )
                )
                .mappings()
                .one()
            )
        return ArtifactRef.model_validate({**row, "id": str(row["id"])})

    async def list(self, *, session_id: str, user_id: str) -> list[ArtifactRef]:
        async with self._engine.connect() as conn:
            rows = (
                (
                    await conn.execute(
                        text(
                            f"SELECT {_COLUMNS} FROM artifacts WHERE session_id = :s "
                            "AND user_id = :u ORDER BY created_at, name"
                        ),
                        {"s": session_id, "u": user_id},
                    )
                )
                .mappings()
                .all()
            )
        return [ArtifactRef.model_validate({**r, "id": str(r["id"])}) for r in rows]

    async def get(self, artifact: str, *, user_id: str) -> Artifact | None:
        """The artifact with its bytes, or None: unknown, or someone else's."""
        try:
            key = uuid.UUID(artifact)
        except ValueError:
            return None
        async with self._engine.connect() as conn:
            row = (
                (
                    await conn.execute(
                        text(
                            f"SELECT {_COLUMNS}, data, object_key FROM artifacts "
                            "WHERE id = :id AND user_id = :u"
                        ),
                        {"id": key, "u": user_id},
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return None
        data = row["data"]
        if row["object_key"] is not None:
            if self._objects is None:
                raise ArtifactUnavailable(
                    f"artifact {artifact} is in a bucket and ARTIFACT_STORE is not s3 here"
                )
            data = await self._objects.get(row["object_key"])
            if data is None:
                return None  # removed from the bucket (a lifecycle rule): gone
        fields = {k: v for k, v in row.items() if k not in ("data", "object_key")}
        return Artifact.model_validate({**fields, "id": str(row["id"]), "data": bytes(data)})

    async def forget_objects(self, keys: Sequence[str]) -> None:
        """Delete the bucket objects of rows already deleted (a session's, with it)."""
        if self._objects is not None and keys:
            await self._objects.delete(list(keys))

    async def object_keys(self, *, session_id: str, user_id: str) -> tuple[str, ...]:
        async with self._engine.connect() as conn:
            found = await conn.execute(
                text(
                    "SELECT object_key FROM artifacts WHERE session_id = :s AND user_id = :u "
                    "AND object_key IS NOT NULL"
                ),
                {"s": session_id, "u": user_id},
            )
            return tuple(k for (k,) in found)


def artifact_store_from_settings(engine: AsyncEngine, settings: Settings) -> ArtifactStore:
    if settings.artifact_store != "s3":
        return ArtifactStore(engine, max_bytes=settings.artifact_max_bytes)
    from shared.s3_objects import S3Objects  # boto3 is the `s3` extra's

    assert settings.artifact_s3_bucket is not None  # checked with the settings
    objects = S3Objects(
        settings.artifact_s3_bucket,
        endpoint_url=str(settings.artifact_s3_endpoint_url or "") or None,
        region=settings.artifact_s3_region,
    )
    return ArtifactStore(
        engine,
        max_bytes=settings.artifact_max_bytes,
        objects=objects,
        prefix=settings.artifact_s3_prefix,
    )
