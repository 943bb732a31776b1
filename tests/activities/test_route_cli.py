"""`chatbot route`: JSON lines in, JSON lines out; --eval's report; clear errors with the
line number (exit 2) for input it cannot use."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from activities.intent import cli, linear
from shared.config import Settings, load_settings

ROOT = Path(__file__).parents[2]


@pytest.fixture
def offline() -> Settings:
    return load_settings(openai_api_key=None)


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([*argv, "--classifier", "light"])


def _write(path: Path, *lines: str) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_routes_each_line(
    tmp_path: Path, offline: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    source = _write(
        tmp_path / "in.jsonl",
        json.dumps({"text": "find a CNC machining shop in Ohio", "id": 7}),
        "",
        json.dumps({"text": "how much is bitcoin trading at"}),
        json.dumps({"text": "write a poem about companies"}),
    )
    assert cli.run(_args(str(source)), offline) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["intent"] for r in rows] == ["company_search", "web_search", "chat"]
    assert rows[0] == {
        "text": "find a CNC machining shop in Ohio",
        "intent": "company_search",
        "confidence": rows[0]["confidence"],
        "query": "CNC machining shop",
        "location": "Ohio",
        "web_query": None,
    }
    assert all(0 < r["confidence"] <= 1 for r in rows)
    assert rows[2]["query"] is None


def test_reads_standard_input(
    monkeypatch: pytest.MonkeyPatch, offline: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"text": "weather in Oslo tomorrow"}\n'))
    assert cli.run(_args("-"), offline) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (row["intent"], row["location"]) == ("web_search", "Oslo")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ("{not json", "in.jsonl:2: not a JSON object"),
        ('["a list"]', "in.jsonl:2: expected a JSON object with a 'text' field"),
        ('{"message": "no text field"}', "in.jsonl:2: needs a non-empty string field 'text'"),
        ('{"text": 42}', "in.jsonl:2: needs a non-empty string field 'text'"),
        ('{"text": "   "}', "in.jsonl:2: needs a non-empty string field 'text'"),
    ],
)
def test_bad_line_names_its_number(
    tmp_path: Path,
    offline: Settings,
    capsys: pytest.CaptureFixture[str],
    bad: str,
    message: str,
) -> None:
    source = _write(tmp_path / "in.jsonl", '{"text": "hi"}', bad, '{"text": "never routed"}')
    assert cli.run(_args(str(source)), offline) == 2
    captured = capsys.readouterr()
    assert message in captured.err
    assert len(captured.out.splitlines()) == 1  # the good line before it was answered


def test_missing_file_and_missing_mode(
    tmp_path: Path, offline: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(_args(str(tmp_path / "absent.jsonl")), offline) == 2
    assert "cannot read" in capsys.readouterr().err
    assert cli.run(_args(), offline) == 2
    assert "--eval" in capsys.readouterr().err


def test_eval_report(tmp_path: Path, offline: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    labelled = _write(
        tmp_path / "eval.jsonl",
        json.dumps({"text": "find a CNC machining shop in Ohio", "intent": "company_search"}),
        json.dumps({"text": "what is a supplier contract", "intent": "chat"}),
        json.dumps({"text": "latest news about lithium battery suppliers", "intent": "both"}),
        json.dumps({"text": "explain the latest version of the TCP spec", "intent": "chat"}),
        json.dumps({"text": "busco talleres de torno en Jalisco", "intent": "company_search"}),
    )
    assert cli.run(_args("--eval", str(labelled), "--misses"), offline) == 0
    out = capsys.readouterr().out
    assert "accuracy        100.0% (5/5), classifier light" in out
    assert "baseline        20.0% (1/5), the keyword list" in out
    # Per class (recall) and per language, the language guessed where not labelled.
    assert "per class       both 100.0% (1/1), chat 100.0% (2/2), company_search 100.0% (2/2)" in (
        out
    )
    assert "per lang        en 100.0% (4/4), es 100.0% (1/1)" in out
    assert "p50 " in out and "p99 " in out
    assert "confusion (rows = expected, columns = predicted)" in out
    matrix = {line.split()[0]: line.split()[1:] for line in out.splitlines()[-4:]}
    assert matrix == {
        "company_search": ["2", "0", "0", "0"],
        "web_search": ["0", "0", "0", "0"],
        "both": ["0", "0", "1", "0"],
        "chat": ["0", "0", "0", "2"],
    }


def test_eval_needs_labels(
    tmp_path: Path, offline: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    labelled = _write(tmp_path / "eval.jsonl", json.dumps({"text": "hi", "intent": "greeting"}))
    assert cli.run(_args("--eval", str(labelled)), offline) == 2
    assert "eval.jsonl:1: needs an 'intent' field" in capsys.readouterr().err


def test_the_shipped_eval_set_scores_above_the_bar(
    offline: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(_args("--eval", str(linear.HERE / "eval.jsonl")), offline) == 0
    out = capsys.readouterr().out
    accuracy = float(out.split("accuracy")[1].split("%")[0])
    baseline = float(out.split("baseline")[1].split("%")[0])
    assert accuracy >= 90.0 > baseline


def test_module_entry_point_over_stdin() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "activities.intent.cli", "-", "--no-llm"],
        input='{"text": "who makes custom PCBs in small batches"}\n{"oops": 1}\n',
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    (row,) = [json.loads(line) for line in done.stdout.splitlines()]
    assert (row["intent"], row["query"]) == ("company_search", "custom PCBs in small batches")
    assert "-:2: needs a non-empty string field 'text'" in done.stderr
