"""Play one scenario with locust in its own process (gevent's monkey-patching must stay out
of the benchmark's asyncio process) and read back its per-message records."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import loadtest
from loadtest.scenarios.catalog import Scenario

LOCUSTFILE = Path(loadtest.__file__).parent / "locustfile.py"
# Beyond the scenario's own bound, locust gets this long to write its results and exit.
EXIT_GRACE_SECONDS = 60.0


@dataclass
class LocustRun:
    scenario: Scenario
    records: list[dict[str, Any]]
    returncode: int
    seconds: float
    cpu_s: float
    log_path: Path


def locust_argv(scenario: Scenario, *, host: str, out_dir: Path, prefix: str) -> list[str]:
    s = scenario
    argv = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        host,
        "--only-summary",
        "--loglevel",
        "WARNING",
        "--exit-code-on-error",
        "0",
        # Written at exit from the final stats (the CSV writer may miss the last second);
        # locust adds ".json" to the name.
        "--json-file",
        str(out_dir / "locust" / s.name),
        "--html",
        str(out_dir / "locust" / f"{s.name}.html"),
        "--records",
        str(out_dir / "records" / f"{s.name}.jsonl"),
        "--session-prefix",
        prefix,
        "--scenario",
        s.name,
        "--scenario-users",
        str(s.users),
        "--scenario-messages",
        str(s.messages),
        "--scenario-rounds",
        str(s.rounds),
        "--scenario-think-min",
        str(s.think[0]),
        "--scenario-think-max",
        str(s.think[1]),
        "--scenario-spawn",
        str(s.spawn_rate),
    ]
    if s.duration is not None:
        argv += ["--scenario-duration", str(s.duration)]
    return argv


def run_locust(
    scenario: Scenario, *, host: str, out_dir: Path, prefix: str, jwt_secret: str
) -> LocustRun:
    records_path = out_dir / "records" / f"{scenario.name}.jsonl"
    log_path = out_dir / "locust" / f"{scenario.name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "CHATBOT_TOKEN"}
    env["CHATBOT_JWT_SECRET"] = jwt_secret  # in the environment, never on a command line
    argv = locust_argv(scenario, host=host, out_dir=out_dir, prefix=prefix)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    with log_path.open("w") as log:
        try:
            done = subprocess.run(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                timeout=scenario.time_bound + EXIT_GRACE_SECONDS,
                check=False,
            )
            code = done.returncode
        except subprocess.TimeoutExpired:
            code = -9
    seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    records = []
    if records_path.exists():
        with records_path.open() as lines:
            records = [json.loads(line) for line in lines if line.strip()]
    return LocustRun(scenario, records, code, seconds, cpu, log_path)
