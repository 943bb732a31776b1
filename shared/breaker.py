"""Circuit breakers on the providers (LLM, web search, Databricks, embeddings), their
state in Redis so every worker sees the same breaker.

Closed: calls go through; a failure is noted in a sliding window. BREAKER_FAILURES
failures within BREAKER_WINDOW_SECONDS open it: for BREAKER_OPEN_SECONDS every call fails
at once with `ProviderUnavailable` instead of waiting on a provider that is down. Then it
is half-open: one call at a time goes through as a probe (a lease, so a probe that never
reports does not hold it shut); a probe that succeeds closes it, one that fails opens it
again.

Only the provider's own failures count (unreachable, timed out, 5xx), never a request it
refused (4xx): those say nothing about its health. When Redis itself is away the breaker
lets calls through: it must never be the reason a turn fails."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from redis.asyncio import Redis
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from shared.redis import REDIS_UNAVAILABLE

if TYPE_CHECKING:
    from shared.config import Settings

log = logging.getLogger(__name__)

PROVIDERS = ("llm", "web_search", "databricks", "embeddings")
State = Literal["closed", "open", "half_open"]

# KEYS: open, tripped, probe. ARGV: probe lease (ms).
# Returns -1: go (closed); 0: go, as the half-open probe; > 0: refused, ms left open
# (or the probe's lease left, while another call probes).
_GUARD = """
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return left end
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
if redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return 0 end
return math.max(redis.call('PTTL', KEYS[3]), 1)
"""

# KEYS: failures, open, tripped, probe. ARGV: now (ms), window (ms), threshold, open (ms),
# member. Returns 1 when this failure opened the breaker.
_FAILED = """
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
  redis.call('DEL', KEYS[4])
  return 1
end
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now, ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
redis.call('PEXPIRE', KEYS[1], window)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[4])
  redis.call('SET', KEYS[3], ARGV[1])
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS: failures, tripped, probe. Returns 1 when this success closed the breaker.
_SUCCEEDED = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return 1
"""


class ProviderUnavailable(Exception):
    """The provider's breaker is open: the call was not made."""

    def __init__(self, provider: str, retry_after: float, *, probing: bool = False) -> None:
        self.provider, self.retry_after = provider, retry_after
        why = (
            "another call is checking whether it is back"
            if probing
            else "it failed repeatedly just now"
        )
        super().__init__(
            f"{provider.replace('_', ' ')} is unavailable ({why}); calls to it fail at once "
            f"for the next {retry_after:.0f} s"
        )


@dataclass(frozen=True)
class BreakerState:
    provider: str
    state: State
    failures: int  # in the current window (closed)
    retry_after: float  # seconds left open


@dataclass(frozen=True)
class BreakerPolicy:
    failures: int  # 0: no breaker
    window_seconds: float
    open_seconds: float


class Breaker:
    def __init__(self, redis: Redis, provider: str, policy: BreakerPolicy, scope: str) -> None:
        self._redis = redis
        self.provider = provider
        self._policy = policy
        # Shared by the workers of one task queue: they run one configuration, so they
        # call the same providers.
        base = f"breaker:{scope}:{provider}"
        self._failures, self._open = f"{base}:failures", f"{base}:open"
        self._tripped, self._probe = f"{base}:tripped", f"{base}:probe"

    @property
    def enabled(self) -> bool:
        return self._policy.failures > 0

    async def guard(self) -> bool:
        """Raise ProviderUnavailable while open; True when this call is the probe."""
        if not self.enabled:
            return False
        lease = int(self._policy.open_seconds * 1000)
        try:
            verdict = int(
                await self._redis.eval(_GUARD, 3, self._open, self._tripped, self._probe, lease)
            )
        except REDIS_UNAVAILABLE as err:
            log.warning("breaker %s not checked (Redis away): %s", self.provider, err)
            return False
        if verdict > 0:
            is_open = await self._is_open()
            raise ProviderUnavailable(self.provider, verdict / 1000, probing=not is_open)
        return verdict == 0

    async def _is_open(self) -> bool:
        try:
            return bool(await self._redis.exists(self._open))
        except REDIS_UNAVAILABLE:
            return True

    async def failed(self) -> None:
        if not self.enabled:
            return
        p = self._policy
        try:
            opened = await self._redis.eval(
                _FAILED,
                4,
                self._failures,
                self._open,
                self._tripped,
                self._probe,
                int(time.time() * 1000),
                int(p.window_seconds * 1000),
                p.failures,
                int(p.open_seconds * 1000),
                uuid.uuid4().hex,
            )
        except REDIS_UNAVAILABLE as err:
            log.warning("breaker %s failure not noted (Redis away): %s", self.provider, err)
            return
        if int(opened):
            log.warning("breaker %s opened for %g s", self.provider, p.open_seconds)

    async def succeeded(self) -> None:
        try:
            closed = await self._redis.eval(
                _SUCCEEDED, 3, self._failures, self._tripped, self._probe
            )
        except REDIS_UNAVAILABLE as err:
            log.warning("breaker %s success not noted (Redis away): %s", self.provider, err)
            return
        if int(closed):
            log.info("breaker %s closed: the provider answered again", self.provider)

    @asynccontextmanager
    async def call(self, counts: Callable[[BaseException], bool]) -> AsyncIterator[None]:
        """Guard one call: refused while open; its outcome noted (a failure only when
        `counts` says it is the provider's)."""
        probe = await self.guard()
        try:
            yield
        except BaseException as err:
            if self.enabled and counts(err):
                await self.failed()
            elif probe:
                await self.succeeded()  # it answered, if only to refuse the request
            raise
        if probe:  # closed, the common case, costs the guard's one call and no write
            await self.succeeded()

    async def state(self) -> BreakerState:
        pipe = self._redis.pipeline(transaction=False)
        pipe.pttl(self._open)
        pipe.exists(self._tripped)
        pipe.zcard(self._failures)
        left, tripped, failures = await pipe.execute()
        if left and int(left) > 0:
            return BreakerState(self.provider, "open", 0, int(left) / 1000)
        if tripped:
            return BreakerState(self.provider, "half_open", 0, 0.0)
        return BreakerState(self.provider, "closed", int(failures or 0), 0.0)


def policy_from(settings: Settings) -> BreakerPolicy:
    return BreakerPolicy(
        settings.breaker_failures, settings.breaker_window_seconds, settings.breaker_open_seconds
    )


def breakers(redis: Redis, settings: Settings) -> dict[str, Breaker]:
    """One breaker per provider, as the worker's activities use them."""
    policy = policy_from(settings)
    return {p: Breaker(redis, p, policy, settings.temporal_task_queue) for p in PROVIDERS}


async def states(redis: Redis, settings: Settings) -> list[BreakerState]:
    return [await b.state() for b in breakers(redis, settings).values()]


def guarded(
    breaker: Breaker | None, counts: Callable[[BaseException], bool]
) -> AbstractAsyncContextManager[None]:
    """`breaker.call(counts)`, or nothing where no breaker is given."""
    return breaker.call(counts) if breaker is not None else nullcontext()


def unavailable_error(err: ProviderUnavailable) -> ApplicationError:
    """The provider's breaker is open: the activity fails now rather than retry into it
    (benign: the SDK logs it without a traceback)."""
    return ApplicationError(
        str(err),
        {"provider": err.provider, "retry_after": err.retry_after},
        type="ProviderUnavailable",
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )
