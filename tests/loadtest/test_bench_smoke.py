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
from loadtest.bench.analysis import evaluate_targets
from loadtest.bench.cli import RUN_ORDER
from loadtest.bench.stats import percentile
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
    floor = {"update_ms": {"p50": 10.0, "p99": 40.0}, "max_updates_per_s": 200.0}
    scenarios = {
        "high": _scenario("high", overhead_ms={"p50": 25.0, "p99": 300.0}),
        "sustained": _scenario("sustained", turns_per_s=100.0),
        "llm1s": _scenario("llm1s", e2e_ms={"p50": 1100.0}),
        "llm1s-direct": _scenario("llm1s-direct", e2e_ms={"p50": 1000.0}),
        "scale": _scenario("scale", users=1000, planned=5000, sent=5000, success_rate=0.999),
        "high-stream": _scenario("high-stream", ttft_ms={"p50": 115.0}),
    }
    integrity_report = {"scale": {"lost": 0, "duplicated": 0}}
    got = {t.key: t for t in evaluate_targets(floor, scenarios, integrity_report)}
    assert got["overhead_p50"].value == 2.5 and got["overhead_p50"].met
    assert got["overhead_p99"].value == 7.5 and got["overhead_p99"].met is False
    assert got["sustained_throughput"].value == 0.5 and got["sustained_throughput"].met
    assert got["slow_llm_vs_direct"].value == pytest.approx(1.1)
    assert got["slow_llm_vs_direct"].met is False
    assert got["scale_integrity"].value == 5 and got["scale_integrity"].met is False
    assert got["ttft"].value == 1.5 and got["ttft"].met
    assert evaluate_targets(None, {}, {})[0].met is None  # nothing measured, nothing claimed


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

    total = results["integrity_total"]
    assert total["lost"] == 0 and total["duplicated"] == 0
    assert total["sent"] == total["acknowledged"] == total["persisted"] > 0
    assert "llm1s-direct" not in results["integrity"]  # no database on the direct path

    assert {t["key"] for t in results["targets"]} == {
        "overhead_p50",
        "overhead_p99",
        "sustained_throughput",
        "slow_llm_vs_direct",
        "scale_integrity",
        "ttft",
    }
    assert all(t["value"] is not None for t in results["targets"])

    for name in ("floor", *RUN_ORDER):
        processes = results["resources"][name]["processes"]
        assert {"temporal", "worker", "gateway", "postgres"} <= set(processes), name

    report = (run_dir / "report.md").read_text()
    assert "## Targets" in report and all(f"| {name} |" in report for name in RUN_ORDER)
    for png in ("latency_percentiles.png", "throughput_vs_concurrency.png", "cpu_per_process.png"):
        assert (run_dir / png).read_bytes().startswith(b"\x89PNG"), png
    assert "Targets" in done.stdout
