"""Per-turn event streams in Redis (`turn:{turn_id}`). The worker appends token, restart
and final/error entries; the gateway reads from any entry id, so a client that reconnects
with Last-Event-ID resumes exactly where it left off. Entry ids are the SSE event ids."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from shared.redis import REDIS_UNAVAILABLE

log = logging.getLogger(__name__)

STREAM_TTL_SECONDS = 3600
MAX_STREAM_ENTRIES = 20_000
CANCEL_TTL_SECONDS = 600
TERMINAL_EVENTS = frozenset({"final", "error"})
OWNER_RETRY_SECONDS = 1.0


def stream_key(turn_id: str) -> str:
    return f"turn:{turn_id}"


def cancel_key(turn_id: str) -> str:
    return f"turn-cancel:{turn_id}"


def owner_key(turn_id: str) -> str:
    return f"turn-owner:{turn_id}"


def published_key(turn_id: str) -> str:
    return f"turn-published:{turn_id}"


# One event appended at most once: its number joins the turn's set of published ones,
# and only a number new to the set is appended (atomically: a script runs whole).
_APPEND_ONCE = """
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[3], ARGV[5], 'EX', ARGV[4])
end
local new = redis.call('SADD', KEYS[2], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[4])
if new == 0 then
  return 0
end
redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[6], '*', 'type', ARGV[2], 'data', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""


class TokenWriter:
    """Streams a reply's tokens without waiting on Redis for each one: tokens that arrive
    while a write is in flight go out together in the next pipeline, each still its own
    entry. The first write also records who owns the turn, so a stream that Redis lost is
    found again by its readers once the next attempt writes.

    Redis being unreachable costs the stream, not the reply: the writer stops streaming
    this attempt (a later token after a gap would tell readers a wrong text) and the turn
    goes on; readers get a resumable error and the final reply from Postgres. Any other
    failed write (a bug) is raised by the next `add` or by `close`."""

    def __init__(
        self, streams: TurnStreams, turn_id: str, owner: tuple[str, str] | None = None
    ) -> None:
        self._streams = streams
        self._turn_id = turn_id
        self._owner = owner
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._writing: asyncio.Task[None] | None = None
        self._ttl_set = False
        self.broken = False
        self._owner_restored = False

    def add(self, text: str) -> None:
        if self._writing is not None and self._writing.done():
            self._writing.result()  # raise a failed write here
        if self.broken:
            # Readers resuming after Redis came back need to find the turn's owner.
            if not self._owner_restored and (self._writing is None or self._writing.done()):
                self._writing = asyncio.create_task(self._restore_owner())
            return
        self._pending.append(("token", {"text": text}))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending and not self.broken:
            batch, self._pending = self._pending, []
            first = not self._ttl_set
            try:
                await self._streams.append_many(
                    self._turn_id, batch, expire=first, owner=self._owner if first else None
                )
            except REDIS_UNAVAILABLE as err:
                log.warning("token stream interrupted, the reply goes on unstreamed: %s", err)
                self.broken, self._pending = True, []
                return
            self._ttl_set = True

    async def _restore_owner(self) -> None:
        if self._owner is None:
            self._owner_restored = True
            return
        try:
            await self._streams.set_owner(self._turn_id, *self._owner)
            self._owner_restored = True
        except REDIS_UNAVAILABLE:
            await asyncio.sleep(OWNER_RETRY_SECONDS)  # one try a second, not one a token

    async def close(self) -> None:
        """Wait until every token added so far is in the stream."""
        if self._writing is not None:
            await self._writing


def _owner_value(session_id: str, user_id: str) -> str:
    return json.dumps({"session_id": session_id, "user_id": user_id})


@dataclass(frozen=True)
class StreamEvent:
    id: str  # the Redis entry id; "" for an event not read from the stream
    type: str
    data: dict[str, Any]


class TurnStreams:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._append_once = redis.register_script(_APPEND_ONCE)

    async def append(self, turn_id: str, type_: str, data: dict[str, Any]) -> None:
        await self.append_many(turn_id, [(type_, data)])

    async def append_many(
        self,
        turn_id: str,
        events: list[tuple[str, dict[str, Any]]],
        *,
        expire: bool = True,
        owner: tuple[str, str] | None = None,
    ) -> None:
        """Append events in one round trip; `expire=False` leaves the TTL as the first
        write of the turn set it; `owner` (session id, user id) is recorded alongside."""
        key = stream_key(turn_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            for type_, data in events:
                fields = {"type": type_, "data": json.dumps(data)}
                pipe.xadd(key, fields, maxlen=MAX_STREAM_ENTRIES)  # type: ignore[arg-type]
            if expire:
                pipe.expire(key, STREAM_TTL_SECONDS)
            if owner is not None:
                pipe.set(owner_key(turn_id), _owner_value(*owner), ex=STREAM_TTL_SECONDS)
            await pipe.execute()

    async def append_once(
        self,
        turn_id: str,
        seq: int,
        type_: str,
        data: dict[str, Any],
        *,
        owner: tuple[str, str] | None = None,
    ) -> bool:
        """Append the turn's event number `seq` unless it was appended before (a publish
        run again); False if it was. `owner` is recorded again either way."""
        added = await self._append_once(
            keys=[stream_key(turn_id), published_key(turn_id), owner_key(turn_id)],
            args=[
                seq,
                type_,
                json.dumps(data),
                STREAM_TTL_SECONDS,
                _owner_value(*owner) if owner else "",
                MAX_STREAM_ENTRIES,
            ],
        )
        return bool(added)

    async def has_entries(self, turn_id: str) -> bool:
        return bool(await self._redis.exists(stream_key(turn_id)))

    async def request_cancel(self, turn_id: str) -> None:
        await self._redis.set(cancel_key(turn_id), "1", ex=CANCEL_TTL_SECONDS)

    async def cancel_requested(self, turn_id: str) -> bool:
        return bool(await self._redis.exists(cancel_key(turn_id)))

    async def set_owner(self, turn_id: str, session_id: str, user_id: str) -> None:
        await self._redis.set(
            owner_key(turn_id), _owner_value(session_id, user_id), ex=STREAM_TTL_SECONDS
        )

    async def forget(self, turn_ids: list[str]) -> None:
        """Drop turns' streams and owners (their session was deleted)."""
        if turn_ids:
            await self._redis.delete(
                *(
                    k
                    for t in turn_ids
                    for k in (stream_key(t), owner_key(t), cancel_key(t), published_key(t))
                )
            )

    async def owner(self, turn_id: str) -> dict[str, str] | None:
        raw = await self._redis.get(owner_key(turn_id))
        return dict(json.loads(raw)) if raw else None

    async def uptime_seconds(self) -> float:
        """How long this Redis has been up: owners recorded before a restart are gone
        until the worker records them again (on the turn's next published event)."""
        info: Any = await self._redis.info("server")
        return float(info.get("uptime_in_seconds", 0))

    async def read(
        self, turn_id: str, after: str = "0-0", *, block_ms: int = 15_000
    ) -> AsyncIterator[StreamEvent | None]:
        """Yield events after `after` until a terminal one; None marks an idle interval
        (the caller sends a keep-alive), so a silent turn never holds a reader forever."""
        key, last = stream_key(turn_id), after
        while True:
            # RESP2 with decode_responses: [[key, [(id, {field: value}), ...]]]
            batch: Any = await self._redis.xread({key: last}, count=200, block=block_ms)
            if not batch:
                yield None
                continue
            entries: list[tuple[str, dict[str, str]]] = batch[0][1]
            for entry_id, fields in entries:
                last = entry_id
                event = StreamEvent(entry_id, fields["type"], json.loads(fields["data"]))
                yield event
                if event.type in TERMINAL_EVENTS:
                    return


# A session's feed: what reaches its user outside their own turns (a handed-off session's
# agent messages and handoff changes), kept a day, the last FEED_ENTRIES of them.
FEED_TTL_SECONDS = 86_400
FEED_ENTRIES = 500


def feed_key(session_id: str) -> str:
    return f"chat:feed:{session_id}"


class SessionFeed:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def append(self, session_id: str, type_: str, data: dict[str, Any]) -> None:
        key = feed_key(session_id)
        async with self._redis.pipeline(transaction=False) as pipe:
            fields = {"type": type_, "data": json.dumps(data)}
            pipe.xadd(key, fields, maxlen=FEED_ENTRIES)  # type: ignore[arg-type]
            pipe.expire(key, FEED_TTL_SECONDS)
            await pipe.execute()

    async def last_id(self, session_id: str) -> str:
        """Where a reader that wants only what comes next starts."""
        entries: Any = await self._redis.xrevrange(feed_key(session_id), count=1)
        return str(entries[0][0]) if entries else "0-0"

    async def read(
        self, session_id: str, after: str = "0-0", *, block_ms: int = 15_000
    ) -> AsyncIterator[StreamEvent | None]:
        """Events after `after`, without end; None marks an idle interval (a keep-alive)."""
        key, last = feed_key(session_id), after
        while True:
            batch: Any = await self._redis.xread({key: last}, count=100, block=block_ms)
            if not batch:
                yield None
                continue
            for entry_id, fields in batch[0][1]:
                last = entry_id
                yield StreamEvent(entry_id, fields["type"], json.loads(fields["data"]))

    async def forget(self, session_id: str) -> None:
        await self._redis.delete(feed_key(session_id))
