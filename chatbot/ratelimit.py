"""Per-user sliding-window rate limit in Redis: one sorted set of request times per user,
trimmed and counted atomically in a Lua script, so gateways share the window."""

from __future__ import annotations

import time
import uuid

from redis.asyncio import Redis

from chatbot.errors import RateLimited

WINDOW_SECONDS = 60.0

# KEYS[1] = window key; ARGV = now, window, limit, member.
# Returns 0 when admitted, else the seconds until the oldest request leaves the window.
_SLIDING_WINDOW = """
local key, now, window, limit = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
if redis.call('ZCARD', key) >= limit then
  local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  return tostring(tonumber(oldest[2]) + window - now)
end
redis.call('ZADD', key, now, ARGV[4])
redis.call('EXPIRE', key, math.ceil(window))
return '0'
"""


async def enforce(redis: Redis, user_id: str, *, limit_per_minute: int) -> None:
    if limit_per_minute <= 0:
        return
    wait = float(
        await redis.eval(
            _SLIDING_WINDOW,
            1,
            f"ratelimit:messages:{user_id}",
            time.time(),
            WINDOW_SECONDS,
            limit_per_minute,
            uuid.uuid4().hex,
        )
    )
    if wait > 0:
        raise RateLimited(
            f"rate limit of {limit_per_minute} messages a minute reached; retry in {wait:.0f} s",
            retry_after=wait,
        )
