"""Arguments and entry point of `chatbot bench` (wired into chatbot.cli).

chatbot bench                      # every scenario, a few minutes
chatbot bench --smoke              # a few seconds per scenario: does it all work?
chatbot bench --scenarios high,llm1s,llm1s-direct --set MAX_CONCURRENT_ACTIVITIES=50
chatbot bench --scenarios tools-sequential,tools   # tool-calling turns, two calls each
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chatbot.embedded.process import EmbeddedError
from loadtest.bench.config import BenchConfig
from loadtest.scenarios.catalog import SCENARIOS, Scenario, get_scenario

# The deployment the bench measures, tuned by its own figures on a 2-core machine: one
# Python worker process is bound by one core (the GIL) long before the machine is, and
# 20 activity slots queue turns behind slow generations. 2 workers with 100 slots each
# moved `high` from 14 to 21 turns/s and `llm1s` overhead p50 from 432 to 259 ms.
TUNED_WORKERS = 2
TUNED_SETTINGS = {"MAX_CONCURRENT_ACTIVITIES": "100", "MAX_CONCURRENT_ACTIVITY_TASKS": "100"}
# The chat scenarios measure the router's path (intent -> searches -> reply), as every
# report before tool calling did: the fake's API key would otherwise turn TOOL_CALLING
# (auto) on. The tool-calling scenarios have a gateway of their own with it on;
# `--set TOOL_CALLING=on` sends the chat scenarios through the model's loop as well.
# The intent router's LLM layer is off: the fake model is no intent model (its scripted
# reply is no structured answer, so the call only costs its latency), and whether a
# message paid it depended on the scenario name inside the text: "... concurrent-u3-..."
# scored 0.595 against the 0.6 threshold, "... concurrent-stream-u3-..." 0.643, which was
# the 211 ms `detect_intent` of the JSON `concurrent` scenario (issue 19).
CHAT_PATH_SETTINGS = {"TOOL_CALLING": "off", "INTENT_LLM_FALLBACK": "false"}

# The order scenarios run in: light ones first; scale last, as it leaves 1000 sessions open.
RUN_ORDER = (
    "baseline",
    "baseline-stream",
    "sequential",
    "sequential-stream",
    "sequential-stream-direct",
    "concurrent",
    "concurrent-stream",
    "high",
    "high-stream",
    "llm1s",
    "llm1s-direct",
    "tools-sequential",
    "tools",
    "repeated",
    "sustained",
    "scale",
)


class BenchUsageError(ValueError):
    """The options cannot be run as given; the message says what to change."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--scenarios", default="all", help="comma-separated scenario names, or all (default)")
    add("--list", action="store_true", help="list the scenarios and exit")
    add("--smoke", action="store_true", help="a few seconds per scenario, small counts")
    add("--duration", type=float, help="seconds the sustained scenario runs (default 60)")
    add("--scale-sessions", type=int, help="sessions of the scale scenario (default 1000)")
    add("--scale-messages", type=int, help="messages per session in scale (default 5)")
    add("--llm-latency-ms", type=float, default=100.0, help="fake LLM: time to first token")
    add("--llm-tokens-per-second", type=float, default=200.0, help="fake LLM: 0 = no delay")
    add("--reply-tokens", type=int, default=20, help="fake LLM: tokens in each reply")
    add("--slow-llm-ms", type=float, default=1000.0, help="time to first token of the llm1s runs")
    add("--floor-samples", type=int, help="sequential no-op updates for the floor (default 200)")
    add("--floor-seconds", type=float, help="seconds per floor concurrency level (default 4)")
    add("--temporal-address", help="use this Temporal server instead of starting one")
    add(
        "--temporal-file",
        action="store_true",
        help="keep the dev server's state in a SQLite file as `chatbot dev` does (the file "
        "is then the bottleneck: default in memory)",
    )
    add(
        "--temporal-config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra dynamic config for the dev server (repeatable)",
    )
    add(
        "--temporal-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra dev server argument (repeatable), e.g. --temporal-arg=--sqlite-pragma "
        "--temporal-arg=journal_mode=wal",
    )
    add(
        "--set",
        action="append",
        default=[],
        dest="env",
        metavar="NAME=VALUE",
        help="a setting for the worker and gateway, e.g. MAX_CONCURRENT_ACTIVITIES=50 "
        "(the bench sets "
        f"{', '.join(f'{k}={v}' for k, v in {**TUNED_SETTINGS, **CHAT_PATH_SETTINGS}.items())} "
        "unless told otherwise; the tool-calling scenarios' gateway has TOOL_CALLING=on)",
    )
    add(
        "--workers",
        type=int,
        default=TUNED_WORKERS,
        help=f"worker processes on the task queue (default {TUNED_WORKERS})",
    )
    add("--check", action="store_true", help="exit 1 when a target is missed")
    add("--out", default="bench-results", help="results go to OUT/<timestamp>/")


def _pairs(values: list[str], what: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise BenchUsageError(f"{what} takes KEY=VALUE, got {value!r}")
        pairs.append((key, rest))
    return pairs


def _scenarios(args: argparse.Namespace) -> list[Scenario]:
    names = list(RUN_ORDER) if args.scenarios == "all" else args.scenarios.split(",")
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        raise BenchUsageError(
            f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(RUN_ORDER)}"
        )
    chosen = []
    for name in sorted(set(names), key=RUN_ORDER.index):
        scenario = get_scenario(name, smoke=args.smoke)
        if name == "sustained" and args.duration is not None:
            scenario = scenario.with_changes(duration=args.duration)
        if name == "scale" and args.scale_sessions is not None:
            scenario = scenario.with_changes(users=args.scale_sessions)
        if name == "scale" and args.scale_messages is not None:
            scenario = scenario.with_changes(messages=args.scale_messages)
        chosen.append(scenario)
    return chosen


def config_from_args(args: argparse.Namespace) -> BenchConfig:
    try:
        scenarios = _scenarios(args)
    except ValueError as err:  # also a scenario's own validation
        raise BenchUsageError(str(err)) from None
    if args.reply_tokens < 1:
        raise BenchUsageError("--reply-tokens must be at least 1")
    if args.workers < 1:
        raise BenchUsageError("--workers must be at least 1")
    return BenchConfig(
        scenarios=scenarios,
        out_root=Path(args.out),
        smoke=args.smoke,
        llm_latency_ms=args.llm_latency_ms,
        llm_tokens_per_second=args.llm_tokens_per_second,
        reply_tokens=args.reply_tokens,
        slow_llm_ms=args.slow_llm_ms,
        floor_samples=args.floor_samples or (30 if args.smoke else 200),
        floor_seconds=args.floor_seconds or (1.0 if args.smoke else 4.0),
        # 20: the `overhead_p50` target holds `high` against the floor at its concurrency.
        floor_concurrency=(1, 5, 20) if args.smoke else (1, 5, 20, 50),
        timelines=((1, 3),) if args.smoke else ((1, 24), (20, 8)),
        temporal_address=args.temporal_address,
        temporal_in_memory=not args.temporal_file,
        temporal_args=tuple(args.temporal_arg),
        temporal_config=tuple(
            f"{k}={v}" for k, v in _pairs(args.temporal_config, "--temporal-config")
        ),
        extra_env={**TUNED_SETTINGS, **CHAT_PATH_SETTINGS, **dict(_pairs(args.env, "--set"))},
        workers=args.workers,
    )


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from loadtest.bench.report import console_summary
    from loadtest.bench.runner import BenchRun

    if args.list:
        for name in RUN_ORDER:
            _out(f"{name:<18} {SCENARIOS[name].summary}")
        return 0
    try:
        config = config_from_args(args)
    except BenchUsageError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    bench = BenchRun(config, _out)
    try:
        results = bench.execute()
    except EmbeddedError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    sys.stdout.write(console_summary(results, bench.out_dir))
    if args.check and any(t["met"] is False for t in results["targets"]):
        return 1
    return 0
