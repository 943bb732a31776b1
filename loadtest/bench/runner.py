"""One benchmark run: start the stack, measure the raw floor, play the scenarios, check
integrity in Postgres, stop everything, then write results.json, report.md and the plots."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import tempfile
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from chatbot.embedded.temporal import DYNAMIC_CONFIG
from loadtest.bench import integrity
from loadtest.bench.analysis import analyse_scenario, evaluate_targets, tool_turn_ratios
from loadtest.bench.config import BenchConfig
from loadtest.bench.floor import measure_floor
from loadtest.bench.locust_runner import LocustRun, run_locust
from loadtest.bench.monitor import ResourceMonitor
from loadtest.bench.report import render_markdown, write_plots
from loadtest.bench.stack import BenchStack
from loadtest.bench.timeline import measure_timeline

Out = Callable[[str], None]


class BenchRun:
    def __init__(self, config: BenchConfig, out: Out) -> None:
        self.config = config
        self.out = out
        self.started = datetime.now()
        self.out_dir = config.out_root / self.started.strftime("%Y%m%d-%H%M%S")
        self.prefix = f"bench-{self.started:%H%M%S}-{uuid.uuid4().hex[:6]}"
        self.monitor = ResourceMonitor()
        self.resources: dict[str, dict[str, Any]] = {}
        self.runs: dict[str, LocustRun] = {}
        self.floor: dict[str, Any] | None = None
        self.timelines: list[dict[str, Any]] = []
        self.rows: list[dict[str, Any]] = []

    def execute(self) -> dict[str, Any]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        home = Path(tempfile.mkdtemp(prefix="chatbot-bench-"))
        stack = BenchStack(self.config, home, self.out)
        try:
            self.out(f"Starting the stack in {home} ...")
            stack.start()
            self._watch(stack)
            self.monitor.start()
            whole = self.monitor.begin()
            self._measure_floor(stack)
            self._measure_timelines(stack)
            for scenario in self.config.scenarios:
                self._play(stack, scenario.name)
            self.resources["whole run"] = self.monitor.end(whole)
            self.out("Checking integrity in Postgres ...")
            self.rows = asyncio.run(integrity.fetch_rows(stack.database_url, self.prefix))
        finally:
            self.monitor.stop()
            self.out("Stopping the stack ...")
            stack.stop()
            shutil.copytree(home / "logs", self.out_dir / "logs", dirs_exist_ok=True)
            shutil.rmtree(home, ignore_errors=True)
        return self._results(stack)

    def _watch(self, stack: BenchStack) -> None:
        for name, pid in stack.pids().items():
            # Replicas (worker2, ...) count as one group with the first.
            self.monitor.watch(name.rstrip("0123456789"), pid)
        if stack.postgres_dir is not None:
            postmaster = self.monitor.find(str(stack.postgres_dir))
            if postmaster is not None:
                self.monitor.watch("postgres", postmaster, children=True)
        self.monitor.watch("bench", os.getpid())

    def _measure_floor(self, stack: BenchStack) -> None:
        c = self.config
        self.out(
            f"Raw floor: {c.floor_samples} no-op updates, then {c.floor_seconds:g} s at "
            f"each concurrency of {', '.join(map(str, c.floor_concurrency))} ..."
        )
        window = self.monitor.begin()
        self.floor = asyncio.run(
            measure_floor(
                stack.temporal_address,
                stack.namespace,
                samples=c.floor_samples,
                seconds=c.floor_seconds,
                concurrency=c.floor_concurrency,
            )
        )
        self.resources["floor"] = self.monitor.end(window)
        used = self.resources["floor"]["processes"]
        self.floor["cpu_ms_per_update"] = {
            # The bench process is the floor's client and its worker at once.
            proc: 1000 * used[proc]["cpu_s"] / self.floor["updates_total"]
            for proc in ("temporal", "bench")
            if proc in used
        }
        update = self.floor["update_ms"]
        self.out(
            f"  p50 {update['p50']:.1f} ms, p99 {update['p99']:.1f} ms, "
            f"{self.floor['max_updates_per_s']:.0f} updates/s"
        )

    def _measure_timelines(self, stack: BenchStack) -> None:
        """Per-turn timelines (loadtest.bench.timeline): one session alone, then as many at
        once as `high` runs, on the default fake LLM."""
        c = self.config
        stack.llm.apply(c.llm("default"))
        for sessions, turns in c.timelines:
            self.out(f"Timeline: {sessions} session(s) x {turns} turns, SSE ...")
            timeline = asyncio.run(
                measure_timeline(
                    gateway_url=stack.gateway_url,
                    temporal_address=stack.temporal_address,
                    namespace=stack.namespace,
                    redis_url=stack.redis_url,
                    jwt_secret=stack.jwt_secret,
                    sessions=sessions,
                    turns=turns,
                )
            )
            self.timelines.append(timeline)
            last = timeline["points"][-1] if timeline["points"] else None
            if last is not None:
                self.out(f"  {last['point']} at p50 {last['ms_since_send_p50']:.1f} ms")

    def _play(self, stack: BenchStack, name: str) -> None:
        scenario = next(s for s in self.config.scenarios if s.name == name)
        stack.llm.apply(self.config.behaviour(scenario))
        if scenario.target == "direct":
            host = stack.direct_url
        elif scenario.tool_calling:
            host = stack.tools_gateway_url
        elif scenario.questions:
            host = stack.cache_gateway_url
        else:
            host = stack.gateway_url
        self.out(f"Scenario {name}: {scenario.summary} ...")
        window = self.monitor.begin()
        run = run_locust(
            scenario,
            host=host,
            out_dir=self.out_dir,
            prefix=self.prefix,
            jwt_secret=stack.jwt_secret,
        )
        self.resources[name] = self.monitor.end(window, {"locust": run.cpu_s})
        self.runs[name] = run
        sent = sum(1 for r in run.records if r.get("kind") == "message")
        ok = sum(1 for r in run.records if r.get("kind") == "message" and r.get("ok"))
        self.out(f"  {ok}/{sent} turns ok in {run.seconds:.1f} s (locust exit {run.returncode})")
        if not run.records:
            self.out(f"  no records: see {run.log_path}")

    def _results(self, stack: BenchStack) -> dict[str, Any]:
        c = self.config
        scenarios = {
            name: analyse_scenario(run.scenario, run.records, c.behaviour(run.scenario))
            for name, run in self.runs.items()
        }
        service_records = {
            name: run.records for name, run in self.runs.items() if run.scenario.target == "service"
        }
        for name, figures in scenarios.items():
            # CPU time each process spent per completed turn: unlike latency, it barely
            # depends on what else the machine runs.
            used = self.resources[name]["processes"]
            figures["cpu_ms_per_turn"] = {
                proc: 1000 * u["cpu_s"] / figures["ok"] if figures["ok"] else None
                for proc, u in used.items()
                if proc not in ("other", "bench")
            }
        checked = integrity.check(self.rows, service_records)
        keys = ("sent", "acknowledged", "persisted", "lost", "duplicated")
        total = {k: sum(v[k] for v in checked.values()) for k in keys}
        targets = evaluate_targets(self.floor, scenarios, checked)
        whole = self.resources.get("whole run", {}).get("processes", {})
        results: dict[str, Any] = {
            "meta": {
                "started": self.started.isoformat(timespec="seconds"),
                "smoke": c.smoke,
                "session_prefix": self.prefix,
                "machine": {
                    "cores": os.cpu_count(),
                    "memory_gb": psutil.virtual_memory().total / 2**30,
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                },
                "temporal": self._temporal_description(),
                "llm": c.llm("default").as_dict(),
                "slow_llm_ms": c.slow_llm_ms,
                "settings": dict(c.extra_env),
                "workers": c.workers,
                "other_cpu_percent": whole.get("other", {}).get("cpu_percent"),
            },
            "floor": self.floor,
            "scenarios": scenarios,
            "integrity": checked,
            "integrity_total": total,
            "targets": [t.as_dict() for t in targets],
            "tool_turns": tool_turn_ratios(self.floor, scenarios),
            "timelines": self.timelines,
            "resources": self.resources,
        }
        try:
            results["plots"] = write_plots(results, self.out_dir)
        except ImportError:
            self.out("matplotlib is not installed (pip install 'temporal-chatbot[load]'): no plots")
            results["plots"] = []
        (self.out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (self.out_dir / "report.md").write_text(render_markdown(results))
        return results

    def _temporal_description(self) -> str:
        c = self.config
        if c.temporal_address:
            where = f"the server at {c.temporal_address}"
        elif c.temporal_in_memory:
            where = "dev server, in memory"
        else:
            where = "dev server with a SQLite file (as `chatbot dev` runs it)"
        if c.temporal_address:
            return where
        flags = ", ".join((*DYNAMIC_CONFIG, *c.temporal_config))
        args = f"; arguments {' '.join(c.temporal_args)}" if c.temporal_args else ""
        return f"{where}; dynamic config {flags}{args}"
