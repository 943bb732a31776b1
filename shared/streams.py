"""Per-turn token streams in Redis (`turn:{turn_id}`): the worker appends, the gateway
reads from any point, so a client that reconnects resumes where it left off."""

from __future__ import annotations

from redis.asyncio import Redis

STREAM_TTL_SECONDS = 3600
MAX_STREAM_ENTRIES = 20_000


def stream_key(turn_id: str) -> str:
    return f"turn:{turn_id}"


class TokenStreamWriter:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def reset(self, turn_id: str) -> None:
        """A retried generation starts the stream again, marked so readers can restart."""
        key = stream_key(turn_id)
        if await self._redis.exists(key):
            await self._redis.xadd(key, {"type": "restart"}, maxlen=MAX_STREAM_ENTRIES)

    async def token(self, turn_id: str, text: str) -> None:
        key = stream_key(turn_id)
        await self._redis.xadd(key, {"type": "token", "text": text}, maxlen=MAX_STREAM_ENTRIES)
        await self._redis.expire(key, STREAM_TTL_SECONDS)

    async def end(self, turn_id: str) -> None:
        await self._redis.xadd(stream_key(turn_id), {"type": "end"}, maxlen=MAX_STREAM_ENTRIES)
