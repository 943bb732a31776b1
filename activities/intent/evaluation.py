"""Scoring a router on a labelled set: accuracy overall, per class (recall), per language
and per difficulty where the set labels them (`lang`, `difficulty`; a missing `lang` is
guessed), a confusion matrix (rows = expected, columns = predicted), latency percentiles,
and the keyword baseline on the same set."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO

from activities.intent.baseline import keyword_intent
from activities.intent.classifier import INTENTS
from activities.intent.router import Decision
from shared.language import looks_spanish
from shared.models import Intent


class InputError(ValueError):
    """A line of the input that is not what it must be; the message names the line."""


@dataclass(frozen=True)
class Item:
    line: int
    text: str
    expected: Intent | None
    lang: str = ""
    difficulty: str = ""


def _label(row: dict[str, object], key: str, name: str, number: int) -> str:
    value = row.get(key, "")
    if not isinstance(value, str):
        raise InputError(f"{name}:{number}: '{key}' must be a string when given")
    return value.strip()


def read_items(stream: IO[str], name: str, *, labelled: bool) -> Iterator[Item]:
    """JSON lines with `text` (and `intent` when labelled); blank lines are skipped."""
    for number, raw in enumerate(stream, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            raise InputError(f"{name}:{number}: not a JSON object ({err.msg})") from None
        if not isinstance(row, dict):
            raise InputError(f"{name}:{number}: expected a JSON object with a 'text' field")
        text = row.get("text")
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{name}:{number}: needs a non-empty string field 'text'")
        expected = row.get("intent")
        if labelled and expected not in INTENTS:
            raise InputError(
                f"{name}:{number}: needs an 'intent' field, one of {', '.join(INTENTS)}"
            )
        lang = _label(row, "lang", name, number) or ("es" if looks_spanish(text) else "en")
        difficulty = _label(row, "difficulty", name, number)
        yield Item(number, text, expected if labelled else None, lang, difficulty)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


@dataclass
class Report:
    classifier: str
    total: int = 0
    correct: int = 0
    baseline_correct: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    confusion: dict[tuple[str, str], int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    misses: list[tuple[str, str, str]] = field(default_factory=list)  # expected, got, text
    load_seconds: float = 0.0
    # (dimension, value) -> [correct, total], e.g. ("lang", "es") -> [41, 45]
    groups: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def add(self, item: Item, decision: Decision, elapsed_ms: float) -> None:
        if item.expected is None:
            raise ValueError(f"line {item.line} has no expected intent to score against")
        got = decision.result.intent
        self.total += 1
        self.correct += got == item.expected
        self.baseline_correct += keyword_intent(item.text) == item.expected
        self.latencies_ms.append(elapsed_ms)
        key = (item.expected, got)
        self.confusion[key] = self.confusion.get(key, 0) + 1
        self.sources[decision.source] = self.sources.get(decision.source, 0) + 1
        for group in (
            ("class", item.expected),
            ("lang", item.lang),
            ("difficulty", item.difficulty),
        ):
            if group[1]:
                tally = self.groups.setdefault(group, [0, 0])
                tally[0] += got == item.expected
                tally[1] += 1
        if got != item.expected:
            self.misses.append((item.expected, got, item.text))

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else 0.0

    @property
    def baseline_accuracy(self) -> float:
        return self.baseline_correct / self.total if self.total else 0.0

    def lines(self, *, show_misses: bool = False) -> Iterable[str]:
        yield f"queries         {self.total}"
        yield (
            f"accuracy        {self.accuracy:.1%} ({self.correct}/{self.total}), "
            f"classifier {self.classifier}"
        )
        yield (
            f"baseline        {self.baseline_accuracy:.1%} ({self.baseline_correct}/{self.total}), "
            "the keyword list"
        )
        yield (
            f"latency         p50 {percentile(self.latencies_ms, 50):.2f} ms, "
            f"p99 {percentile(self.latencies_ms, 99):.2f} ms, "
            f"max {max(self.latencies_ms, default=0.0):.2f} ms "
            f"(model load {self.load_seconds:.2f} s, not included)"
        )
        decided = ", ".join(f"{k} {v}" for k, v in sorted(self.sources.items()))
        yield f"decided by      {decided}"
        for dimension in ("class", "lang", "difficulty"):
            shares = [
                f"{value} {correct / total:.1%} ({correct}/{total})"
                for (dim, value), (correct, total) in sorted(self.groups.items())
                if dim == dimension
            ]
            if shares:
                yield f"per {dimension:<12}" + ", ".join(shares)
        yield ""
        yield "confusion (rows = expected, columns = predicted)"
        width = max(len(i) for i in INTENTS) + 2
        yield " " * width + "".join(f"{i:>{width}}" for i in INTENTS)
        for expected in INTENTS:
            cells = "".join(f"{self.confusion.get((expected, got), 0):>{width}}" for got in INTENTS)
            yield f"{expected:<{width}}{cells}"
        if show_misses and self.misses:
            yield ""
            yield "misses (expected -> predicted: text)"
            for wanted, predicted, text in self.misses:
                yield f"  {wanted} -> {predicted}: {text}"


def timed(decide: Callable[[str], Decision], text: str) -> tuple[Decision, float]:
    started = time.perf_counter()
    decision = decide(text)
    return decision, (time.perf_counter() - started) * 1000


async def atimed(decide: Callable[[str], Awaitable[Decision]], text: str) -> tuple[Decision, float]:
    started = time.perf_counter()
    decision = await decide(text)
    return decision, (time.perf_counter() - started) * 1000
