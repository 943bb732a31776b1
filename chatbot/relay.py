"""A turn's events as a client receives them, over SSE or WebSocket alike.

From the turn's Redis stream, after a given entry id, to its `final` or `error` event.
While nothing arrives, a keep-alive every STREAM_KEEPALIVE_SECONDS, and a look in
Postgres: a turn already stored there (its final event lost with a Redis restart, or
never published while Redis was down) ends the stream with its stored result. When Redis
fails mid-stream, the stream ends with an `error` event marked resumable: the client
resumes with the last event id it saw, and loses nothing."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from chatbot import repository
from chatbot.resources import Resources
from shared.models import TurnResult
from shared.redis import REDIS_UNAVAILABLE, stream_block_ms
from shared.streams import StreamEvent, TurnStreams

log = logging.getLogger(__name__)
RESUME_AFTER_SECONDS = 2
INTERRUPTED = "StreamInterrupted"


async def record_owner(res: Resources, turn_id: str, session_id: str, user_id: str) -> None:
    """Who may read the turn's stream; the worker records it too, and Postgres knows it
    once the turn is stored, so a Redis outage here loses nothing."""
    try:
        await TurnStreams(res.redis).set_owner(turn_id, session_id, user_id)
    except REDIS_UNAVAILABLE as err:
        log.warning("turn owner not recorded in Redis: %s", err)


def interrupted(reason: str) -> StreamEvent:
    """The stream broke, the turn did not: resume with Last-Event-ID."""
    return StreamEvent(
        "",
        "error",
        {
            "error": f"the stream was interrupted ({reason}); the turn goes on: resume "
            "with the last event id you received",
            "error_type": INTERRUPTED,
            "resumable": True,
            "retry_after": RESUME_AFTER_SECONDS,
        },
    )


def stored_event(turn: TurnResult) -> StreamEvent:
    """The event a stored turn ended its stream with."""
    if turn.status == "failed":
        return StreamEvent(
            "", "error", {"error": turn.error or "the turn failed", "error_type": "TurnFailed"}
        )
    return StreamEvent("", "final", {"result": turn.model_dump(mode="json")})


async def _stored(res: Resources, turn_id: str) -> TurnResult | None:
    try:
        return await repository.find_turn_by_id(res.engine, turn_id=turn_id)
    except (DBAPIError, PoolTimeoutError, OSError) as err:
        log.warning("could not look for the stored turn: %s", err)
        return None


async def turn_events(
    res: Resources, turn_id: str, after: str = "0-0", *, fresh: bool = False
) -> AsyncIterator[StreamEvent | None]:
    """The turn's events after `after`; None is a keep-alive. `fresh`: the turn was handed
    to its workflow just now, so its stream is not there yet and it cannot be stored yet:
    the look for a stored turn (a Redis and a Postgres round trip) waits for a quiet
    interval, as it does for any stream."""
    streams = TurnStreams(res.stream_redis)
    try:
        if not fresh and not await streams.has_entries(turn_id):  # expired, lost, not yet
            stored = await _stored(res, turn_id)
            if stored is not None:
                yield stored_event(stored)
                return
        async for event in streams.read(turn_id, after, block_ms=stream_block_ms(res.settings)):
            if event is not None:
                yield event
                continue
            stored = await _stored(res, turn_id)
            if stored is not None:
                yield stored_event(stored)
                return
            yield None
    except REDIS_UNAVAILABLE as err:
        log.warning("turn stream interrupted: %s", err)
        stored = await _stored(res, turn_id)
        yield stored_event(stored) if stored is not None else interrupted("Redis is unreachable")
