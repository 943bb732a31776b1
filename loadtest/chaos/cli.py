"""Arguments and entry point of `chatbot chaos` (wired into chatbot.cli).

chatbot chaos                                  # every fault, 20 sessions x 10 messages
chatbot chaos --short                          # the few faults the test suite runs, small
chatbot chaos --faults gateway-kill,redis-kill-10s --sessions 6 --messages 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from chatbot.embedded.process import EmbeddedError
from loadtest.chaos.faults import FAULTS, SHORT


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--sessions", type=int, help="sessions per fault (default 20; --short 6)")
    add("--messages", type=int, help="messages per session (default 10; --short 3)")
    add(
        "--faults",
        default=None,
        help=f"comma-separated, or all (default); one of: {', '.join(FAULTS)}",
    )
    add("--short", action="store_true", help=f"the faults {', '.join(SHORT)}, small counts")
    add("--list", action="store_true", help="list the faults and exit")
    add("--out", default="chaos-results", help="results go to OUT/<timestamp>/")


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _chosen(args: argparse.Namespace) -> list[str]:
    if args.faults in (None, "all"):
        return list(SHORT if args.short else FAULTS)
    names = [n.strip() for n in args.faults.split(",") if n.strip()]
    unknown = [n for n in names if n not in FAULTS]
    if unknown:
        raise ValueError(f"unknown fault(s) {', '.join(unknown)}; choose from {', '.join(FAULTS)}")
    return names


def run(args: argparse.Namespace) -> int:
    if args.list:
        for fault in FAULTS.values():
            _out(f"{fault.name:<22} {fault.summary}")
        return 0
    try:
        names = _chosen(args)
    except ValueError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    sessions = args.sessions or (6 if args.short else 20)
    messages = args.messages or (3 if args.short else 10)
    if sessions < 1 or messages < 1:
        sys.stderr.write("error: --sessions and --messages must be at least 1\n")
        return 2
    out_dir = Path(args.out) / datetime.now().strftime("%Y%m%d-%H%M%S")
    try:
        rows = _execute(names, sessions, messages, out_dir)
    except EmbeddedError as err:
        sys.stderr.write(f"error: {err}\n")
        return 1
    from loadtest.chaos.report import DEFINITIONS, failures, table

    _out("\n" + table(rows) + "\n\n" + DEFINITIONS + "\n")
    problems = failures(rows)
    _out(f"Report: {out_dir / 'report.md'}")
    if problems:
        _out("FAILED: " + "; ".join(problems))
        return 1
    _out("PASSED: 0 lost, 0 duplicated, 0 mismatched, 0 broken, 0 500, every 503 with Retry-After")
    return 0


def _execute(names: list[str], sessions: int, messages: int, out_dir: Path) -> list[dict[str, Any]]:
    from loadtest.chaos import report
    from loadtest.chaos.runner import ChaosRun, Phase
    from loadtest.chaos.stack import ChaosStack

    # The suite owns its Postgres and Redis (it kills them): never the machine's.
    for name in ("DATABASE_URL", "REDIS_URL"):
        os.environ.pop(name, None)
    home = Path(tempfile.mkdtemp(prefix="chatbot-chaos-"))
    stack = ChaosStack(home, _out)
    began = time.monotonic()
    started = datetime.now().isoformat(timespec="seconds")
    phases: list[Phase] = []
    rows: list[dict[str, Any]] = []
    try:
        _out(f"Starting the stack in {home} ...")
        stack.start()
        run = ChaosRun(stack, sessions=sessions, messages=messages, out=_out)
        for name in names:
            _out(f"Fault {name}: {sessions} sessions x {messages} messages")
            phase = asyncio.run(run.phase(FAULTS[name]))
            phases.append(phase)
            rows.append(report.summarize(phase))
            _out(report.table(rows[-1:]))
    finally:
        _out("Stopping the stack ...")
        stack.stop()
        meta = {
            "sessions": sessions,
            "messages": messages,
            "faults": names,
            "started": started,
            "seconds": time.monotonic() - began,
        }
        report.write(out_dir, meta, rows, phases)
        shutil.copytree(home / "logs", out_dir / "logs", dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)
    return rows
