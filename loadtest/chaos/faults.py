"""The faults: each one is injected while messages are in flight and returns once it has
ended (the process is back and ready, or the scripted misbehaviour is used up and over),
with the window in which it was active.

Processes are SIGKILLed and restarted through the stack; the fake OpenAI and Databricks
servers are scripted over HTTP (`/_fake/script`, FIFO steps, see loadtest/fakes/scripting)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from loadtest.chaos.stack import ChaosStack

# The fake LLM's everyday behaviour, queued after any fault's steps (steps are FIFO).
BASELINE_LATENCY_MS = 50.0
BASELINE_TPS = 40.0
MID_STREAM_TPS = 4.0  # slow enough that a stream is still running when Redis dies
_FOREVER = 1_000_000_000
SCRIPT_DEADLINE = 150.0  # a scripted fault not used up by then is withdrawn


@dataclass
class Window:
    """When a fault was active. `cuts`: spans in which the process serving the clients'
    connections was dead, so a connection breaking then is the fault, not a broken stream."""

    started: float
    ended: float = 0.0
    cuts: list[tuple[float, float]] = field(default_factory=list)
    note: str = ""


Trigger = Literal["accepted", "streaming"]
Inject = Callable[["FaultContext"], Awaitable[Window]]


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    inject: Inject
    trigger: Trigger = "accepted"  # after the first messages are accepted, or mid-stream
    topic: Literal["chat", "company"] = "chat"  # what the phase's messages ask
    tokens_per_second: float = BASELINE_TPS


@dataclass
class FaultContext:
    stack: ChaosStack
    sessions: int  # how many requests a scripted fault affects
    out: Callable[[str], None]


async def _script(root: str, steps: list[dict[str, Any]], *, replace: bool = True) -> None:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        if replace:
            (await http.delete(f"{root}/_fake/script")).raise_for_status()
        if steps:
            (await http.post(f"{root}/_fake/script", json=steps)).raise_for_status()


async def _pending(root: str) -> int:
    """Scripted fault requests not yet used (the baseline step never runs out)."""
    async with httpx.AsyncClient(trust_env=False, timeout=10) as http:
        resp = await http.get(f"{root}/_fake/script")
    steps = resp.json()["pending"]
    return sum(int(s.get("times", 1)) for s in steps if int(s.get("times", 1)) < _FOREVER)


def baseline(tokens_per_second: float = BASELINE_TPS) -> dict[str, Any]:
    return {
        "endpoint": "chat",
        "latency_ms": BASELINE_LATENCY_MS,
        "tokens_per_second": tokens_per_second,
        "times": _FOREVER,
    }


async def set_baseline(stack: ChaosStack, tokens_per_second: float) -> None:
    await _script(stack.llm_root, [baseline(tokens_per_second)])
    if stack.databricks_root is not None:
        await _script(stack.databricks_root, [])


async def _used_up(root: str) -> float:
    """Wait until every scripted fault step was taken; when that happened."""
    deadline = time.monotonic() + SCRIPT_DEADLINE
    while await _pending(root) > 0:
        if time.monotonic() > deadline:
            await _script(root, [])  # withdrawn: the fault is over either way
            break
        await asyncio.sleep(0.2)
    return time.monotonic()


def _llm_steps(steps: list[dict[str, Any]]) -> Inject:
    """A scripted LLM fault: `steps` for the next generations, then the baseline again.
    It ends once the steps are used and the last one's own delay is over."""

    async def inject(ctx: FaultContext) -> Window:
        started = time.monotonic()
        scripted = [{"endpoint": "chat", "stream": True, "times": ctx.sessions, **s} for s in steps]
        await _script(ctx.stack.llm_root, [*scripted, baseline()])
        used = await _used_up(ctx.stack.llm_root)
        last = steps[-1]
        delay = float(last.get("latency_ms", 0)) / 1000
        if last.get("hang"):
            delay = ctx.stack.openai_timeout  # a hung request ends when the service gives up
        await asyncio.sleep(delay)  # the fault's own duration, not a synchronisation
        return Window(started, used + delay, note=f"{ctx.sessions} generations per step")

    return inject


async def _slow_tool(ctx: FaultContext) -> Window:
    started = time.monotonic()
    root = ctx.stack.databricks_root
    assert root is not None
    step = {"endpoint": "query", "latency_ms": 20_000, "times": ctx.sessions}
    await _script(root, [step])
    used = await _used_up(root)
    await asyncio.sleep(20)
    return Window(started, used + 20, note=f"{ctx.sessions} vector-search queries")


def _kill_restart(names: tuple[str, ...], down_for: float = 0.0, *, cut: bool = False) -> Inject:
    """SIGKILL the processes, leave them down `down_for` seconds, start them again."""

    async def inject(ctx: FaultContext) -> Window:
        started = time.monotonic()
        for name in names:
            ctx.stack.kill(name)
        await asyncio.sleep(down_for)  # the outage's length, not a synchronisation
        await asyncio.gather(*(asyncio.to_thread(ctx.stack.restart, n) for n in names))
        ended = time.monotonic()
        window = Window(started, ended, note=f"down {ended - started:.1f} s")
        if cut:
            window.cuts.append((started, ended))
        return window

    return inject


async def _postgres_restart(ctx: FaultContext) -> Window:
    started = time.monotonic()
    await asyncio.to_thread(ctx.stack.restart_postgres, "immediate")
    ended = time.monotonic()
    return Window(started, ended, note=f"down {ended - started:.1f} s")


FAULTS: dict[str, Fault] = {
    f.name: f
    for f in (
        Fault("worker-kill", "one worker SIGKILLed, restarted", _kill_restart(("worker",))),
        Fault(
            "workers-kill",
            "both workers SIGKILLed, restarted after 2 s",
            _kill_restart(("worker", "worker2"), 2.0),
        ),
        Fault("postgres-restart", "Postgres restarted -m immediate", _postgres_restart),
        Fault("redis-kill-10s", "Redis SIGKILLed for 10 s", _kill_restart(("redis",), 10.0)),
        Fault(
            "redis-mid-stream",
            "Redis SIGKILLed mid-stream, back after 3 s",
            # Down long enough that the service's reconnect-on-first-use retry fails too
            # (back at once, the retry hid the kill and no stream saw it).
            _kill_restart(("redis",), 3.0),
            trigger="streaming",
            tokens_per_second=MID_STREAM_TPS,
        ),
        Fault(
            "gateway-kill",
            "the gateway SIGKILLed, restarted",
            _kill_restart(("gateway",), cut=True),
        ),
        Fault(
            "temporal-restart",
            "the Temporal dev server SIGKILLed, restarted on its SQLite file",
            _kill_restart(("temporal",)),
        ),
        Fault(
            "provider-500-429",
            "the provider answers 500, then 429",
            _llm_steps([{"status": 500}, {"status": 429, "retry_after": 1}]),
        ),
        Fault(
            "provider-hang-60s",
            "the provider hangs (60 s, until the service's timeout)",
            _llm_steps([{"hang": True}]),
        ),
        Fault("slow-first-token-8s", "first token after 8 s", _llm_steps([{"latency_ms": 8000}])),
        Fault(
            "slow-first-token-30s", "first token after 30 s", _llm_steps([{"latency_ms": 30000}])
        ),
        Fault(
            "slow-tool-20s",
            "company search (fake Databricks) answers after 20 s",
            _slow_tool,
            topic="company",
        ),
    )
}
SHORT = ("redis-mid-stream", "worker-kill", "slow-first-token-8s", "postgres-restart")
