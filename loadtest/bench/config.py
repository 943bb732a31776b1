"""What one benchmark run does: which scenarios at which sizes, the fake LLM's profiles,
the floor's sample counts, where the stack comes from and where results go."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from loadtest.fakes.openai_server import (
    DEFAULT_CITATIONS,
    split_tokens,
    streamed_pieces,
    with_citations,
)
from loadtest.fakes.scripting import ToolCallStep
from loadtest.scenarios.catalog import LlmProfile, Scenario

# A scripted step is used this many times: in effect, until the next profile replaces it.
_UNTIL_REPLACED = 1_000_000_000

# What the fake model asks for in the first round of a tool-calling scenario's turns: two
# searches, which need no approval and run in parallel. search_web asks the fake's search
# model in turn; search_companies searches Postgres (the sample companies).
TOOL_TURN_CALLS = (
    ToolCallStep(name="search_companies", arguments={"query": "industrial sensor suppliers"}),
    ToolCallStep(name="search_web", arguments={"query": "industrial sensor market news"}),
)


@dataclass(frozen=True)
class LlmBehaviour:
    """How the fake LLM answers: latency to the first token, then tokens at a rate. With
    `tool_calls`, a turn is a tool-calling one: the first round (tools offered, the user's
    message last) asks for those calls, and the round carrying their results answers."""

    latency_ms: float
    tokens_per_second: float
    reply: str
    tool_calls: tuple[ToolCallStep, ...] = ()

    @property
    def tokens(self) -> int:
        return len(split_tokens(self.reply))

    @property
    def _gap_ms(self) -> float:
        return 1000 / self.tokens_per_second if self.tokens_per_second else 0.0

    @property
    def _before_answer_ms(self) -> float:
        """The fake's own time before the answering round: the round that asks for the
        calls (streamed), then the web search's (unstreamed, answered in one piece after
        a gap per token; it runs in parallel with the company search, which has none)."""
        if not self.tool_calls:
            return 0.0
        asking = self.latency_ms + self._gap_ms * (streamed_pieces("", self.tool_calls) - 1)
        searching = 0.0
        if any(c.name == "search_web" for c in self.tool_calls):
            answer, _ = with_citations(self.reply, DEFAULT_CITATIONS)
            searching = self.latency_ms + self._gap_ms * len(split_tokens(answer))
        return asking + searching

    @property
    def first_token_ms(self) -> float:
        """The fake's own time to the reply's first token, which TTFT overhead leaves out."""
        return self._before_answer_ms + self.latency_ms

    @property
    def own_ms(self) -> float:
        """The fake's own time for one turn (for a reply, the first token, then a gap
        before each further one), which the orchestration overhead leaves out."""
        return self.first_token_ms + self._gap_ms * max(self.tokens - 1, 0)

    def as_dict(self) -> dict[str, Any]:
        figures: dict[str, Any] = {
            "latency_ms": self.latency_ms,
            "tokens_per_second": self.tokens_per_second,
            "reply_tokens": self.tokens,
            "own_ms": self.own_ms,
        }
        if self.tool_calls:
            figures["tool_calls"] = [c.name for c in self.tool_calls]
            figures["first_token_ms"] = self.first_token_ms
        return figures


def reply_of(tokens: int) -> str:
    return " ".join(f"word{i}" for i in range(tokens))


@dataclass(frozen=True)
class BenchConfig:
    scenarios: list[Scenario]
    out_root: Path
    smoke: bool = False
    llm_latency_ms: float = 100.0
    llm_tokens_per_second: float = 200.0
    reply_tokens: int = 20
    slow_llm_ms: float = 1000.0
    floor_samples: int = 200
    floor_seconds: float = 4.0
    floor_concurrency: tuple[int, ...] = (1, 5, 20, 50)
    # Per-turn timelines: (sessions at once, turns in each); none for the chaos suite.
    timelines: tuple[tuple[int, int], ...] = ()
    temporal_address: str | None = None
    temporal_in_memory: bool = True
    temporal_config: tuple[str, ...] = ()
    temporal_args: tuple[str, ...] = ()
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: int = 1
    # The direct-path app (the bench compares against it; the chaos suite has no use for it).
    direct: bool = True
    # A fake Databricks Vector Search server, with the service pointed at it.
    databricks: bool = False
    # Postgres and Redis embedded and owned by the stack, whatever DATABASE_URL and
    # REDIS_URL say (the chaos suite kills and restarts them).
    own_backends: bool = False

    def llm(self, profile: LlmProfile) -> LlmBehaviour:
        reply = reply_of(self.reply_tokens)
        if profile == "zero":
            return LlmBehaviour(0.0, 0.0, reply)
        if profile == "slow":
            return LlmBehaviour(self.slow_llm_ms, self.llm_tokens_per_second, reply)
        return LlmBehaviour(self.llm_latency_ms, self.llm_tokens_per_second, reply)

    def behaviour(self, scenario: Scenario) -> LlmBehaviour:
        """The fake LLM's behaviour during `scenario`."""
        llm = self.llm(scenario.llm)
        return replace(llm, tool_calls=TOOL_TURN_CALLS) if scenario.tool_calling else llm

    @property
    def cache(self) -> bool:
        """Some scenario's turns go through a gateway whose workers cache replies."""
        return any(s.questions for s in self.scenarios)

    @property
    def tool_calling(self) -> bool:
        """Some scenario's turns go through a gateway with TOOL_CALLING on."""
        return any(s.tool_calling for s in self.scenarios)


class FakeLlmControl:
    """Sets the running fake OpenAI server's behaviour through its `/_fake/script` route."""

    def __init__(self, root_url: str) -> None:
        self._url = f"{root_url}/_fake/script"

    def _call(self, method: str, body: object | None = None) -> None:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self._url, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as resp:
            resp.read()

    def apply(self, behaviour: LlmBehaviour) -> None:
        """Rules rather than a queue (the first step that fits a request answers it, and
        stays), so concurrent turns each get the answer their own request calls for."""
        self._call("DELETE")
        timing = {
            "latency_ms": behaviour.latency_ms,
            "tokens_per_second": behaviour.tokens_per_second,
            "times": _UNTIL_REPLACED,
        }
        steps: list[dict[str, Any]] = []
        if behaviour.tool_calls:
            # A turn's first round: tools offered, the user's message last. The next round
            # ends with the calls' results, and gets the reply below, as everything else.
            calls = [c.model_dump(exclude_none=True) for c in behaviour.tool_calls]
            first = {"tools": True, "last_role": "user", "stream": True, "tool_calls": calls}
            steps.append({"endpoint": "chat", **first, **timing})
        steps.append({"endpoint": "chat", "reply": behaviour.reply, **timing})
        self._call("POST", steps)
