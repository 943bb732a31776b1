"""`chatbot ops`: operators' commands over Temporal visibility and the session workflow."""

from __future__ import annotations

import argparse

from shared.config import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["sessions", "show", "end"])


def run(args: argparse.Namespace, settings: Settings) -> int:
    raise NotImplementedError("chatbot ops is being built")
