"""A turn's reply versions in Postgres, as the gateway reads them: which session a turn
is in, the version a regenerate request already made, and every version of a reply."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatbot.errors import NotFound
from chatbot.repository import find_turn_by_id
from shared.models import TurnResult


async def answered_turn(engine: AsyncEngine, *, session_id: str, turn_id: str) -> None:
    """404 unless the turn is one the assistant answered in this session."""
    async with engine.connect() as conn:
        found = (
            await conn.execute(
                text(
                    "SELECT 1 FROM messages WHERE turn_id = :t AND session_id = :s "
                    "AND role = 'assistant'"
                ),
                {"t": uuid.UUID(turn_id), "s": session_id},
            )
        ).first()
    if found is None:
        raise NotFound(f"turn {turn_id} is not an answered turn of session {session_id!r}")


async def made_by(
    engine: AsyncEngine, *, turn_id: str, client_message_id: str | None
) -> tuple[str, TurnResult] | None:
    """The version a regenerate request with this client_message_id made: its stream's
    id and the turn as it stands."""
    if not client_message_id:
        return None
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT stream_id, version FROM reply_versions "
                    "WHERE turn_id = :t AND client_message_id = :c"
                ),
                {"t": uuid.UUID(turn_id), "c": client_message_id},
            )
        ).first()
    if row is None:
        return None
    turn = await find_turn_by_id(engine, turn_id=turn_id)
    if turn is None:
        return None
    if turn.version != row.version:  # another version was picked since: this one's text
        found = await versions(engine, turn_id=turn_id)
        mine = next(v for v in found if v["version"] == row.version)
        turn = turn.model_copy(
            update={"reply": mine["content"], "status": mine["status"], "version": row.version}
        )
    return str(row.stream_id), turn


async def versions(engine: AsyncEngine, *, turn_id: str) -> list[dict[str, Any]]:
    """Every version of the turn's reply, the first first (one, if never regenerated)."""
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                text(
                    "SELECT version, content, status, completion_tokens, created_at, "
                    "tool_data FROM reply_versions WHERE turn_id = :t ORDER BY version"
                ),
                {"t": uuid.UUID(turn_id)},
            )
        ).mappings()
        found = [dict(r) for r in rows]
        if found:
            return found
        rows = (
            await conn.execute(
                text(
                    "SELECT version, content, status, completion_tokens, created_at, "
                    "tool_data FROM messages WHERE turn_id = :t AND role = 'assistant'"
                ),
                {"t": uuid.UUID(turn_id)},
            )
        ).mappings()
        return [dict(r) for r in rows]
