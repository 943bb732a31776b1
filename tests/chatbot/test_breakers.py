"""Circuit breakers on real Redis, and through the public API with a real worker: the fake
provider failing opens the LLM's breaker within BREAKER_FAILURES calls, turns then fail at
once with 503 `provider_unavailable` (no request reaches the provider), /ready and
/metrics show it, and one probe after BREAKER_OPEN_SECONDS closes it again."""

from __future__ import annotations

import asyncio
import re
import sys
import time
import uuid

import httpx
import pytest
from pydantic import SecretStr
from redis.asyncio import Redis
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer
from shared.breaker import Breaker, BreakerPolicy, ProviderUnavailable
from shared.config import Settings
from shared.redis import redis_from_settings
from tests.support import assert_eventually, free_port, worker_env

FAILURES, OPEN_SECONDS = 2, 4.0


def _counts(err: BaseException) -> bool:
    return isinstance(err, ConnectionError)


async def _fail(breaker: Breaker) -> None:
    with pytest.raises(ConnectionError):
        async with breaker.call(_counts):
            raise ConnectionError("provider down")


async def test_a_breaker_opens_fails_fast_and_one_probe_closes_it(redis: Redis) -> None:
    policy = BreakerPolicy(failures=3, window_seconds=30, open_seconds=0.5)
    scope = uuid.uuid4().hex
    breaker = Breaker(redis, "llm", policy, scope=scope)
    other_worker = Breaker(redis, "llm", policy, scope=scope)
    await _fail(breaker)
    with pytest.raises(ValueError):  # not the provider's failure: not counted
        async with breaker.call(_counts):
            raise ValueError("a request it refused")
    await _fail(breaker)
    assert (await breaker.state()).state == "closed" and (await breaker.state()).failures == 2
    await _fail(other_worker)  # the third, from another worker: the state is shared
    state = await breaker.state()
    assert state.state == "open" and 0 < state.retry_after <= 0.5

    with pytest.raises(ProviderUnavailable, match="fail at once") as refused:
        async with breaker.call(_counts):
            raise AssertionError("an open breaker made the call")
    assert refused.value.provider == "llm" and refused.value.retry_after > 0

    async def half_open() -> None:
        assert (await breaker.state()).state == "half_open"

    await assert_eventually(half_open, within=5)
    # One probe at a time: while it runs, other calls are refused.
    async with breaker.call(_counts):
        with pytest.raises(ProviderUnavailable, match="checking whether it is back"):
            await other_worker.guard()
    assert (await breaker.state()).state == "closed"

    # A probe that fails opens it again at once.
    for _ in range(3):
        await _fail(breaker)
    await assert_eventually(half_open, within=5)
    await _fail(breaker)
    assert (await breaker.state()).state == "open"


async def test_without_redis_the_breaker_lets_calls_through(settings: Settings) -> None:
    gone = redis_from_settings(
        settings.model_copy(update={"redis_url": SecretStr(f"redis://127.0.0.1:{free_port()}/0")})
    )
    breaker = Breaker(gone, "web_search", BreakerPolicy(1, 30, 30), scope="x")
    for _ in range(3):
        await _fail(breaker)  # noted nowhere, refused never
    async with breaker.call(_counts):
        pass
    await gone.aclose()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"breaker_failures": FAILURES, "breaker_open_seconds": OPEN_SECONDS}
    )


async def test_the_llm_failing_opens_its_breaker_and_recovery_closes_it(
    worker: Worker,
    alice: httpx.AsyncClient,
    gateway: str,
    llm: FakeOpenAIServer,
    settings: Settings,
) -> None:
    llm.script({"status": 500, "times": 100})
    started = time.monotonic()
    failed = await alice.post("/sessions/brk/messages", json={"text": "hello"})
    took = time.monotonic() - started
    assert failed.status_code == 503, failed.text
    error = failed.json()["error"]
    assert error["code"] == "provider_unavailable" and "llm is unavailable" in error["message"]
    assert int(failed.headers["Retry-After"]) >= 1
    chat = [r for r in llm.requests if r["endpoint"] == "chat"]
    assert len(chat) == FAILURES  # opened within the configured count, then not called
    async with httpx.AsyncClient(base_url=gateway) as anyone:
        ready = (await anyone.get("/ready")).json()
        assert ready["breakers"]["llm"] == "open" and ready["breakers"]["web_search"] == "closed"
        scraped = (await anyone.get("/metrics")).text
        assert 'chatbot_breaker_state{provider="llm",state="open"} 1.0' in scraped

    # While open: refused at once, and the provider is not asked.
    started = time.monotonic()
    fast = await alice.post("/sessions/brk-2/messages", json={"text": "hello again"})
    fast_took = time.monotonic() - started
    assert fast.status_code == 503 and fast.json()["error"]["code"] == "provider_unavailable"
    assert len([r for r in llm.requests if r["endpoint"] == "chat"]) == FAILURES
    print(f"\nfailing turn {took:.2f} s (retries until open), refused turn {fast_took:.2f} s")

    ops = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatbot",
        "ops",
        "breakers",
        env=worker_env(settings),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    raw_out, raw_err = await asyncio.wait_for(ops.communicate(), 60)
    out = raw_out.decode()
    assert ops.returncode == 0, raw_err.decode()
    # Open, or half-open by now (a process takes a moment to start).
    assert re.search(r"llm\s+(open\s+failing fast for \d+ s more|half_open)", out), out
    assert re.search(r"web_search\s+closed\s+0 failures", out), out

    llm.reset()  # the provider is back

    async def half_open() -> None:
        async with httpx.AsyncClient(base_url=gateway) as anyone:
            assert (await anyone.get("/ready")).json()["breakers"]["llm"] == "half_open"

    await assert_eventually(half_open, within=OPEN_SECONDS + 10, interval=0.2)
    ok = await alice.post("/sessions/brk-3/messages", json={"text": "hello once more"})
    assert ok.status_code == 200, ok.text
    async with httpx.AsyncClient(base_url=gateway) as anyone:
        assert (await anyone.get("/ready")).json()["breakers"]["llm"] == "closed"
