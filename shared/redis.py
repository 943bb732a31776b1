"""The Redis clients, built from settings.

Every client has explicit timeouts and a pool that waits for a free connection (redis-py's
plain pool raises at its limit, and its default socket timeout of 5 s cut every blocking
read of a token stream). Outages surface as `RedisUnavailable` errors, which the gateway
answers with 503 and Retry-After."""

from __future__ import annotations

from typing import TYPE_CHECKING

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

if TYPE_CHECKING:  # shared.config imports modules that use REDIS_UNAVAILABLE
    from shared.config import Settings

# redis-py's outage errors: neither is an OSError. BusyLoadingError and "no connection
# available" (a full pool) are ConnectionErrors too.
REDIS_UNAVAILABLE: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)


def _url(settings: Settings) -> str:
    if settings.redis_url is None:
        raise ValueError("REDIS_URL is not set (run `chatbot dev` to start an embedded Redis)")
    return settings.redis_url.get_secret_value()


def _client(url: str, *, max_connections: int, socket_timeout: float, wait: float) -> Redis:
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=wait,
        decode_responses=True,
        socket_timeout=socket_timeout,
        socket_connect_timeout=min(socket_timeout, 5.0),
        health_check_interval=30,
        # A connection the server dropped (a restart) is found dead on its next use:
        # reconnect and send again, twice at most, so the first request after Redis comes
        # back is not the one that pays. Timeouts are not retried: they already waited.
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError],
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes it too


def redis_from_settings(settings: Settings) -> Redis:
    """The client for commands: each one answers within REDIS_SOCKET_TIMEOUT_SECONDS."""
    timeout = settings.redis_socket_timeout_seconds
    return _client(
        _url(settings),
        max_connections=settings.redis_max_connections,
        socket_timeout=timeout,
        wait=timeout,
    )


def stream_block_ms(settings: Settings) -> int:
    """How long one read of a token stream waits for an entry: one keep-alive interval."""
    return max(100, int(settings.stream_keepalive_seconds * 1000))


def stream_redis_from_settings(settings: Settings) -> Redis:
    """The client for blocking stream reads (XREAD BLOCK): its socket timeout lies above
    the block, so a quiet stream is never cut, and its pool is apart from the commands'."""
    timeout = settings.redis_socket_timeout_seconds
    return _client(
        _url(settings),
        max_connections=settings.redis_stream_connections,
        socket_timeout=stream_block_ms(settings) / 1000 + timeout,
        wait=timeout,
    )
