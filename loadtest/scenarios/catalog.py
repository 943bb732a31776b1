"""The scenarios, in one place: who talks, how much, how fast, and against which fake LLM.

A scenario is played by `users` simulated users at once. Each user authenticates, creates
a session, sends `messages` messages in it one after another (waiting `think` seconds
between them), and does that `rounds` times. A time-boxed scenario (`duration`) keeps its
users talking, in new sessions after every `messages`, until the time is up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

# How the benchmark sets the fake LLM for a scenario (see loadtest.bench.config):
# "default" = the run's latency and token rate, "zero" = no delay at all, "slow" = 1 s.
LlmProfile = Literal["default", "zero", "slow"]
# "service" = the gateway (Temporal in between); "direct" = a plain FastAPI handler.
Target = Literal["service", "direct"]


@dataclass(frozen=True)
class Scenario:
    name: str
    summary: str
    users: int
    messages: int
    rounds: int = 1
    think: tuple[float, float] = (0.0, 0.0)
    duration: float | None = None
    streaming: bool = False
    spawn_rate: float = 100.0
    llm: LlmProfile = "default"
    target: Target = "service"
    # Through a gateway with TOOL_CALLING on, the fake model asking for two searches in its
    # first round and answering in the next (loadtest.bench.config.TOOL_TURN_CALLS).
    tool_calling: bool = False
    # The chat scenario of the same shape, whose figures a tool-calling one is held against.
    counterpart: str | None = None
    # Each message one of this many questions (loadtest.scenarios.users.QUESTIONS), so
    # they repeat: through a gateway whose workers have CACHE_MODE=exact, the response
    # cache's hit rate and the latency it saves.
    questions: int = 0

    def __post_init__(self) -> None:
        if self.users < 1 or self.messages < 1 or self.rounds < 1:
            raise ValueError(f"{self.name}: users, messages and rounds must be at least 1")
        low, high = self.think
        if low < 0 or high < low:
            raise ValueError(f"{self.name}: think time must be 0 <= min <= max")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"{self.name}: duration must be more than 0 s")
        if self.spawn_rate <= 0:
            raise ValueError(f"{self.name}: spawn rate must be more than 0 users/s")
        if self.questions < 0 or (self.questions and self.tool_calling):
            raise ValueError(f"{self.name}: questions must be 0 or more, and not with tools")

    @property
    def planned_messages(self) -> int | None:
        """Messages the scenario sends when everything answers; None when time-boxed."""
        if self.duration is not None:
            return None
        return self.users * self.rounds * self.messages

    @property
    def time_bound(self) -> float:
        """Seconds after which the scenario is stopped whatever happens: generous, so only
        a stuck deployment reaches it, but everything ends by itself."""
        if self.duration is not None:
            return self.duration + 120.0
        turns = self.users * self.rounds * self.messages
        # Room for each user's turns one after another at 30 s, and for all turns at 2/s.
        return 120.0 + 30.0 * self.rounds * self.messages + turns / 2 + self.users / self.spawn_rate

    def with_changes(self, **changes: object) -> Scenario:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_BASE = (
    Scenario(
        "baseline",
        "1 user: one session, one message (repeated in new sessions for a distribution)",
        users=1,
        messages=1,
        rounds=10,
    ),
    Scenario(
        "sequential",
        "1 user: 10 messages one after another in a session, 3 sessions (warm workflow, "
        "no contention)",
        users=1,
        messages=10,
        # 30 turns for the TTFT and stream-overhead targets; not 30 in one session, whose
        # turns past the 10th would retrieve older messages (another step).
        rounds=3,
    ),
    Scenario(
        "concurrent",
        "20 sessions at once, one message each (3 rounds)",
        users=20,
        messages=1,
        rounds=3,
    ),
    Scenario("high", "20 sessions x 5 messages = 100 turns", users=20, messages=5),
    Scenario(
        "sustained",
        "100 users talking with random think time (0.2-1 s) for a while; zero-latency LLM",
        users=100,
        messages=10,
        think=(0.2, 1.0),
        duration=60.0,
        llm="zero",
    ),
    Scenario(
        "scale",
        "1000 sessions x 5 messages = 5000 turns",
        users=1000,
        messages=5,
        spawn_rate=100.0,
    ),
    Scenario(
        "llm1s",
        "20 sessions x 5 messages with a 1 s LLM, through the service",
        users=20,
        messages=5,
        llm="slow",
    ),
    Scenario(
        "llm1s-direct",
        "the same with a plain FastAPI handler calling the LLM (no Temporal)",
        users=20,
        messages=5,
        llm="slow",
        target="direct",
    ),
)


def _streaming(base: Scenario) -> Scenario:
    return base.with_changes(
        name=f"{base.name}-stream",
        summary=f"{base.summary}; SSE, time to first token",
        streaming=True,
    )


def _tools(base: Scenario, name: str) -> Scenario:
    return base.with_changes(
        name=name,
        summary=f"{base.summary}; each turn two tool calls (company and web search), "
        "then the answer",
        tool_calling=True,
        counterpart=base.name,
    )


def _direct(base: Scenario) -> Scenario:
    return base.with_changes(
        name=f"{base.name}-direct",
        summary=f"{base.summary}; a plain FastAPI handler calling the LLM (no Temporal)",
        target="direct",
    )


_STREAMED = tuple(
    _streaming(s) for s in _BASE if s.name in ("baseline", "sequential", "concurrent", "high")
)
SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        *_BASE,
        *_STREAMED,
        # The LLM's time to first token as a client sees it, through the same HTTP layers
        # and client library but no orchestration: what the service's TTFT is held against.
        *(_direct(s) for s in _STREAMED if s.name == "sequential-stream"),
        # Tool-calling turns (model -> two searches in parallel -> model), streamed.
        *(_tools(s, "tools-sequential") for s in _STREAMED if s.name == "sequential-stream"),
        *(_tools(s, "tools") for s in _STREAMED if s.name == "high-stream"),
        Scenario(
            "repeated",
            "10 users x 10 sessions, each asking one of 3 questions a round (so 7 of 10 "
            "are repeats); CACHE_MODE=exact, streamed: hit rate and latency saved",
            users=10,
            messages=1,
            rounds=10,
            streaming=True,
            questions=3,
        ),
    )
}

# Small versions for a smoke run: a few seconds each, only to prove every path works.
SMOKE_CHANGES: dict[str, dict[str, object]] = {
    "baseline": {"rounds": 2},
    "sequential": {"messages": 3, "rounds": 1},
    "concurrent": {"users": 5, "rounds": 1},
    "high": {"users": 5, "messages": 2},
    "sustained": {"users": 5, "messages": 3, "think": (0.05, 0.2), "duration": 3.0},
    "scale": {"users": 10, "messages": 2},
    "llm1s": {"users": 2, "messages": 2},
    "llm1s-direct": {"users": 2, "messages": 2},
    "tools-sequential": {"messages": 3, "rounds": 1},
    "tools": {"users": 5, "messages": 2},
    "repeated": {"users": 2, "rounds": 4},
}


def scenario_names() -> list[str]:
    return list(SCENARIOS)


def get_scenario(name: str, *, smoke: bool = False) -> Scenario:
    try:
        scenario = SCENARIOS[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}") from None
    if smoke:
        changes = SMOKE_CHANGES.get(name.removesuffix("-direct").removesuffix("-stream"), {})
        scenario = scenario.with_changes(**changes)
    return scenario
