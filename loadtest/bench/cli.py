"""Arguments and entry point of `chatbot bench` (wired into chatbot.cli)."""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="bench-results", help="where results are written")


def run(args: argparse.Namespace) -> int:
    raise NotImplementedError("chatbot bench is being built")
