"""Files a turn produced (a query's full result as CSV, its chart as PNG), kept in
Postgres beside the session that owns them, up to ARTIFACT_MAX_BYTES each. Only the
session's user reads them: anyone else is told they do not exist."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

ARTIFACT_NAMESPACE = uuid.UUID("6f1f6c1e-5d7b-4a53-9f5e-3c2b8a4d7e10")


class ArtifactTooLarge(ValueError):
    """Over ARTIFACT_MAX_BYTES."""


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
    def __init__(self, engine: AsyncEngine, *, max_bytes: int) -> None:
        self._engine = engine
        self.max_bytes = max_bytes

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
        async with self._engine.begin() as conn:
            row = (
                (
                    await conn.execute(
                        text(
                            f"INSERT INTO artifacts ({_COLUMNS}, user_id, data) "
                            "VALUES (:id, :s, :t, :n, :m, :size, now(), :u, :d) "
                            "ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, "
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
                            "d": data,
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
                            f"SELECT {_COLUMNS}, data FROM artifacts "
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
        return Artifact.model_validate({**row, "id": str(row["id"]), "data": bytes(row["data"])})
