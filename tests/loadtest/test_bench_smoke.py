"""`chatbot bench`: its integrity and target checks on known data, then a smoke run end to
end (the whole stack, every scenario for a few seconds). Benchmarks are not unit tests:
the smoke run proves the bench works and checks nothing is lost, never the timings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.bench import integrity
from loadtest.bench.analysis import evaluate_targets, tool_call_figures, tool_turn_ratios
from loadtest.bench.cli import RUN_ORDER
from loadtest.bench.config import TOOL_TURN_CALLS, LlmBehaviour, reply_of
from loadtest.bench.stats import percentile
from loadtest.fakes.openai_server import streamed_pieces
from tests.support import own_stack_env


def test_percentiles_interpolate_between_ranks() -> None:
    assert percentile([], 50) is None
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert percentile(list(map(float, range(101))), 99) == 99.0


def _message(cmid: str, *, ok: bool = True) -> dict[str, Any]:
    return {"kind": "message", "client_message_id": cmid, "ok": ok}


def _rows(session: str, cmid: str, turn: str, *, answered: bool = True) -> list[dict[str, Any]]:
    user = {
        "session_id": session,
        "role": "user",
        "client_message_id": cmid,
        "content": f"text [{cmid}]",
        "turn_id": turn,
    }
    reply = {
        "session_id": session,
        "role": "assistant",
        "client_message_id": None,
        "content": "reply",
        "turn_id": turn,
    }
    return [user, reply] if answered else [user]


def test_integrity_counts_lost_and_duplicated_turns() -> None:
    s = "run.high.u0.r0"
    rows = [
        *_rows(s, "m1", "t1"),
        *_rows(s, "m2", "t2", answered=False),  # acknowledged, but no reply stored: lost
        *_rows(s, "m4", "t4"),
        *({**r, "client_message_id": None} for r in _rows(s, "m4", "t5")),  # stored twice
    ]
    records = {
        "high": [_message("m1"), _message("m2"), _message("m3"), _message("m4")],
        "baseline": [_message("b1", ok=False)],
    }
    report = integrity.check(rows, records)
    assert report["high"] == {
        "sent": 4,
        "acknowledged": 4,
        "persisted": 2,
        "lost": 2,  # m2 (no reply) and m3 (nothing stored)
        "duplicated": 1,
        "unanswered_user_rows": 1,
        "persisted_not_acknowledged": 0,
    }
    assert report["baseline"]["lost"] == 0  # never acknowledged: a failure, not a loss


def _scenario(name: str, **figures: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": name,
        "users": 20,
        "messages_per_session": 5,
        "planned": 100,
        "sent": 100,
        "success_rate": 1.0,
        "turns_per_s": 0.0,
        "llm": {"latency_ms": 100.0},
        "e2e_ms": {"p50": None},
        "overhead_ms": {"p50": None, "p99": None},
        "ttft_ms": {"p50": None},
    }
    return base | figures


def test_targets_are_ratios_to_the_floor_and_the_direct_path() -> None:
    floor = {
        "update_ms": {"p50": 10.0, "p99": 40.0},
        "max_updates_per_s": 200.0,
        "throughput": [
            {"concurrency": 1, "p50_ms": 10.0},
            {"concurrency": 20, "p50_ms": 50.0},
        ],
        "cpu_ms_per_update": {"temporal": 5.0, "bench": 3.0},
    }
    cpu = {"temporal": 10.0, "worker": 12.0, "gateway": 2.0, "postgres": 1.0, "redis": 1.0}
    scenarios = {
        "sequential-stream": _scenario(
            "sequential-stream", overhead_ms={"p50": 45.0, "p99": 60.0}, ttft_ms={"p50": 125.0}
        ),
        "sequential-stream-direct": _scenario(
            "sequential-stream-direct",
            overhead_ms={"p50": 10.0, "p99": 20.0},
            ttft_ms={"p50": 105.0},
        ),
        "high": _scenario("high", overhead_ms={"p50": 90.0, "p99": 300.0}),
        # The load generator's and the fakes' CPU is not the stack's.
        "sustained": _scenario(
            "sustained", turns_per_s=50.0, cpu_ms_per_turn={**cpu, "locust": 9.0, "fake-llm": 4.0}
        ),
        "llm1s": _scenario("llm1s", e2e_ms={"p50": 1100.0}),
        "llm1s-direct": _scenario("llm1s-direct", e2e_ms={"p50": 1000.0}),
        "scale": _scenario("scale", users=1000, planned=5000, sent=5000, success_rate=0.999),
    }
    integrity_report = {"scale": {"lost": 0, "duplicated": 0}}
    got = {t.key: t for t in evaluate_targets(floor, scenarios, integrity_report)}
    # (45 - 10) / 10 over the direct path's own overhead; the limit is 3x.
    assert got["stream_overhead"].value == 3.5 and got["stream_overhead"].met is False
    assert got["ttft"].value == 2.0 and got["ttft"].met
    # Against the floor at the same concurrency (50 ms at 20), not one at a time.
    assert got["overhead_p50"].value == 1.8 and got["overhead_p50"].met
    assert got["sustained_cpu"].value == 26.0 / 8.0 and got["sustained_cpu"].met is False
    assert got["sustained_throughput"].value == 0.25 and got["sustained_throughput"].met is False
    assert got["slow_llm_vs_direct"].value == pytest.approx(1.1)
    assert got["slow_llm_vs_direct"].met is False
    assert got["scale_integrity"].value == 5 and got["scale_integrity"].met is False
    assert evaluate_targets(None, {}, {})[0].met is None  # nothing measured, nothing claimed
    # A floor without the 20-at-once level gives no value, not a ratio to the wrong one.
    one_level = {**floor, "throughput": floor["throughput"][:1]}
    [at20] = [t for t in evaluate_targets(one_level, scenarios, {}) if t.key == "overhead_p50"]
    assert at20.value is None and at20.met is None


def test_time_to_first_token_is_held_against_the_direct_path_when_it_ran() -> None:
    floor = {"update_ms": {"p50": 10.0, "p99": 40.0}, "max_updates_per_s": 200.0}
    service = _scenario("sequential-stream", ttft_ms={"p50": 140.0})
    direct = _scenario("sequential-stream-direct", ttft_ms={"p50": 118.0})

    [with_direct] = [
        t
        for t in evaluate_targets(floor, {s["name"]: s for s in (service, direct)}, {})
        if t.key == "ttft"
    ]
    assert with_direct.value == pytest.approx(2.2) and with_direct.met is False
    assert "direct path" in with_direct.description

    # Without the direct run, the fake LLM's configured 100 ms stands in for it.
    [configured] = [
        t for t in evaluate_targets(floor, {"sequential-stream": service}, {}) if t.key == "ttft"
    ]
    assert configured.value == pytest.approx(4.0) and "configured" in configured.description


def test_a_tool_turns_own_time_has_both_rounds_and_the_web_search() -> None:
    chat = LlmBehaviour(100.0, 0.0, reply_of(20))
    assert chat.first_token_ms == chat.own_ms == 100.0 and "tool_calls" not in chat.as_dict()
    # No token delay: the asking round, the search model's answer, the answering round.
    tools = LlmBehaviour(100.0, 0.0, reply_of(20), TOOL_TURN_CALLS)
    assert tools.first_token_ms == tools.own_ms == 300.0
    # At 200 tokens/s, 5 ms before each piece after the first of a stream, and before
    # every piece of the unstreamed search answer (its text and the citation link).
    paced = LlmBehaviour(100.0, 200.0, reply_of(20), TOOL_TURN_CALLS)
    asking = 100.0 + 5.0 * (streamed_pieces("", TOOL_TURN_CALLS) - 1)
    searching = 100.0 + 5.0 * (20 + 2)
    assert paced.first_token_ms == pytest.approx(asking + searching + 100.0)
    assert paced.own_ms == pytest.approx(paced.first_token_ms + 5.0 * 19)
    assert paced.as_dict()["tool_calls"] == ["search_companies", "search_web"]


def _tool_turn(*calls: tuple[str, str], ok: bool = True) -> dict[str, Any]:
    made = [{"name": n, "status": st, "step": 0, "ms": 20.0 + i} for i, (n, st) in enumerate(calls)]
    return {"kind": "message", "ok": ok, "tool_calls": made}


def test_tool_call_figures_count_each_turns_calls_and_each_tools_time() -> None:
    both = (("search_companies", "ok"), ("search_web", "ok"))
    ok = [
        _tool_turn(*both),
        _tool_turn(*both),
        _tool_turn(("search_web", "ok")),  # one call short
        _tool_turn(("search_companies", "ok"), ("search_web", "error")),  # one failed
    ]
    figures = tool_call_figures(ok, 2)
    assert figures["calls_per_turn"] == {"1": 1, "2": 3}
    assert figures["turns_not_as_expected"] == 2
    web = figures["by_tool"]["search_web"]
    assert (web["calls"], web["ok"], web["ms"]["n"]) == (4, 3, 4)

    floor = {"update_ms": {"p50": 10.0, "p99": 40.0}, "max_updates_per_s": 200.0}
    tools = _scenario(
        "tools",
        sent=5,
        ok=4,
        counterpart="high-stream",
        tool_calls=figures,
        overhead_ms={"p50": 300.0, "p99": 800.0},
        ttft_overhead_ms={"p50": 150.0},
        turns_per_s=10.0,
    )
    chat = _scenario("high-stream", overhead_ms={"p50": 200.0, "p99": 400.0}, turns_per_s=20.0)
    scenarios = {"high-stream": chat, "tools": tools}
    got = {t.key: t for t in evaluate_targets(floor, scenarios, {})}
    assert got["tool_calls"].value == 3 and got["tool_calls"].met is False  # 2 + 1 failed
    assert "tool_calls" not in {t.key for t in evaluate_targets(floor, {"high-stream": chat}, {})}
    [ratios] = tool_turn_ratios(floor, scenarios)
    assert ratios["overhead_p50_vs_floor"] == 30.0 and ratios["overhead_p99_vs_floor"] == 20.0
    assert ratios["ttft_overhead_p50_vs_floor"] == 15.0
    assert ratios["overhead_p50_vs_chat"] == 1.5 and ratios["turns_per_s_vs_chat"] == 0.5


@pytest.mark.timeout(300)
def test_tools_smoke_run_makes_two_calls_a_turn(tmp_path: Path) -> None:
    scenarios = "tools-sequential,tools"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "chatbot", "bench", "--smoke"),
            *("--scenarios", scenarios, "--out", str(tmp_path / "out")),
        ],
        cwd=tmp_path,  # no .env files from the repository
        env=own_stack_env(),
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [run_dir] = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert list(results["scenarios"]) == scenarios.split(",")
    for name, s in results["scenarios"].items():
        assert s["sent"] > 0 and s["success_rate"] == 1.0, (name, s["errors"])
        assert s["wrong_replies"] == 0, name  # the answering round's reply, all of it
        calls = s["tool_calls"]
        assert calls["calls_per_turn"] == {"2": s["ok"]}, name
        assert calls["turns_not_as_expected"] == 0, name
        for tool in ("search_companies", "search_web"):
            assert calls["by_tool"][tool]["ok"] == s["ok"], (name, tool)
            assert calls["by_tool"][tool]["ms"]["p50"] > 0, (name, tool)
        # The reply's first token comes after a round, two calls and the next round.
        assert s["llm"]["first_token_ms"] < s["ttft_ms"]["p50"] < s["e2e_ms"]["p50"], name
    [target] = [t for t in results["targets"] if t["key"] == "tool_calls"]
    assert target["value"] == 0 and target["met"] is True
    assert [r["name"] for r in results["tool_turns"]] == scenarios.split(",")
    assert results["integrity_total"]["lost"] == results["integrity_total"]["duplicated"] == 0
    assert results["integrity_total"]["persisted"] == sum(
        s["ok"] for s in results["scenarios"].values()
    )
    report = (run_dir / "report.md").read_text()
    assert "## Tool-calling turns" in report and "| tools | search_web |" in report
    assert "tools: 10 turns made 2 calls; 0 did not make exactly 2" in done.stdout


@pytest.mark.timeout(300)
def test_smoke_run_writes_results_report_and_plots(tmp_path: Path) -> None:
    env = own_stack_env()
    done = subprocess.run(
        [sys.executable, "-m", "chatbot", "bench", "--smoke", "--out", str(tmp_path / "out")],
        cwd=tmp_path,  # no .env files from the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    [run_dir] = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert set(results) >= {
        "meta",
        "floor",
        "scenarios",
        "integrity",
        "integrity_total",
        "targets",
        "resources",
    }
    assert results["meta"]["smoke"] is True

    floor = results["floor"]
    assert floor["update_ms"]["p50"] > 0 and floor["max_updates_per_s"] > 0

    scenarios = results["scenarios"]
    assert list(scenarios) == list(RUN_ORDER)
    for name, s in scenarios.items():
        assert s["sent"] > 0 and s["success_rate"] == 1.0, (name, s["errors"])
        assert s["wrong_replies"] == 0, name
        assert s["e2e_ms"]["p50"] > 0 and s["turns_per_s"] > 0, name
        if s["streaming"]:
            assert 0 < s["ttft_ms"]["p50"] < s["e2e_ms"]["p50"], name

    # The repeated questions: each of the 2 users asks 3 questions, then the first again,
    # which the response cache answers without the model.
    cache = scenarios["repeated"]["cache"]
    assert (cache["hits"], cache["misses"]) == (2, 6) and cache["hit_rate"] == 0.25
    assert cache["completion_tokens_saved"] > 0

    total = results["integrity_total"]
    assert total["lost"] == 0 and total["duplicated"] == 0
    assert total["sent"] == total["acknowledged"] == total["persisted"] > 0
    assert "llm1s-direct" not in results["integrity"]  # no database on the direct path

    assert {t["key"] for t in results["targets"]} == {
        "stream_overhead",
        "overhead_p50",
        "sustained_cpu",
        "sustained_throughput",
        "slow_llm_vs_direct",
        "scale_integrity",
        "ttft",
        "tool_calls",
    }
    assert all(t["value"] is not None for t in results["targets"])

    for name in ("floor", *RUN_ORDER):
        processes = results["resources"][name]["processes"]
        assert {"temporal", "worker", "gateway", "postgres"} <= set(processes), name

    # The per-turn timeline: each point from the client, the history or the stream, in the
    # order one turn passes them (so their medians keep it too).
    [timeline] = results["timelines"]
    at = {p["point"]: p["ms_since_send_p50"] for p in timeline["points"]}
    path = [
        "client sent",
        "update received (WFT scheduled)",
        "WFT 1 started",
        "WFT 1 completed (accepted)",
        "first token in Redis",
        "activity completed",
        "WFT 2 started",
        "final in Redis",
        "client final",
    ]
    assert timeline["turns"] == 3 and [at[p] for p in path] == sorted(at[p] for p in path)

    report = (run_dir / "report.md").read_text()
    assert "## Targets" in report and all(f"| {name} |" in report for name in RUN_ORDER)
    assert "## Where a turn's time goes" in report
    for png in ("latency_percentiles.png", "throughput_vs_concurrency.png", "cpu_per_process.png"):
        assert (run_dir / png).read_bytes().startswith(b"\x89PNG"), png
    assert "Targets" in done.stdout
