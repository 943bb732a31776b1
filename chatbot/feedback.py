"""Ratings of replies in Postgres (thumbs up or down, with an optional reason; one per
assistant turn, a second one replaces it), and `chatbot feedback export`: the ratings as
JSON lines for evaluation, each with its turn (user text, reply, tools, tokens) and what
is stored of the turn's prompt.

Every write is scoped by the owner, as in `chatbot.repository`: another user's session
or turn does not exist (404)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatbot.errors import NotFound
from shared import findings
from shared.config import Settings
from shared.db.engine import engine_from_settings

FOREIGN_KEY_VIOLATION = "23503"  # Postgres SQLSTATE: the session went meanwhile
_COLUMNS = "turn_id, session_id, user_id, rating, reason, created_at, updated_at"

# The turn must be an assistant reply of this session of this user; else nothing is written.
_RATE = text(
    f"""
    WITH turn AS (
        SELECT m.turn_id, m.session_id FROM messages m JOIN sessions s ON s.id = m.session_id
        WHERE m.session_id = :sid AND s.user_id = :user AND m.role = 'assistant'
          AND m.turn_id = CAST(:tid AS uuid)
    )
    INSERT INTO feedback (turn_id, session_id, user_id, rating, reason)
    SELECT turn_id, session_id, :user, :rating, :reason FROM turn
    ON CONFLICT (turn_id) DO UPDATE
        SET rating = EXCLUDED.rating, reason = EXCLUDED.reason, updated_at = now()
        WHERE feedback.session_id = EXCLUDED.session_id
    RETURNING {_COLUMNS}
    """
)

_UNRATE = text(
    """
    WITH turn AS (
        SELECT 1 FROM messages m JOIN sessions s ON s.id = m.session_id
        WHERE m.session_id = :sid AND s.user_id = :user AND m.role = 'assistant'
          AND m.turn_id = CAST(:tid AS uuid)
    ), removed AS (
        DELETE FROM feedback WHERE turn_id = CAST(:tid AS uuid) AND session_id = :sid
            AND user_id = :user
        RETURNING 1
    )
    SELECT EXISTS (SELECT 1 FROM turn) AS found, (SELECT count(*) FROM removed) AS removed
    """
)


def _no_turn(session_id: str, turn_id: str) -> NotFound:
    return NotFound(f"session {session_id!r} has no assistant turn {turn_id}")


async def rate(
    engine: AsyncEngine,
    *,
    session_id: str,
    turn_id: str,
    user_id: str,
    rating: str,
    reason: str | None,
) -> dict[str, Any]:
    """Store the user's rating of the turn, replacing one given before."""
    params = {"sid": session_id, "tid": turn_id, "user": user_id, "rating": rating}
    try:
        async with engine.begin() as conn:
            row = (await conn.execute(_RATE, {**params, "reason": reason})).mappings().first()
    except IntegrityError as err:
        if getattr(err.orig, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
            raise
        raise NotFound(f"session {session_id!r} not found") from None
    if row is None:
        raise _no_turn(session_id, turn_id)
    return {**row, "turn_id": str(row["turn_id"])}


async def unrate(engine: AsyncEngine, *, session_id: str, turn_id: str, user_id: str) -> bool:
    """Remove the user's rating of the turn; whether there was one. A turn that is not an
    assistant turn of the session is 404, a turn without a rating is not."""
    async with engine.begin() as conn:
        row = (
            await conn.execute(_UNRATE, {"sid": session_id, "tid": turn_id, "user": user_id})
        ).one()
    if not row.found:
        raise _no_turn(session_id, turn_id)
    return bool(row.removed)


def _owner_filter(user_id: str | None) -> tuple[str, dict[str, Any]]:
    return ("WHERE user_id = :user", {"user": user_id}) if user_id is not None else ("", {})


async def latest(engine: AsyncEngine, *, user_id: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest ratings first (of one user, or everyone's)."""
    where, params = _owner_filter(user_id)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(
                f"SELECT {_COLUMNS} FROM feedback {where} "
                "ORDER BY updated_at DESC, turn_id DESC LIMIT :n"
            ),
            {**params, "n": limit},
        )
        return [{**r, "turn_id": str(r["turn_id"])} for r in rows.mappings()]


async def counts(engine: AsyncEngine, *, user_id: str | None) -> dict[str, int]:
    """How many ratings are up and how many down."""
    where, params = _owner_filter(user_id)
    async with engine.connect() as conn:
        rows = await conn.execute(
            text(f"SELECT rating, count(*) AS n FROM feedback {where} GROUP BY rating"), params
        )
        found = {r.rating: int(r.n) for r in rows}
    return {"up": found.get("up", 0), "down": found.get("down", 0)}


# Each rating with its turn's two messages, and the messages of the session stored before
# the turn (what the model had as recent context, the summary aside).
_EXPORT = text(
    """
    SELECT f.turn_id, f.session_id, f.user_id, f.rating, f.reason, f.updated_at AS rated_at,
           a.content AS reply, a.status, a.intent, a.tool_data, a.completion_tokens,
           a.created_at AS replied_at, u.content AS user_text, u.prompt_tokens,
           r.recent
    FROM feedback f
    JOIN messages a ON a.turn_id = f.turn_id AND a.role = 'assistant'
    LEFT JOIN messages u ON u.turn_id = f.turn_id AND u.role = 'user'
    LEFT JOIN LATERAL (
        SELECT jsonb_agg(jsonb_build_object('role', p.role, 'content', p.content)
                         ORDER BY p.seq) AS recent
        FROM (
            SELECT role, content, seq FROM messages
            WHERE session_id = f.session_id AND seq < COALESCE(u.seq, a.seq)
            ORDER BY seq DESC LIMIT :recent
        ) p
    ) r ON true
    WHERE f.updated_at >= :since AND (CAST(:until AS timestamptz) IS NULL OR f.updated_at < :until)
    ORDER BY f.updated_at, f.turn_id
    """
)


def export_record(row: dict[str, Any]) -> dict[str, Any]:
    """One exported line: the rating, its turn, and the turn's prompt parts as stored."""
    data: dict[str, Any] = row["tool_data"] if isinstance(row["tool_data"], dict) else {}
    tool_results, citations = data.get("tool_results", []), data.get("citations", [])
    if data.get("context") is not None:
        prompt: dict[str, Any] = {"source": "context", "context": data["context"]}
    else:
        prompt = {"source": "recent", "user_text": row["user_text"], "recent": row["recent"] or []}
    return {
        "turn_id": str(row["turn_id"]),
        "session_id": row["session_id"],
        "user_id": row["user_id"],
        "rating": row["rating"],
        "reason": row["reason"],
        "rated_at": row["rated_at"].isoformat(),
        "replied_at": row["replied_at"].isoformat(),
        "user_text": row["user_text"],
        "reply": row["reply"],
        "status": row["status"],
        "intent": row["intent"],
        "tool_calls": data.get("tool_calls", []),
        "tool_results": tool_results,
        "citations": citations,
        "findings": data.get("findings") or findings.render(tool_results, citations),
        "tokens": {
            "prompt_tokens": row["prompt_tokens"],
            "completion_tokens": row["completion_tokens"],
        },
        "prompt": prompt,
    }


async def export_records(
    engine: AsyncEngine, *, since: datetime, until: datetime | None, recent: int
) -> AsyncIterator[dict[str, Any]]:
    """The ratings updated in [since, until), oldest first, read with a server-side cursor."""
    params = {"since": since, "until": until, "recent": recent}
    async with engine.connect() as conn:
        result = await conn.stream(_EXPORT, params)
        async for row in result.mappings():
            yield export_record(dict(row))


def parse_when(value: str) -> datetime:
    """An ISO date or datetime for --since/--until; without an offset it is UTC."""
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date or datetime (e.g. 2026-01-31, "
            "2026-01-31T09:30, 2026-01-31T09:30:00+01:00)"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


EXPORT_FORMAT = """\
Each line is one rating, as JSON: turn_id, session_id, user_id, rating (up|down), reason,
rated_at, replied_at, user_text, reply, status, intent, tool_calls, tool_results,
citations, findings, tokens {prompt_tokens, completion_tokens}, and prompt: the turn's
prompt parts as far as they are stored. Turns do not store their whole prompt (the session
summary and retrieved memories of the moment are not kept per turn), so prompt is the
stored context when a turn has one ({"source": "context", "context": ...}), otherwise the
user text and the last N (--recent) messages of the session stored before the turn, oldest first
({"source": "recent", "user_text": ..., "recent": [{"role", "content"}, ...]}).
Dates without an offset are UTC; a date alone is its midnight."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="feedback_command", required=True, metavar="ACTION")
    export = sub.add_parser(
        "export",
        help="ratings updated since a time, as JSON lines for evaluation",
        description="Export users' ratings of replies, each with its turn, as JSON lines.",
        epilog=EXPORT_FORMAT,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument(
        "--since",
        type=parse_when,
        required=True,
        metavar="WHEN",
        help="ratings updated at or after",
    )
    export.add_argument("--until", type=parse_when, metavar="WHEN", help="and before this")
    export.add_argument(
        "--output", default="-", metavar="FILE", help="where to write (default -: stdout)"
    )
    export.add_argument(
        "--recent",
        type=int,
        metavar="N",
        help="messages before the turn in `prompt.recent` (default: 2 x CONTEXT_RECENT_TURNS, "
        "the turns the assistant keeps in context)",
    )


async def _export(settings: Settings, args: argparse.Namespace, out: TextIO) -> int:
    engine = engine_from_settings(settings)
    recent = args.recent if args.recent is not None else 2 * settings.context_recent_turns
    written = 0
    try:
        async for record in export_records(
            engine, since=args.since, until=args.until, recent=recent
        ):
            out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            written += 1
    finally:
        await engine.dispose()
    return written


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.until is not None and args.until <= args.since:
        sys.stderr.write("error: --until must be after --since\n")
        return 2
    if args.recent is not None and args.recent < 0:
        sys.stderr.write("error: --recent cannot be negative\n")
        return 2
    if settings.database_url is None:
        sys.stderr.write("error: DATABASE_URL is not set; point it at your Postgres\n")
        return 2
    to_stdout = args.output == "-"
    target = Path(args.output)
    partial = target.with_name(target.name + ".part")  # a failed export leaves no FILE
    try:
        if to_stdout:
            written = asyncio.run(_export(settings, args, sys.stdout))
            sys.stdout.flush()
        else:
            with partial.open("w", encoding="utf-8") as out:
                written = asyncio.run(_export(settings, args, out))
            partial.replace(target)
    except (OSError, DBAPIError) as err:
        if not to_stdout:
            partial.unlink(missing_ok=True)
        sys.stderr.write(f"error: the export failed: {err}\n")
        return 1
    plural = "" if written == 1 else "s"
    where = "stdout" if to_stdout else str(target)
    sys.stderr.write(f"exported {written} rating{plural} updated since {args.since} to {where}\n")
    return 0
