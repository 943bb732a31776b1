"""From per-message records to a scenario's figures, and from all figures to the targets."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from loadtest.bench.config import LlmBehaviour
from loadtest.bench.stats import summary
from loadtest.scenarios.catalog import Scenario

STEPS = ("detect_intent", "first_token", "generate_reply", "persist_turn")


def analyse_scenario(
    scenario: Scenario, records: Sequence[dict[str, Any]], llm: LlmBehaviour
) -> dict[str, Any]:
    messages = [r for r in records if r.get("kind") == "message"]
    sessions = [r for r in records if r.get("kind") == "session"]
    ok = [m for m in messages if m.get("ok")]
    e2e = [float(m["e2e_ms"]) for m in ok]
    ttft = [float(m["ttft_ms"]) for m in ok if m.get("ttft_ms") is not None]
    planned = scenario.planned_messages
    expected = max(planned or 0, len(messages))
    ends = [m["started"] + m.get("e2e_ms", 0.0) / 1000 for m in messages if "e2e_ms" in m]
    span = (max(ends) - min(m["started"] for m in messages)) if ends else 0.0
    errors = Counter(_short(m.get("error")) for m in messages if not m.get("ok"))
    errors.update(_short(f"session: {s.get('status_code')}") for s in sessions if not s.get("ok"))
    steps = {
        step: summary([float(m["timings_ms"][step]) for m in ok if step in m.get("timings_ms", {})])
        for step in STEPS
    }
    return {
        "name": scenario.name,
        "summary": scenario.summary,
        "target": scenario.target,
        "streaming": scenario.streaming,
        "tool_calling": scenario.tool_calling,
        "counterpart": scenario.counterpart,
        "users": scenario.users,
        "messages_per_session": scenario.messages,
        "rounds": scenario.rounds,
        "duration_s": scenario.duration,
        "think_s": list(scenario.think),
        "llm": {"profile": scenario.llm, **llm.as_dict()},
        "planned": planned,
        "sent": len(messages),
        "ok": len(ok),
        "success_rate": len(ok) / expected if expected else 0.0,
        # Messages the service answered 503 "still running" and the user asked again for.
        "retried": sum(1 for m in messages if m.get("retries")),
        "wrong_replies": sum(1 for m in ok if m.get("reply") != llm.reply),
        "sessions_created": sum(1 for s in sessions if s.get("ok")),
        "sessions_failed": sum(1 for s in sessions if not s.get("ok")),
        "span_s": span,
        "turns_per_s": len(ok) / span if span > 0 else 0.0,
        "e2e_ms": summary(e2e),
        "e2e_first_message_ms": summary(
            [float(m["e2e_ms"]) for m in ok if m.get("message_index") == 0]
        ),
        "e2e_later_messages_ms": summary(
            [float(m["e2e_ms"]) for m in ok if m.get("message_index", 0) > 0]
        ),
        "ttft_ms": summary(ttft),
        "accepted_ms": summary([float(m["accepted_ms"]) for m in ok if "accepted_ms" in m]),
        # What the service adds to the fake LLM's own time, and to its time to first token.
        "overhead_ms": summary([v - llm.own_ms for v in e2e]),
        "ttft_overhead_ms": summary([v - llm.first_token_ms for v in ttft]),
        "steps_ms": steps,
        "errors": dict(errors.most_common(10)),
        **({"tool_calls": tool_call_figures(ok, len(llm.tool_calls))} if llm.tool_calls else {}),
        **({"cache": cache_figures(ok)} if scenario.questions else {}),
    }


def cache_figures(ok: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The response cache as the users saw it: how many answers came from it, and how
    much sooner a cached answer ended (and began) than one the model wrote."""
    hits = [m for m in ok if m.get("cached")]
    misses = [m for m in ok if not m.get("cached")]

    def of(turns: Sequence[dict[str, Any]], key: str) -> dict[str, Any]:
        return summary([float(m[key]) for m in turns if m.get(key) is not None])

    e2e_hit, e2e_miss = of(hits, "e2e_ms"), of(misses, "e2e_ms")
    ttft_hit, ttft_miss = of(hits, "ttft_ms"), of(misses, "ttft_ms")

    def saved(hit: dict[str, Any], miss: dict[str, Any]) -> float | None:
        if hit["p50"] is None or miss["p50"] is None:
            return None
        return float(miss["p50"] - hit["p50"])

    spent = [int(m.get("completion_tokens") or 0) for m in misses]
    return {
        "hits": len(hits),
        "misses": len(misses),
        "hit_rate": len(hits) / len(ok) if ok else 0.0,
        "e2e_hit_ms": e2e_hit,
        "e2e_miss_ms": e2e_miss,
        "ttft_hit_ms": ttft_hit,
        "ttft_miss_ms": ttft_miss,
        "e2e_saved_p50_ms": saved(e2e_hit, e2e_miss),
        "ttft_saved_p50_ms": saved(ttft_hit, ttft_miss),
        # The provider tokens the hits did not spend: what the misses cost each, on average.
        "completion_tokens_saved": len(hits) * sum(spent) / len(spent) if spent else 0.0,
    }


def tool_call_figures(ok: Sequence[dict[str, Any]], expected: int) -> dict[str, Any]:
    """What the completed tool-calling turns called: how many calls each made (every one
    should make `expected`, each ok), and how long each tool's activity took."""
    turns = [m.get("tool_calls") or [] for m in ok]
    calls = [c for made in turns for c in made]
    by_tool = {}
    for name in sorted({str(c.get("name")) for c in calls}):
        mine = [c for c in calls if str(c.get("name")) == name]
        by_tool[name] = {
            "calls": len(mine),
            "ok": sum(1 for c in mine if c.get("status") == "ok"),
            "ms": summary([float(c["ms"]) for c in mine if c.get("ms") is not None]),
        }
    return {
        "expected_per_turn": expected,
        "turns": len(turns),
        # JSON keys: the number of calls a turn made, as text.
        "calls_per_turn": {str(n): k for n, k in sorted(Counter(map(len, turns)).items())},
        "turns_not_as_expected": sum(
            1
            for made in turns
            if len(made) != expected or any(c.get("status") != "ok" for c in made)
        ),
        "by_tool": by_tool,
    }


def _short(error: object) -> str:
    return str(error)[:160]


@dataclass(frozen=True)
class Target:
    key: str
    description: str
    value: float | None
    limit: float
    higher_is_better: bool = False
    unit: str = "x"
    basis: str = ""

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.limit if self.higher_is_better else self.value <= self.limit

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "description": self.description,
            "value": self.value,
            "limit": self.limit,
            "comparison": ">=" if self.higher_is_better else "<=",
            "unit": self.unit,
            "met": self.met,
            "basis": self.basis,
        }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


# The service's own processes: not the fakes, the direct path or the load generator.
STACK = ("temporal", "worker", "gateway", "postgres", "redis")


def stack_cpu_ms(scenario: dict[str, Any] | None) -> float | None:
    """CPU per completed turn summed over the service's own processes."""
    per_turn = (scenario or {}).get("cpu_ms_per_turn") or {}
    values = [float(per_turn[p]) for p in STACK if per_turn.get(p) is not None]
    return sum(values) if values else None


def floor_at(floor: dict[str, Any] | None, concurrency: int) -> float | None:
    """The floor's p50 with `concurrency` no-op updates at once, if it was measured."""
    level = next(
        (lv for lv in (floor or {}).get("throughput", []) if lv["concurrency"] == concurrency),
        None,
    )
    return level["p50_ms"] if level else None


def evaluate_targets(
    floor: dict[str, Any] | None,
    scenarios: dict[str, dict[str, Any]],
    integrity: dict[str, dict[str, Any]],
) -> list[Target]:
    """The targets of issue 19, each as a ratio to this run's own floor or direct path, so
    it holds on any machine. A target whose scenario (or the floor) did not run has no
    value and is reported as not measured."""
    floor_p50 = floor["update_ms"]["p50"] if floor else None
    floor_tput = floor["max_updates_per_s"] if floor else None
    floor_cpu = sum((floor or {}).get("cpu_ms_per_update", {}).values()) or None
    at20 = scenarios.get("high") or scenarios.get("concurrent")
    at20_name = at20["name"] if at20 else "high"
    sustained = scenarios.get("sustained")
    slow, direct = scenarios.get("llm1s"), scenarios.get("llm1s-direct")
    # One session talking with no contention, against the direct path streaming the same.
    stream = next(
        (
            scenarios[n]
            for n in ("sequential-stream", "baseline-stream", "high-stream")
            if n in scenarios
        ),
        None,
    )
    stream_name = stream["name"] if stream else "sequential-stream"
    direct_stream = scenarios.get(f"{stream_name}-direct")
    scale, scale_integrity = scenarios.get("scale"), integrity.get("scale")

    added = None
    if stream and direct_stream:
        service_over = stream["overhead_ms"]["p50"]
        direct_over = direct_stream["overhead_ms"]["p50"]
        if service_over is not None and direct_over is not None:
            added = _ratio(service_over - direct_over, floor_p50)
    targets = [
        Target(
            "stream_overhead",
            f"(service overhead p50 - direct path overhead p50) / raw floor p50 ({stream_name})",
            added,
            3.0,
            basis="what orchestration adds to a streamed turn, beyond the same HTTP and "
            "client library without Temporal",
        ),
    ]
    # The LLM's own time to first token as a client sees it: the direct path streaming the
    # same request (same HTTP layers and client library, no orchestration). Without that
    # run, the fake's configured delay, a lower bound that no client sees.
    if direct_stream and direct_stream["ttft_ms"]["p50"] is not None:
        llm_ttft, llm_ttft_name = direct_stream["ttft_ms"]["p50"], "direct path TTFT p50"
    else:
        llm_ttft = stream["llm"]["latency_ms"] if stream else None
        llm_ttft_name = "fake LLM's configured TTFT"
    ttft_budget = None
    if stream and stream["ttft_ms"]["p50"] is not None and llm_ttft is not None:
        ttft_budget = _ratio(stream["ttft_ms"]["p50"] - llm_ttft, floor_p50)
    targets += [
        Target(
            "ttft",
            f"(TTFT p50 - {llm_ttft_name}) / raw floor p50 ({stream_name})",
            ttft_budget,
            2.0,
            basis="TTFT p50 <= the LLM's own TTFT + 2 x floor p50",
        ),
        Target(
            "overhead_p50",
            f"orchestration overhead p50 at 20 sessions ({at20_name}) / raw floor p50 with "
            "20 no-op updates at once",
            _ratio(at20["overhead_ms"]["p50"] if at20 else None, floor_at(floor, 20)),
            2.0,
            basis="end-to-end minus the fake LLM's own time, vs no-op update-with-starts at "
            "the same concurrency",
        ),
        Target(
            "sustained_cpu",
            "CPU per turn across the stack (sustained) / CPU per no-op update with its client",
            _ratio(stack_cpu_ms(sustained), floor_cpu),
            3.0,
            basis=f"{' + '.join(STACK)}, vs the floor's server + client",
        ),
        Target(
            "sustained_throughput",
            "sustained turns/s (zero-latency LLM) / raw no-op update throughput",
            _ratio(sustained["turns_per_s"] if sustained else None, floor_tput),
            0.3,
            higher_is_better=True,
        ),
        Target(
            "slow_llm_vs_direct",
            "end-to-end p50 with a 1 s LLM: service / direct path",
            _ratio(
                slow["e2e_ms"]["p50"] if slow else None,
                direct["e2e_ms"]["p50"] if direct else None,
            ),
            1.05,
        ),
    ]
    if scale is not None and scale_integrity is not None:
        failures = (
            (1 - scale["success_rate"]) * (scale["planned"] or scale["sent"])
            + scale_integrity["lost"]
            + scale_integrity["duplicated"]
        )
        scale_value: float | None = round(failures)
    else:
        scale_value = None
    sessions = scale["users"] if scale else 1000
    messages = scale["messages_per_session"] if scale else 5
    targets.append(
        Target(
            "scale_integrity",
            f"{sessions} sessions x {messages} messages: failed + lost + duplicated turns",
            scale_value,
            0.0,
            unit="turns",
            basis="100 % success, 0 lost, 0 duplicated",
        )
    )
    # Tool-calling turns, where they ran: each made the calls the fake model asked for.
    tools = [s for s in scenarios.values() if "tool_calls" in s]
    if tools:
        wrong = sum(s["tool_calls"]["turns_not_as_expected"] + s["sent"] - s["ok"] for s in tools)
        expected = tools[0]["tool_calls"]["expected_per_turn"]
        targets.append(
            Target(
                "tool_calls",
                f"tool-calling turns ({', '.join(s['name'] for s in tools)}) that failed or "
                f"did not make exactly {expected} calls, each ok",
                float(wrong),
                0.0,
                unit="turns",
                basis="the fake model asks for the calls in each turn's first round",
            )
        )
    return targets


def tool_turn_ratios(
    floor: dict[str, Any] | None, scenarios: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each tool-calling scenario's figures as the targets put the chat path's: overhead
    against the floor, time to first token beyond the fake's own, and against the chat
    scenario of the same shape (what the loop of rounds and calls adds)."""
    floor_p50 = floor["update_ms"]["p50"] if floor else None
    floor_p99 = floor["update_ms"]["p99"] if floor else None
    rows = []
    for s in scenarios.values():
        if "tool_calls" not in s:
            continue
        chat = scenarios.get(s.get("counterpart") or "") or {}
        over, chat_over = s["overhead_ms"], chat.get("overhead_ms") or {}
        rows.append(
            {
                "name": s["name"],
                "counterpart": chat.get("name"),
                "overhead_p50_vs_floor": _ratio(over["p50"], floor_p50),
                "overhead_p99_vs_floor": _ratio(over["p99"], floor_p99),
                "ttft_overhead_p50_vs_floor": _ratio(s["ttft_overhead_ms"]["p50"], floor_p50),
                "overhead_p50_vs_chat": _ratio(over["p50"], chat_over.get("p50")),
                "overhead_p99_vs_chat": _ratio(over["p99"], chat_over.get("p99")),
                "turns_per_s_vs_chat": _ratio(s["turns_per_s"], chat.get("turns_per_s")),
            }
        )
    return rows
