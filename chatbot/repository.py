"""Sessions and messages in Postgres, as the gateway reads and writes them. Every query is
scoped by the owner: another user's session does not exist (404), it is never 403."""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, text
from sqlalchemy.ext.asyncio import AsyncEngine

from chatbot.errors import BadRequest, Conflict, NotFound, SessionLimitReached
from shared import findings
from shared.models import OnBusy, TurnResult, TurnStatus

SESSION_COLUMNS = (
    "id, title, status, turn_count, created_at, updated_at, last_activity_at, handoff, "
    "on_busy, parent_session_id, branched_at_turn"
)


_UPDATABLE = ("title", "on_busy")


def _not_found(session_id: str) -> NotFound:
    return NotFound(f"session {session_id!r} not found")


async def _session_row(
    engine: AsyncEngine, sql: str, params: dict[str, Any]
) -> dict[str, Any] | None:
    """The one row a statement on `sessions` returns, or None, in its own transaction."""
    async with engine.begin() as conn:
        row = (await conn.execute(text(sql), params)).mappings().first()
    return None if row is None else dict(row)


def limit_reached(limit: int) -> SessionLimitReached:
    plural = "" if limit == 1 else "s"
    return SessionLimitReached(
        f"you have reached the limit of {limit} session{plural}; delete sessions you no "
        "longer need (DELETE /v1/sessions/{id}) to start new ones"
    )


# Whether the user may have one more session, in the statement that inserts it, so the
# limit costs no extra round trip. Concurrent creations by one user each count the rows
# committed before they started, so a burst can pass the limit by at most its own size:
# a bound on abuse, not an exact quota. :limit = 0 means no limit.
MAY_CREATE = """
    CASE WHEN CAST(:limit AS integer) = 0 THEN true
         ELSE (SELECT count(*) FROM sessions WHERE user_id = :user) < :limit END
"""

_CREATE_SESSION = text(
    f"""
    WITH allowed AS (SELECT {MAY_CREATE} AS ok),
    created AS (
        INSERT INTO sessions (id, user_id, title)
        SELECT :id, :user, :title FROM allowed WHERE ok
        ON CONFLICT (id) DO NOTHING RETURNING {SESSION_COLUMNS}
    )
    SELECT created.*, allowed.ok FROM allowed LEFT JOIN created ON true
    """
)


async def create_session(
    engine: AsyncEngine, *, session_id: str | None, user_id: str, title: str, max_sessions: int
) -> dict[str, Any]:
    sid = session_id or uuid.uuid4().hex
    params = {"id": sid, "user": user_id, "title": title, "limit": max_sessions}
    async with engine.begin() as conn:
        row = dict((await conn.execute(_CREATE_SESSION, params)).mappings().one())
    if not row.pop("ok"):
        raise limit_reached(max_sessions)
    if row["id"] is None:
        raise Conflict(f"session {sid!r} already exists; choose another id or omit it")
    return row


# Creates the session only when it is missing: a message to an existing session writes
# nothing here (no row version per message) and does not count the user's sessions.
_ENSURE_SESSION = text(
    f"""
    WITH existing AS (SELECT user_id, status, on_busy FROM sessions WHERE id = :id),
    allowed AS (
        SELECT CASE WHEN EXISTS (SELECT 1 FROM existing) THEN NULL ELSE {MAY_CREATE} END AS ok
    ),
    created AS (
        INSERT INTO sessions (id, user_id) SELECT :id, :user FROM allowed WHERE ok
        ON CONFLICT (id) DO NOTHING RETURNING user_id, status
    )
    SELECT COALESCE(created.user_id, existing.user_id) AS user_id,
           COALESCE(created.status, existing.status) AS status, existing.on_busy, allowed.ok
    FROM allowed LEFT JOIN created ON true LEFT JOIN existing ON true
    """
)


async def ensure_session(
    engine: AsyncEngine, *, session_id: str, user_id: str, max_sessions: int
) -> OnBusy | None:
    """A message to a session that was never created creates it for its sender. Returns
    the session's on_busy setting (None: the default)."""
    params = {"id": session_id, "user": user_id, "limit": max_sessions}

    async def attempt() -> Row[Any]:
        async with engine.begin() as conn:
            return (await conn.execute(_ENSURE_SESSION, params)).one()

    row = await attempt()
    if row.user_id is None and row.ok:
        # Our snapshot missed a session a concurrent first message had just created.
        row = await attempt()
    if row.ok is False:
        raise limit_reached(max_sessions)
    if row.user_id != user_id:
        raise _not_found(session_id)
    if row.status == "ended":
        raise Conflict(f"session {session_id!r} was ended by an operator; start a new session")
    on_busy: OnBusy | None = row.on_busy
    return on_busy


async def get_session(engine: AsyncEngine, *, session_id: str, user_id: str) -> dict[str, Any]:
    row = await _session_row(
        engine,
        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE id = :id AND user_id = :u",
        {"id": session_id, "u": user_id},
    )
    if row is None:
        raise _not_found(session_id)
    return row


def encode_cursor(created_at: datetime, session_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{session_id}".encode()).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        created, _, sid = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        # In UTC here: a far-off date with an offset overflows when Postgres converts it.
        at = datetime.fromisoformat(created).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadRequest("cursor is not valid: pass the next_cursor of a previous page") from None
    return at, sid


async def list_sessions(
    engine: AsyncEngine, *, user_id: str, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    params: dict[str, Any] = {"u": user_id, "n": limit + 1}
    where = "user_id = :u"
    if cursor:
        params["c_at"], params["c_id"] = decode_cursor(cursor)
        where += " AND (created_at, id) < (:c_at, :c_id)"
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        f"SELECT {SESSION_COLUMNS} FROM sessions WHERE {where} "
                        "ORDER BY created_at DESC, id DESC LIMIT :n"
                    ),
                    params,
                )
            )
            .mappings()
            .all()
        )
    items = [dict(r) for r in rows[:limit]]
    more = len(rows) > limit
    return items, encode_cursor(items[-1]["created_at"], items[-1]["id"]) if more else None


async def update_session(
    engine: AsyncEngine, *, session_id: str, user_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """Set the session's `title` and/or `on_busy` (the keys of `changes`)."""
    if not changes:
        return await get_session(engine, session_id=session_id, user_id=user_id)
    sets = ", ".join(f"{column} = :{column}" for column in changes if column in _UPDATABLE)
    row = await _session_row(
        engine,
        f"UPDATE sessions SET {sets}, updated_at = now() "
        f"WHERE id = :id AND user_id = :u RETURNING {SESSION_COLUMNS}",
        {**changes, "id": session_id, "u": user_id},
    )
    if row is None:
        raise _not_found(session_id)
    return row


async def delete_session(engine: AsyncEngine, *, session_id: str, user_id: str) -> list[str]:
    """Delete the session and its transcript; the ids of the turns it had."""
    async with engine.begin() as conn:
        turns = (
            await conn.execute(
                text(
                    "SELECT DISTINCT m.turn_id FROM messages m JOIN sessions s "
                    "ON s.id = m.session_id WHERE s.id = :id AND s.user_id = :u"
                ),
                {"id": session_id, "u": user_id},
            )
        ).scalars()
        turn_ids = [str(t) for t in turns]
        deleted = await conn.execute(
            text("DELETE FROM sessions WHERE id = :id AND user_id = :u"),
            {"id": session_id, "u": user_id},
        )
    if not deleted.rowcount:
        raise _not_found(session_id)
    return turn_ids


_MESSAGE_COLUMNS = (
    "id, seq, turn_id, role, content, status, intent, client_message_id, tool_data, "
    "prompt_tokens, completion_tokens, latency_ms, created_at, version, versions"
)


# A reply's rating by its user, beside it in the history.
_FEEDBACK = (
    "(SELECT json_build_object('rating', f.rating, 'reason', f.reason) FROM feedback f "
    "WHERE f.turn_id = messages.turn_id AND messages.role = 'assistant') AS feedback"
)


async def list_messages(
    engine: AsyncEngine, *, session_id: str, limit: int, before: int | None
) -> tuple[list[dict[str, Any]], int | None]:
    params: dict[str, Any] = {"id": session_id, "n": limit + 1}
    where = "session_id = :id"
    if before is not None:
        params["before"] = before
        where += " AND seq < :before"
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        f"SELECT {_MESSAGE_COLUMNS}, {_FEEDBACK} FROM messages WHERE {where} "
                        "ORDER BY seq DESC LIMIT :n"
                    ),
                    params,
                )
            )
            .mappings()
            .all()
        )
    page = [{**r, "id": str(r["id"]), "turn_id": str(r["turn_id"])} for r in reversed(rows[:limit])]
    return page, page[0]["seq"] if len(rows) > limit else None


async def find_turn(
    engine: AsyncEngine, *, session_id: str, client_message_id: str
) -> TurnResult | None:
    """The stored turn a client_message_id produced, so a retried POST gets the same answer."""
    return await _stored_turn(
        engine,
        "SELECT turn_id FROM messages WHERE session_id = :sid AND client_message_id = :cmid",
        {"sid": session_id, "cmid": client_message_id},
    )


async def find_turn_by_id(engine: AsyncEngine, *, turn_id: str) -> TurnResult | None:
    """A stored turn by its id, or by the stream of one of its versions: the final reply
    of a stream that Redis no longer holds."""
    return await _stored_turn(engine, _TURN_OR_VERSION, {"tid": turn_id})


# A turn id, or the stream of one of a turn's regenerated versions.
_TURN_OR_VERSION = (
    "SELECT COALESCE((SELECT turn_id FROM reply_versions WHERE stream_id = CAST(:tid AS uuid)),"
    " CAST(:tid AS uuid))"
)


async def turn_owner(engine: AsyncEngine, *, turn_id: str) -> tuple[str, str] | None:
    """(session id, user id) of a stored turn."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                text(
                    "SELECT s.id, s.user_id FROM messages m JOIN sessions s ON s.id = m.session_id"
                    f" WHERE m.turn_id = ({_TURN_OR_VERSION}) LIMIT 1"
                ),
                {"tid": turn_id},
            )
        ).first()
    return None if row is None else (row.id, row.user_id)


async def _stored_turn(
    engine: AsyncEngine, turn_id_sql: str, params: dict[str, Any]
) -> TurnResult | None:
    async with engine.connect() as conn:
        rows = (
            (
                await conn.execute(
                    text(
                        f"SELECT {_MESSAGE_COLUMNS}, session_id FROM messages "
                        f"WHERE turn_id = ({turn_id_sql}) ORDER BY seq"
                    ),
                    params,
                )
            )
            .mappings()
            .all()
        )
    by_role = {r["role"]: r for r in rows}
    user, assistant = by_role.get("user"), by_role.get("assistant")
    if user is None or assistant is None:
        return None
    data = assistant["tool_data"] or {}
    status: TurnStatus = assistant["status"]
    return TurnResult(
        turn_id=str(assistant["turn_id"]),
        session_id=user["session_id"],
        client_message_id=user["client_message_id"],
        user_text=user["content"],
        reply=assistant["content"],
        status=status,
        intent=assistant["intent"] or "chat",
        intent_confidence=data.get("intent_confidence", 1.0),
        tool_results=data.get("tool_results", []),
        tool_calls=data.get("tool_calls", []),
        citations=data.get("citations", []),
        findings=data.get("findings")
        or findings.render(data.get("tool_results"), data.get("citations")),
        usage={
            "prompt_tokens": user["prompt_tokens"] or 0,
            "completion_tokens": assistant["completion_tokens"] or 0,
        },
        timings_ms=data.get("timings_ms", {}),
        error=data.get("error"),
        cached=bool(data.get("cached", False)),
        data_timings=data.get("data_timings") or {},
        version=assistant["version"],
        versions=assistant["versions"],
    )
