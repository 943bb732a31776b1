"""The answer eval: its checks catch what they name, its cases build the service's own
prompts, and a short run on the real local model prints the table."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadtest.answers.cases import load_cases, prompt
from loadtest.answers.checks import loop, score
from tests.support import free_port


def test_a_loop_is_caught_and_a_list_is_not() -> None:
    assert loop("The correct answer is Buckeye Circuit Works. " * 3) is not None
    assert (
        loop("1. Buckeye Circuit Works in Columbus. 2. Lakeshore Precision in Cleveland.") is None
    )


def test_each_check_fails_on_what_it_names() -> None:
    expect = {"mention_all": ["Priya"], "language": "es", "max_words": 5, "admits": True}
    failures = score("Hello there, I think your name is probably Bob.", expect)
    assert failures["mentions"] == "missing Priya"
    assert failures["language"] == "answered in English, asked in es"
    assert failures["length"] == "9 words, wanted 1-5"
    assert failures["admits"] == "does not say it cannot know current facts"
    passing = score("Te llamas Priya, ¿verdad?", {**expect, "max_words": 10})
    assert not any(v for k, v in passing.items() if k != "admits")


def test_mentions_are_whole_words() -> None:
    colours = {"mention_all": ["red", "blue"]}
    assert score("Paint needs care: blue is required.", colours)["mentions"] == "missing red"
    assert score("Red and blue.", colours)["mentions"] is None
    assert score("It was 1942.", {"mention_all": ["42"]})["mentions"] == "missing 42"


def test_invented_current_facts_are_flagged_and_an_honest_answer_is_not() -> None:
    expect = {"admits": True, "no_current_facts": True}
    invented = score("Apple trades at $231.50, up 2.3% on December 2, 2026.", expect)
    assert invented["no_current_facts"] == "states a current fact: “$2”"
    honest = score("I can\u2019t check live stock prices; my knowledge ends in 2023.", expect)
    assert honest == {
        "no_loop": None,
        "length": None,
        "language": None,
        "admits": None,
        "no_current_facts": None,
    }


def test_the_cases_build_the_services_prompts() -> None:
    cases = load_cases()
    assert 30 <= len(cases) <= 50
    assert len({c.id for c in cases}) == len(cases)
    assert {c.kind for c in cases} >= {
        "greeting",
        "follow-up",
        "tool results",
        "not configured",
        "spanish",
        "long message",
    }
    pcb = next(c for c in cases if c.id == "tool-pcb-ohio")
    system, user = (
        prompt(pcb, budget=6000, model="smollm2")[0],
        prompt(pcb, budget=6000, model="x")[-1],
    )
    assert "Buckeye Circuit Works (Electronics Manufacturing, Columbus, OH)" in system["content"]
    assert user == {"role": "user", "content": "Which suppliers do PCB assembly in Ohio?"}
    follow = next(c for c in cases if c.id == "follow-name")
    assert [m["role"] for m in prompt(follow, budget=6000, model="x")] == [
        "system",
        "user",
        "assistant",
        "user",
    ]
    long = next(c for c in cases if c.id == "long-summary")
    assert len(long.message.split()) > 300


@pytest.mark.timeout(600)
def test_a_short_run_on_the_local_model_prints_its_table(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "eval"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatbot",
            "eval-answers",
            "--models",
            "smollm2",
            "--only",
            "greet-hi,know-sum",
            "--port",
            str(free_port()),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| smollm2 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[2].endswith("/2"), row
    assert float(cells[8]) > 0 and float(cells[10]) > 0, row  # TTFT and reply time measured
    report = (out / "report.md").read_text()
    assert "- **greet-hi** (greeting" in report and "- **know-sum** (general" in report
    assert len((out / "replies.jsonl").read_text().splitlines()) == 2
