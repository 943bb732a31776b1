"""Branches in Postgres: a session made from an earlier point of another, holding a copy
of the turns before that point and nothing after it (no later message, summary or
memory), linked both ways (`parent_session_id`, `branched_at_turn`)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatbot.errors import Conflict, NotFound
from chatbot.repository import MAY_CREATE, SESSION_COLUMNS, limit_reached

# The point: the seq of the edited turn's user message in the parent (owned by :user).
_POINT = text(
    "SELECT m.seq FROM messages m JOIN sessions s ON s.id = m.session_id "
    "WHERE s.id = :parent AND s.user_id = :user AND m.turn_id = :turn AND m.role = 'user'"
)
_CREATE = text(
    f"""
    WITH allowed AS (SELECT {MAY_CREATE} AS ok)
    INSERT INTO sessions (id, user_id, title, parent_session_id, branched_at_turn, turn_count)
    SELECT :id, :user, :title, CAST(:parent AS varchar), :turn,
           (SELECT count(*) FROM messages
            WHERE session_id = CAST(:parent AS varchar) AND seq < :seq AND role = 'user')
    FROM allowed WHERE ok
    ON CONFLICT (id) DO NOTHING
    RETURNING {SESSION_COLUMNS}
    """
)
# The turns before the point, each under a new turn id (turn ids are unique across
# sessions), the reply each had in use; not their client_message_ids (keys of the
# parent's requests) nor their embeddings (the branch's memory is made when needed).
_COPY = text(
    """
    INSERT INTO messages (id, turn_id, session_id, role, content, intent, tool_data, status,
                          prompt_tokens, completion_tokens, latency_ms, created_at)
    SELECT md5(CAST(:id AS text) || '/' || id::text)::uuid,
           md5(CAST(:id AS text) || '/' || turn_id::text)::uuid, CAST(:id AS varchar),
           role, content, intent, tool_data, status, prompt_tokens, completion_tokens,
           latency_ms, created_at
    FROM messages WHERE session_id = :parent AND seq < :seq ORDER BY seq
    """
)


async def create_branch(
    engine: AsyncEngine,
    *,
    parent_id: str,
    user_id: str,
    turn_id: str,
    branch_id: str | None,
    title: str,
    max_sessions: int,
) -> dict[str, Any]:
    """The branch's session row, with the parent's turns before `turn_id` copied in."""
    sid = branch_id or uuid.uuid4().hex
    async with engine.begin() as conn:
        point = (
            await conn.execute(
                _POINT, {"parent": parent_id, "user": user_id, "turn": uuid.UUID(turn_id)}
            )
        ).scalar()
        if point is None:
            raise NotFound(f"turn {turn_id} is not a message of session {parent_id!r}")
        params = {
            "id": sid,
            "user": user_id,
            "title": title,
            "parent": parent_id,
            "turn": uuid.UUID(turn_id),
            "seq": point,
            "limit": max_sessions,
        }
        row = (await conn.execute(_CREATE, params)).mappings().first()
        if row is None:
            taken = await conn.execute(text("SELECT 1 FROM sessions WHERE id = :id"), params)
            if taken.first() is not None:
                raise Conflict(f"session {sid!r} already exists; choose another id or omit it")
            raise limit_reached(max_sessions)
        await conn.execute(_COPY, params)
    return dict(row)


async def list_branches(
    engine: AsyncEngine, *, session_id: str, user_id: str
) -> list[dict[str, Any]]:
    """The sessions branched from this one, oldest first."""
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE parent_session_id = :id "
                "AND user_id = :u ORDER BY created_at, id"
            ),
            {"id": session_id, "u": user_id},
        )
        return [dict(r) for r in rows.mappings()]
