"""Serve one local model the way `chatbot dev` does, send it every case one at a time (a
user waiting for each answer), and time and score each reply."""

from __future__ import annotations

import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from openai import OpenAI

from chatbot.embedded.llm import LocalModel, llm_server_argv
from chatbot.embedded.process import EmbeddedError, http_ok, log_tail, wait_for
from loadtest.answers.cases import Case, prompt
from loadtest.answers.checks import score
from shared.config import Settings
from workflows.tools import fixed_reply

START_TIMEOUT = 180.0  # loading a 1 GB model from a cold disk


@dataclass
class Reply:
    case: Case
    text: str
    ttft_ms: float
    total_ms: float
    completion_tokens: int
    failures: dict[str, str | None]
    fixed: bool = False  # the service's fixed reply (workflows.tools.fixed_reply)

    @property
    def passed(self) -> bool:
        return not any(self.failures.values())

    @property
    def tokens_per_second(self) -> float:
        generating = (self.total_ms - self.ttft_ms) / 1000
        return (self.completion_tokens - 1) / generating if generating > 0 else 0.0


@dataclass
class ModelRun:
    model: LocalModel
    replies: list[Reply] = field(default_factory=list)
    load_seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        replies = self.replies
        timed = [r for r in replies if not r.fixed]
        checks = [f for r in replies for f in r.failures.values()]

        def share(name: str) -> float | None:
            got = [r.failures[name] is None for r in replies if name in r.failures]
            return sum(got) / len(got) if got else None

        return {
            "model": self.model.alias,
            "file_mb": round(self.model.size_mb),
            "cases": len(replies),
            "cases_passed": sum(r.passed for r in replies),
            "checks_passed": sum(c is None for c in checks) / len(checks) if checks else 0.0,
            "loops": sum(r.failures["no_loop"] is not None for r in replies),
            "grounded": self._grounded(),
            "language": share("language"),
            "no_invented_facts": share("no_current_facts"),
            "fixed_replies": len(replies) - len(timed),
            "ttft_p50_ms": _p50([r.ttft_ms for r in timed]),
            "reply_p50_ms": _p50([r.total_ms for r in timed]),
            "reply_p90_ms": _quantile([r.total_ms for r in timed], 0.9),
            "tokens_per_second_p50": _p50([r.tokens_per_second for r in timed]),
            "load_seconds": round(self.load_seconds, 1),
        }

    def _grounded(self) -> float:
        """Of the cases with tool results, the share whose reply names what they found."""
        got = [
            not (r.failures.get("mentions") or r.failures.get("mentions_one"))
            for r in self.replies
            if r.case.tools.companies is not None or r.case.tools.web is not None
        ]
        return sum(got) / len(got) if got else 0.0


def _p50(values: list[float]) -> float:
    return round(statistics.median(values), 1) if values else 0.0


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return _p50(values)
    return round(statistics.quantiles(values, n=100)[int(q * 100) - 1], 1)


class ServedModel:
    """The model on llama.cpp's server, started as `chatbot dev` starts it."""

    def __init__(self, model: LocalModel, *, port: int, log_dir: Path) -> None:
        self.model, self.port = model, port
        self.log_path = log_dir / f"llm-{model.alias}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServedModel:
        argv = llm_server_argv(model=self.model, port=self.port, aliases=[self.model.alias])
        log = self.log_path.open("wb")
        self._proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for(self._ready, timeout=START_TIMEOUT, what=f"the model {self.model.alias}")
        except EmbeddedError as err:
            self.__exit__()
            raise EmbeddedError(f"{self.model.alias} did not start: {err}") from None
        return self

    def _ready(self) -> bool:
        if self._proc is not None and self._proc.poll() is not None:
            raise EmbeddedError(f"the model server exited:\n{log_tail(self.log_path)}")
        return http_ok(f"http://127.0.0.1:{self.port}/health")

    def __exit__(self, *_: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(30)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)


def ask(client: OpenAI, model: LocalModel, case: Case, settings: Settings) -> Reply:
    fixed = fixed_reply(case.intent, case.tools, case.message)
    if fixed is not None:  # the service asks no model for this turn: score what it says
        return Reply(case, fixed, 0.0, 0.0, 0, score(fixed, case.expect), fixed=True)
    messages = prompt(case, budget=settings.context_max_tokens, model=model.alias)
    started = time.perf_counter()
    first: float | None = None
    parts: list[str] = []
    tokens = 0
    stream = client.chat.completions.create(
        model=model.alias,
        messages=[],  # sent untransformed in extra_body, as activities.llm.stream_chat does
        extra_body={"messages": messages},
        max_tokens=model.max_tokens or settings.max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        stream=True,
        stream_options={"include_usage": True},
    )
    for chunk in stream:
        if chunk.usage is not None:
            tokens = chunk.usage.completion_tokens
        text = "".join(c.delta.content or "" for c in chunk.choices)
        if text:
            first = first if first is not None else time.perf_counter()
            parts.append(text)
    done = time.perf_counter()
    reply = "".join(parts).strip()
    return Reply(
        case=case,
        text=reply,
        ttft_ms=((first or done) - started) * 1000,
        total_ms=(done - started) * 1000,
        completion_tokens=tokens or len(parts),
        failures=score(reply, case.expect),
    )


def run_model(
    model: LocalModel, cases: list[Case], settings: Settings, *, port: int, log_dir: Path
) -> ModelRun:
    run = ModelRun(model=model)
    started = time.perf_counter()
    with ServedModel(model, port=port, log_dir=log_dir):
        run.load_seconds = time.perf_counter() - started
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="local", max_retries=0)
        ask(client, model, cases[0], settings)  # warm-up: the first request pays for caches
        for case in cases:
            run.replies.append(ask(client, model, case, settings))
    return run
