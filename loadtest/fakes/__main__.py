"""Run a fake in the foreground until SIGINT/SIGTERM, e.g.

python -m loadtest.fakes openai --port 8100 --latency-ms 50 --tokens-per-second 200
python -m loadtest.fakes databricks --port 8200 --dataset companies.jsonl --token T
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from typing import Any

from loadtest.fakes.databricks_server import SAMPLE_DATASET, FakeDatabricksServer
from loadtest.fakes.openai_server import FakeOpenAIServer
from loadtest.fakes.scripting import FakeServer

log = logging.getLogger("loadtest.fakes")


def build(argv: list[str] | None = None) -> FakeServer:
    parser = argparse.ArgumentParser(prog="python -m loadtest.fakes")
    kinds = parser.add_subparsers(dest="kind", required=True)
    openai = kinds.add_parser("openai", help="chat completions and embeddings")
    openai.add_argument("--api-key", help="accept only this bearer key (default: any)")
    openai.add_argument("--tokens-per-second", type=float, default=0, help="0: no delay")
    databricks = kinds.add_parser("databricks", help="vector search over a JSONL dataset")
    databricks.add_argument("--dataset", default=str(SAMPLE_DATASET))
    databricks.add_argument("--token", help="accept only this bearer token (default: any)")
    databricks.add_argument("--index-name", default="main.default.companies")
    for sub in (openai, databricks):
        sub.add_argument("--host", default="127.0.0.1")
        sub.add_argument("--port", type=int, default=0, help="0: pick a free port")
        sub.add_argument("--latency-ms", type=float, default=0, help="before the first token")
    args = parser.parse_args(argv)
    common: dict[str, Any] = {"host": args.host, "port": args.port, "latency_ms": args.latency_ms}
    if args.kind == "openai":
        tps = args.tokens_per_second
        return FakeOpenAIServer(api_key=args.api_key, tokens_per_second=tps, **common)
    return FakeDatabricksServer(
        args.dataset, token=args.token, index_name=args.index_name, **common
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    server = build(argv)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _frame: done.set())
    # Served from a thread, so that stop() can release hung requests before shutting down.
    with server:
        log.info("%s listening on %s", type(server).__name__, server.url)
        done.wait()
        log.info("stopping")


if __name__ == "__main__":
    main()
