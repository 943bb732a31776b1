"""`chatbot chaos`: its row-by-row check and its figures on known data, then a short run
end to end (the whole stack as separate processes; Redis killed mid-stream, one worker
SIGKILLed, a slow first token of 8 s, Postgres restarted -m immediate) that must lose,
duplicate and mismatch nothing, break no stream, answer no 500 and no 503 without
Retry-After."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtest.bench.integrity import Sent, verify
from loadtest.chaos.faults import FAULTS, SHORT, Window
from loadtest.chaos.record import EOF, FINAL, RESUMABLE, TRANSPORT, MessageRecord, StreamEnd
from loadtest.chaos.report import FAILING, summarize
from loadtest.chaos.runner import Phase
from tests.support import own_stack_env


def _pair(sid: str, cmid: str, turn: str, reply: str | None = None) -> list[dict[str, Any]]:
    user = {
        "session_id": sid,
        "role": "user",
        "client_message_id": cmid,
        "content": f"hello [{cmid}]",
        "turn_id": turn,
        "status": "complete",
    }
    answer = {
        **user,
        "role": "assistant",
        "client_message_id": None,
        "content": reply if reply is not None else f"Fake reply to: hello [{cmid}]",
    }
    return [user, answer]


def test_rows_are_checked_one_by_one() -> None:
    s = "run.fault.s0"
    rows = [
        *_pair(s, "ok", "t1"),
        *_pair(s, "twice", "t2"),
        *[{**r, "client_message_id": None} for r in _pair(s, "twice", "t9")],  # again
        *_pair(s, "wrong", "t3", reply="Fake reply to: hello [other]"),
        *_pair(s, "seen-other", "t4"),
        _pair(s, "no-reply", "t5")[0],
    ]
    sent = [
        Sent(s, "ok", True, "t1", "Fake reply to: hello [ok]"),
        Sent(s, "twice", True, "t2"),
        Sent(s, "wrong", True, "t3"),
        Sent(s, "seen-other", True, "t4", "a reply Postgres does not hold"),
        Sent(s, "no-reply", True, "t5"),
        Sent(s, "never-stored", True),
        Sent(s, "refused", False),  # never acknowledged: not lost
    ]
    check = verify(rows, sent)
    assert check.checked == 7
    assert check.lost == ["no-reply", "never-stored"]
    assert check.duplicated == ["twice"]
    assert check.mismatched == ["wrong", "seen-other"]


def test_a_stream_cut_by_a_killed_gateway_is_not_broken_but_others_are() -> None:
    fault = FAULTS["gateway-kill"]
    phase = Phase(fault, sessions=1, messages=3)
    phase.window = Window(started=100.0, ended=102.0, cuts=[(100.0, 102.0)])
    cut = MessageRecord("s", "sse", "m1", "t", first_sent=99.0)
    cut.streams = [StreamEnd(100.2, TRANSPORT), StreamEnd(101.0, RESUMABLE)]
    cut.resumable_errors = 1
    cut.answer("t1", "r")
    cut.finished_at = 104.0
    broken = MessageRecord("s", "ws", "m2", "t", first_sent=105.0, finished_at=106.0)
    broken.streams = [StreamEnd(105.5, EOF), StreamEnd(105.9, FINAL)]
    broken.reply = "r"
    told = MessageRecord("s", "json", "m3", "t", first_sent=99.5, finished_at=103.0)
    told.status(503, None)  # no Retry-After: a failure
    told.status(503, "2")
    told.status(200, None)
    told.reply = "r"
    phase.records = [cut, broken, told]
    row = summarize(phase)
    assert (row["cut"], row["broken"]) == (1, 1)
    assert (row["status_503"], row["no_retry_after"], row["clear_errors"]) == (2, 1, 2)
    assert row["in_flight"] == 2 and row["answered"] == 3
    assert row["recovery_s"] == 2.0  # in flight at the end (102): answered at 104 and 103


@pytest.mark.timeout(330)
def test_short_chaos_run_loses_nothing(tmp_path: Path) -> None:
    env = own_stack_env()
    done = subprocess.run(
        [sys.executable, "-m", "chatbot", "chaos", "--short", "--out", str(tmp_path / "out")],
        cwd=tmp_path,  # no .env files from the repository
        env=env,
        capture_output=True,
        text=True,
        timeout=310,
        check=False,
    )
    [run_dir] = (tmp_path / "out").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    rows = {row["fault"]: row for row in results["faults"]}
    assert list(rows) == list(SHORT), done.stdout + done.stderr
    for name, row in rows.items():
        for key in FAILING:
            assert row[key] == 0, (name, key, row["problems"], done.stdout[-3000:])
        assert row["answered"] == row["sent"] == 6 * 3, (name, row["problems"])
        assert row["in_flight"] > 0 and row["recovery_s"] is not None, name
    assert rows["redis-mid-stream"]["clear_errors"] > 0, "the kill reached a running stream"
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recovery" in done.stdout and (run_dir / "report.md").exists()
