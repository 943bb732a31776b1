"""`chatbot route`: the intent router on JSON lines, or scored on a labelled set.

    chatbot route queries.jsonl            # {"text": ...} per line -> one JSON line each
    echo '{"text": "weather in Oslo"}' | chatbot route -
    chatbot route --eval activities/intent/eval.jsonl

Each output line has `text`, `intent`, `confidence`, `query` and `location`. `--eval`
prints accuracy, the confusion matrix, p50/p99 latency and the keyword baseline's accuracy
on the same set. A bad input line stops the run with its line number (exit 2). The LLM
layer joins only with a real model configured (OPENAI_API_KEY) and without `--no-llm`."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from activities.intent.evaluation import InputError, Report, atimed, read_items, timed
from activities.intent.router import Router, build_router
from activities.llm import build_openai_client
from shared.config import Settings, get_settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "file",
        nargs="?",
        help="JSON lines, each with a 'text' field ('-' reads standard input)",
    )
    parser.add_argument(
        "--eval",
        metavar="FILE",
        help="score a labelled set instead (JSON lines with 'text' and 'intent'): accuracy, "
        "confusion matrix, p50/p99 latency, and the keyword baseline beside it",
    )
    parser.add_argument(
        "--classifier",
        choices=["auto", "light", "embedding"],
        default="auto",
        help="the learned layer: 'embedding' needs the ml extra; auto takes it when installed",
    )
    parser.add_argument(
        "--no-llm",
        action="store_true",
        help="never ask the chat model, even when OPENAI_API_KEY is set",
    )
    parser.add_argument(
        "--misses", action="store_true", help="with --eval, list the queries it got wrong"
    )


def _print(line: str, out: IO[str]) -> None:
    out.write(line + "\n")


@contextmanager
def _open(name: str) -> Iterator[IO[str]]:
    if name == "-":
        yield sys.stdin
        return
    with Path(name).open(encoding="utf-8") as stream:
        yield stream


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    if bool(args.file) == bool(args.eval):
        sys.stderr.write("error: give either FILE (or -) to route, or --eval FILE to score\n")
        return 2
    try:
        return asyncio.run(_run(args, settings))
    except InputError as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    except OSError as err:
        sys.stderr.write(f"error: cannot read {err.filename}: {err.strerror}\n")
        return 2
    except RuntimeError as err:  # the embedding classifier asked for without the extra
        sys.stderr.write(f"error: {err}\n")
        return 2


async def _run(args: argparse.Namespace, settings: Settings | None) -> int:
    settings = settings if settings is not None else get_settings()
    use_llm = not args.no_llm and settings.openai_api_key is not None
    client = build_openai_client(settings) if use_llm else None
    router = build_router(settings, client, classifier=args.classifier)
    started = time.perf_counter()
    await asyncio.to_thread(router.warm)
    load_seconds = time.perf_counter() - started
    try:
        if args.eval:
            return await _evaluate(args, router, load_seconds)
        return await _route(args, router)
    finally:
        if client is not None:
            await client.close()


async def _route(args: argparse.Namespace, router: Router) -> int:
    out = sys.stdout
    with _open(args.file) as stream:
        for item in read_items(stream, args.file, labelled=False):
            result = await router.aroute(item.text)
            # The worker's flags (the data catalog, a person asked for), not the router's.
            fields = result.model_dump(exclude={"data_question", "wants_person"})
            row = {"text": item.text, **fields}
            _print(json.dumps(row, ensure_ascii=False), out)
            out.flush()
    return 0


async def _evaluate(args: argparse.Namespace, router: Router, load_seconds: float) -> int:
    report = Report(classifier=router.classifier.name, load_seconds=load_seconds)
    with _open(args.eval) as stream:
        items = list(read_items(stream, args.eval, labelled=True))
    for item in items:
        if router.llm is None:  # offline: time the synchronous path, no thread hop
            decision, elapsed = timed(router.decide, item.text)
        else:
            decision, elapsed = await atimed(router.adecide, item.text)
        report.add(item, decision, elapsed)
    for line in report.lines(show_misses=args.misses):
        _print(line, sys.stdout)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(prog="chatbot route", description=__doc__.split("\n")[0])
    add_arguments(parser)
    raise SystemExit(run(parser.parse_args()))


if __name__ == "__main__":
    main()
