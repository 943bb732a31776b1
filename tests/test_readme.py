"""The README's shell blocks as a new user would paste them: every `chatbot` command is
spelled as the venv's `.venv/bin/chatbot` (no activation step is documented), parses with
the CLI's own parser, names files that exist, and the ones that need no running stack are
run as written. The commands against a running `chatbot dev` are covered by their own
tests (tests/chatbot/test_cli_client.py, test_ops.py, test_dev.py)."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.cli import build_parser

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
VENV_BIN = ".venv/bin/"
# Commands that need no stack, accounts or network, run as the README writes them.
RUN_AS_WRITTEN = ("chatbot route", "chatbot eval-answers --list", "chatbot chaos --list")


def _commands() -> list[str]:
    """Each shell line of the README's bash blocks, continuations joined, comments cut."""
    lines: list[str] = []
    for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", README, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line and not line.startswith("#"):
                lines.append(line)
    return lines


def _chatbot_invocations(line: str) -> list[list[str]]:
    """The argument lists of every `.venv/bin/chatbot ...` in a line (up to |, &&, ))."""
    found = []
    for match in re.finditer(r"\.venv/bin/chatbot\b([^|&;)]*)", line):
        found.append(shlex.split(match.group(1)))
    return found


COMMANDS = _commands()


def test_the_readme_has_the_two_quick_start_commands() -> None:
    assert COMMANDS[0] == (
        "python3 -m venv .venv && .venv/bin/pip install -e '.[local]' && .venv/bin/chatbot dev"
    )
    assert COMMANDS[1] == (
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]' && "
        ".venv/bin/python -m pytest"
    )


@pytest.mark.parametrize("line", COMMANDS)
def test_every_command_works_on_linux_as_written(line: str) -> None:
    # A bare `chatbot` (or locust) needs an activated venv the README never activates.
    bare = re.findall(r"(?:^|[|&;()]\s*|\$\()\s*(chatbot|locust|pytest|temporal)\b", line)
    assert bare == [], f"use {VENV_BIN}{bare[0]}: {line}"
    assert not re.search(r"(?:^|\s)(?:open|xdg-open|pbcopy)\s", line), line
    for args in _chatbot_invocations(line):
        try:
            build_parser().parse_args(args)
        except SystemExit as err:  # argparse: an unknown command or option
            pytest.fail(f"`chatbot {' '.join(args)}` does not parse (exit {err.code})")
    for path in re.findall(r"(?<![\w./-])((?:activities|loadtest|chatbot|tests)/[\w./-]+)", line):
        assert (ROOT / path).exists(), f"{path} (in `{line}`) does not exist"


@pytest.mark.parametrize(
    "line", [c for c in COMMANDS if any(f"{VENV_BIN}{r}" in c for r in RUN_AS_WRITTEN)]
)
def test_the_offline_commands_run_as_written(line: str) -> None:
    venv_bin = f"{Path(sys.executable).parent}/"
    done = subprocess.run(
        ["bash", "-c", line.replace(VENV_BIN, venv_bin)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, (line, done.stderr[-2000:])
    assert done.stdout.strip(), line
