"""What one benchmark run does: which scenarios at which sizes, the fake LLM's profiles,
the floor's sample counts, where the stack comes from and where results go."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from loadtest.fakes.openai_server import split_tokens
from loadtest.scenarios.catalog import LlmProfile, Scenario

# A scripted step is used this many times: in effect, until the next profile replaces it.
_UNTIL_REPLACED = 1_000_000_000


@dataclass(frozen=True)
class LlmBehaviour:
    """How the fake LLM answers: latency to the first token, then tokens at a rate."""

    latency_ms: float
    tokens_per_second: float
    reply: str

    @property
    def tokens(self) -> int:
        return len(split_tokens(self.reply))

    @property
    def own_ms(self) -> float:
        """The fake's own time for one reply (the first token, then a gap before each
        further one), which the orchestration overhead leaves out."""
        gap = 1000 / self.tokens_per_second if self.tokens_per_second else 0.0
        return self.latency_ms + gap * max(self.tokens - 1, 0)

    def as_dict(self) -> dict[str, float | int]:
        return {
            "latency_ms": self.latency_ms,
            "tokens_per_second": self.tokens_per_second,
            "reply_tokens": self.tokens,
            "own_ms": self.own_ms,
        }


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
        self._call("DELETE")
        step = {
            "endpoint": "chat",
            "latency_ms": behaviour.latency_ms,
            "tokens_per_second": behaviour.tokens_per_second,
            "reply": behaviour.reply,
            "times": _UNTIL_REPLACED,
        }
        self._call("POST", [step])
