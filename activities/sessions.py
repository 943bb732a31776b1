"""Session persistence in Postgres: load a session's context, persist a turn exactly
once (and publish its final event right after), mark a session idle. Messages are
embedded later, when retrieval first needs them (activities/memory.py), so a turn never
waits on the embeddings API."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.streams import append_event
from shared import findings
from shared.findings import in_context
from shared.logging import bind
from shared.models import (
    SEEN_MESSAGE_IDS,
    AgentTurn,
    ChatMessage,
    ChosenVersion,
    Handoff,
    LoadedSession,
    PersistOutcome,
    PersistTurn,
    PersistVersion,
    RecordHandoff,
    SelectVersion,
    SessionRef,
    TurnEvent,
    TurnResult,
    VersionOutcome,
)
from shared.redis import REDIS_UNAVAILABLE
from shared.streams import TurnStreams
from shared.usage import Step, UsageLedger

# One statement, one round trip: both messages of the turn (the user's alone while a person
# has the session: nobody answered it yet), and the session's turn count raised only when
# the user message is new, so a retried write changes nothing.
_REPLY_ROW = """,
               (:reply_id, :turn_id, :session_id, 'assistant', :reply, NULL, :intent,
                CAST(:tool_data AS jsonb), :status, NULL, :completion_tokens, :latency_ms)"""
_WRITE_TURN_SQL = """
    WITH written AS (
        INSERT INTO messages (id, turn_id, session_id, role, content, client_message_id,
                              intent, tool_data, status, prompt_tokens, completion_tokens,
                              latency_ms)
        VALUES (:user_id, :turn_id, :session_id, 'user', :user_text, :cmid, :intent,
                CAST(:tool_data AS jsonb), :status, :prompt_tokens, NULL, NULL){reply}
        ON CONFLICT (turn_id, role) DO NOTHING
        RETURNING role
    ), counted AS (
        UPDATE sessions SET turn_count = turn_count + 1,
                            status = CASE WHEN status = 'ended' THEN status ELSE 'active' END,
                            last_activity_at = now(), updated_at = now()
        WHERE id = :session_id AND EXISTS (SELECT 1 FROM written WHERE role = 'user')
    )
    SELECT count(*) AS new FROM written WHERE role = 'user'
    """
_WRITE_TURN = text(_WRITE_TURN_SQL.format(reply=_REPLY_ROW))
_WRITE_USER_MESSAGE = text(_WRITE_TURN_SQL.format(reply=""))

log = logging.getLogger(__name__)
FOREIGN_KEY_VIOLATION = "23503"  # Postgres SQLSTATE
DATA_EXCEPTION_CLASS = "22"  # SQLSTATE class: invalid text, out of range, bad encoding


def _is_data_error(err: DBAPIError) -> bool:
    sqlstate = getattr(err.orig, "sqlstate", None) or ""
    return sqlstate.startswith(DATA_EXCEPTION_CLASS)


def _in_context(role: str, content: str, tool_data: Any) -> ChatMessage:
    """A stored message as the model sees it: replies with their findings, and what a
    person from the team wrote as the service's own words, marked as theirs."""
    if role == "assistant":
        return ChatMessage(role="assistant", content=in_context(content, _findings(tool_data)))
    if role == "agent":
        return ChatMessage(role="assistant", content=f"(A person from the team wrote:) {content}")
    return ChatMessage(role="user", content=content)


def _findings(tool_data: Any) -> str:
    """A stored turn's findings; rendered afresh for turns stored before they were kept."""
    data = tool_data if isinstance(tool_data, dict) else {}
    stored = data.get("findings")
    if isinstance(stored, str):
        return stored
    return findings.render(data.get("tool_results"), data.get("citations"))


def _last_turn(newest_first: Sequence[Any]) -> str | None:
    """The turn whose user message and answered reply are the newest rows, if so."""
    if len(newest_first) < 2:
        return None
    reply, asked = newest_first[0], newest_first[1]
    if (reply.role, asked.role) != ("assistant", "user") or reply.turn_id != asked.turn_id:
        return None
    return None if reply.status == "failed" else str(reply.turn_id)


# A turn's first answer, kept as version 1 the first time it is regenerated.
_FIRST_VERSION = text(
    """
    INSERT INTO reply_versions (turn_id, version, session_id, content, tool_data, status,
                                completion_tokens, latency_ms, stream_id, created_at)
    SELECT turn_id, 1, session_id, content, tool_data, status, completion_tokens,
           latency_ms, turn_id, created_at
    FROM messages WHERE turn_id = :turn AND role = 'assistant'
    ON CONFLICT DO NOTHING
    """
)
# The next version, once per stream (a retried activity adds none).
_NEXT_VERSION = text(
    """
    INSERT INTO reply_versions (turn_id, version, session_id, content, tool_data, status,
                                completion_tokens, latency_ms, stream_id, client_message_id)
    SELECT :turn, max(version) + 1, max(session_id), :reply, CAST(:data AS jsonb), :status,
           :tokens, :latency, :stream, :cmid
    FROM reply_versions WHERE turn_id = :turn HAVING count(*) > 0
    ON CONFLICT (stream_id) DO NOTHING
    """
)
_USE = """
    UPDATE messages m SET content = v.content, tool_data = v.tool_data, status = v.status,
           completion_tokens = v.completion_tokens, latency_ms = v.latency_ms,
           version = v.version,
           versions = (SELECT count(*) FROM reply_versions c WHERE c.turn_id = v.turn_id)
    FROM reply_versions v
    WHERE {which} AND m.turn_id = v.turn_id AND m.role = 'assistant'
    RETURNING m.version, m.versions, m.content, m.tool_data
"""
_USE_VERSION_OF_STREAM = text(_USE.format(which="v.stream_id = :stream"))
_USE_VERSION = text(_USE.format(which="v.turn_id = :turn AND v.version = :version"))


def _tool_data(turn: TurnResult) -> dict[str, Any]:
    """What a reply row keeps beside its text."""
    return {
        "intent_confidence": turn.intent_confidence,
        "tool_results": turn.tool_results,
        "tool_calls": turn.tool_calls,
        "citations": turn.citations,
        "findings": turn.findings,
        "timings_ms": turn.timings_ms,
        "error": turn.error,
        "cached": turn.cached,
        "data_timings": turn.data_timings,
    }


def message_uuid(turn_id: str, role: str) -> uuid.UUID:
    return uuid.uuid5(uuid.UUID(turn_id), role)


def tools_run(turn: TurnResult) -> list[str]:
    """The tools the turn called (not those denied, timed out or refused unparsed)."""
    if turn.tool_calls:
        return [
            str(c.get("name"))
            for c in turn.tool_calls
            if c.get("status") in ("ok", "error") and c.get("ms") is not None
        ]
    return [str(r.get("tool")) for r in turn.tool_results if r.get("tool")]


class SessionStore:
    def __init__(
        self,
        engine: AsyncEngine,
        streams: TurnStreams | None = None,
        ledger: UsageLedger | None = None,
        tool_prices: Mapping[str, float] | None = None,
    ) -> None:
        self._engine = engine
        self._streams = streams  # where a stored turn's final event goes
        self._ledger = ledger  # where the turn's tool calls are charged, its reservations closed
        self._tool_prices = dict(tool_prices or {})

    @activity.defn
    async def load_session(self, ref: SessionRef) -> LoadedSession:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text(
                        "SELECT summary, summary_version, turn_count, handoff, status "
                        "FROM sessions WHERE id = :id"
                    ),
                    {"id": ref.session_id},
                )
            ).first()
            recent = (
                await conn.execute(
                    text(
                        "SELECT role, content, tool_data, turn_id, status "
                        "FROM messages WHERE session_id = :id "
                        "ORDER BY seq DESC LIMIT :n"
                    ),
                    {"id": ref.session_id, "n": 2 * ref.recent_turns},
                )
            ).all()
            seen = (
                await conn.execute(
                    text(
                        "SELECT client_message_id FROM messages WHERE session_id = :id "
                        "AND client_message_id IS NOT NULL ORDER BY seq DESC LIMIT :n"
                    ),
                    {"id": ref.session_id, "n": SEEN_MESSAGE_IDS},
                )
            ).all()
        return LoadedSession(
            summary=row.summary if row else "",
            summary_version=row.summary_version if row else 0,
            turns_total=row.turn_count if row else 0,
            recent=[_in_context(r.role, r.content, r.tool_data) for r in reversed(recent)],
            seen_message_ids=[r.client_message_id for r in reversed(seen)],
            handoff=Handoff.model_validate(row.handoff) if row and row.handoff else None,
            ended=bool(row and row.status == "ended"),
            last_turn_id=_last_turn(recent),
        )

    @activity.defn
    async def persist_version(self, req: PersistVersion) -> VersionOutcome:
        """A regenerated reply as its turn's next version, once (by its stream); the
        transcript's reply row takes it. Version 1, the first answer, is kept beside it."""
        started = time.perf_counter()
        turn, stream = uuid.UUID(req.result.turn_id), uuid.UUID(req.stream_id)
        data = json.dumps(_tool_data(req.result))
        latency = int(sum(req.result.timings_ms.values()))
        async with self._engine.begin() as conn:
            await self._charge(conn, req.result, req.user_id, spent_by=req.stream_id)
            await conn.execute(_FIRST_VERSION, {"turn": turn})
            await conn.execute(
                _NEXT_VERSION,
                {
                    "turn": turn,
                    "stream": stream,
                    "reply": req.result.reply,
                    "data": data,
                    "status": req.result.status,
                    "tokens": req.result.usage.completion_tokens,
                    "latency": latency,
                    "cmid": req.result.client_message_id,
                },
            )
            chosen = (await conn.execute(_USE_VERSION_OF_STREAM, {"stream": stream})).first()
        if chosen is None:  # the turn's reply row is gone: its session was deleted
            raise ApplicationError(
                f"turn {req.result.turn_id} is no longer stored; the new answer was not kept",
                type="SessionMissing",
                non_retryable=True,
            )
        ms = (time.perf_counter() - started) * 1000
        result = req.result.model_copy(
            update={"version": chosen.version, "versions": chosen.versions}
        )
        published = await self._publish_final(
            result, req.user_id, req.final_seq, ms, stream_id=req.stream_id
        )
        return VersionOutcome(
            **published.model_dump(), version=chosen.version, versions=chosen.versions
        )

    @activity.defn
    async def select_version(self, req: SelectVersion) -> ChosenVersion:
        """Another of the turn's versions becomes the reply in use."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    _USE_VERSION, {"turn": uuid.UUID(req.turn_id), "version": req.version}
                )
            ).first()
        if row is None:
            raise ApplicationError(
                f"turn {req.turn_id} has no version {req.version}",
                type="VersionNotFound",
                non_retryable=True,
            )
        return ChosenVersion(
            turn_id=req.turn_id,
            version=row.version,
            versions=row.versions,
            reply=row.content,
            findings=_findings(row.tool_data),
        )

    @activity.defn
    async def record_handoff(self, req: RecordHandoff) -> None:
        """The session's handoff as the workflow now holds it, for the agents' queue."""
        handoff = req.handoff.model_dump_json() if req.handoff else None
        async with self._engine.begin() as conn:
            await conn.execute(
                # A handoff counts as an escalation (the admins' escalation rate).
                text(
                    "UPDATE sessions SET handoff = CAST(:h AS jsonb), updated_at = now(), "
                    "escalated_at = CASE WHEN CAST(:h AS jsonb) IS NULL THEN escalated_at "
                    "ELSE COALESCE(escalated_at, now()) END, "
                    "escalation_reason = CASE WHEN CAST(:h AS jsonb) IS NULL "
                    "THEN escalation_reason ELSE COALESCE(escalation_reason, :reason) END "
                    "WHERE id = :id AND user_id = :user"
                ),
                {
                    "h": handoff,
                    "reason": req.handoff.reason[:500] if req.handoff else None,
                    "id": req.ref.session_id,
                    "user": req.ref.user_id,
                },
            )

    @activity.defn
    async def persist_agent_turn(self, turn: AgentTurn) -> PersistOutcome:
        """An agent's message: stored (role agent, under its own turn id, once), then
        published as its turn's text and final event, as a bot's reply is."""
        started = time.perf_counter()
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO messages (id, turn_id, session_id, role, content, "
                    "client_message_id, intent, tool_data, status) VALUES (:id, :turn, :s, "
                    "'agent', :text, :cmid, 'chat', CAST(:data AS jsonb), 'complete') "
                    "ON CONFLICT (turn_id, role) DO NOTHING"
                ),
                {
                    "id": message_uuid(turn.turn_id, "agent"),
                    "turn": uuid.UUID(turn.turn_id),
                    "s": turn.session_id,
                    "text": turn.text,
                    "cmid": turn.client_message_id,
                    "data": json.dumps({"agent_id": turn.agent_id}),
                },
            )
        ms = (time.perf_counter() - started) * 1000
        result = TurnResult(
            turn_id=turn.turn_id,
            session_id=turn.session_id,
            client_message_id=turn.client_message_id,
            reply=turn.text,
            agent_id=turn.agent_id,
        )
        return await self._publish_final(result, turn.user_id, turn.final_seq, ms)

    @activity.defn
    async def persist_turn(self, req: PersistTurn) -> PersistOutcome:
        """Store the turn, then publish its final event when asked (`final_seq`). Both are
        idempotent (the turn id, the event's number): a retried activity never writes a
        turn or an event twice. Redis being away costs only the event: the outcome says
        it was not published, and the workflow publishes it with its own retries."""
        started = time.perf_counter()
        await self._store(req.result, req.user_id, user_only=req.user_only, dropped=req.dropped)
        ms = (time.perf_counter() - started) * 1000
        result = req.result.model_copy(
            update={"timings_ms": {**req.result.timings_ms, "persist_turn": ms}}
        )
        return await self._publish_final(result, req.user_id, req.final_seq, ms)

    async def _publish_final(
        self,
        result: TurnResult,
        user_id: str,
        seq: int | None,
        ms: float,
        *,
        stream_id: str | None = None,
    ) -> PersistOutcome:
        """The stored turn's final event, number `seq` (None: not asked to publish it),
        on the turn's stream or, for a regenerated version, on `stream_id`."""
        if seq is None or self._streams is None:
            return PersistOutcome(ms=ms)
        event = TurnEvent(
            turn_id=stream_id or result.turn_id,
            kind="final",
            result=result,
            session_id=result.session_id,
            user_id=user_id,
            seq=seq,
        )
        try:
            await append_event(self._streams, event)
        except REDIS_UNAVAILABLE as err:
            log.warning("final event not published with the turn: %s", err)
            return PersistOutcome(ms=ms)
        return PersistOutcome(ms=ms, published=True)

    async def _store(
        self, turn: TurnResult, user_id: str, *, user_only: bool = False, dropped: bool = False
    ) -> None:
        bind(turn_id=turn.turn_id)
        tool_data = json.dumps(_tool_data(turn))
        common = {
            "turn_id": uuid.UUID(turn.turn_id),
            "session_id": turn.session_id,
            "intent": turn.intent,
            "tool_data": tool_data,
            "status": turn.status,
        }
        latency = int(sum(turn.timings_ms.values()))
        try:
            await self._write_turn(turn, user_id, common, latency, user_only, dropped)
        except IntegrityError as err:
            if getattr(err.orig, "sqlstate", None) != FOREIGN_KEY_VIOLATION:
                raise
            # The session row is gone (deleted while the turn ran) or was never created:
            # retrying cannot help, and recreating it would undo a deletion.
            raise ApplicationError(
                f"session {turn.session_id!r} does not exist; the turn was not stored",
                type="SessionMissing",
                non_retryable=True,
            ) from None
        except (DBAPIError, UnicodeEncodeError) as err:
            if isinstance(err, DBAPIError) and not _is_data_error(err):
                raise
            # A value Postgres refuses is refused again on every retry.
            raise ApplicationError(
                f"the turn holds data Postgres cannot store: {err}"[:500],
                type="TurnNotStorable",
                non_retryable=True,
            ) from None

    async def _write_turn(
        self,
        turn: TurnResult,
        user_id: str,
        common: dict[str, Any],
        latency: int,
        user_only: bool,
        dropped: bool = False,
    ) -> None:
        """Write both messages of the turn; the first write also counts it on the session.
        In the same transaction: its tool calls charged, its leftover reservations closed
        (all a rolled-back turn leaves: what it cost)."""
        async with self._engine.begin() as conn:
            await self._charge(conn, turn, user_id, spent_by=turn.turn_id)
            if dropped:
                log.info("turn rolled back: only its spend is recorded")
                return
            new = (
                await conn.execute(
                    _WRITE_USER_MESSAGE if user_only else _WRITE_TURN,
                    {
                        **common,
                        "user_id": message_uuid(turn.turn_id, "user"),
                        "reply_id": message_uuid(turn.turn_id, "assistant"),
                        "user_text": turn.user_text,
                        "reply": turn.reply,
                        "cmid": turn.client_message_id,
                        "prompt_tokens": turn.usage.prompt_tokens,
                        "completion_tokens": turn.usage.completion_tokens,
                        "latency_ms": latency,
                    },
                )
            ).scalar_one()
        log.info("turn persisted", extra={"status": turn.status, "new": bool(new)})

    async def _charge(
        self, conn: AsyncConnection, turn: TurnResult, user_id: str, *, spent_by: str
    ) -> None:
        """In the storing transaction: the turn's tool calls charged and the leftover
        reservations of its model calls (made under `spent_by`, its stream) closed."""
        if self._ledger is None:
            return
        calls = [(name, self._tool_prices.get(name, 0.0)) for name in tools_run(turn)]
        owner = Step(turn_id=spent_by, step="", user_id=user_id, session_id=turn.session_id)
        await self._ledger.record_tools(conn, owner, calls)
        await self._ledger.close_turn(spent_by, conn)

    @activity.defn
    async def mark_ended(self, ref: SessionRef) -> None:
        """An operator ended the session: new messages are refused from now on."""
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE sessions SET status = 'ended', updated_at = now() "
                    "WHERE id = :id AND user_id = :user"
                ),
                {"id": ref.session_id, "user": ref.user_id},
            )

    @activity.defn
    async def mark_idle(self, ref: SessionRef) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                text(
                    "UPDATE sessions SET status = 'idle', updated_at = now() "
                    "WHERE id = :id AND user_id = :user AND status = 'active'"
                ),
                {"id": ref.session_id, "user": ref.user_id},
            )
