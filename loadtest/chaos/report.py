"""Per fault, one row of figures; the table printed, results.json and report.md written."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from loadtest.chaos.record import EOF, TRANSPORT, MessageRecord
from loadtest.chaos.runner import Phase

CUT_MARGIN = 1.0  # seconds around a process kill in which its connections break

DEFINITIONS = """\
- in flight: messages sent and not yet finished when the fault was injected.
- answered: messages whose client received the final reply.
- clear errors: answers that tell the client what to do: 429 and 503 with Retry-After,
  other 4xx and 502, and `error` events/frames marked resumable (counted per answer).
- lost / duplicated / mismatched: Postgres row by row (loadtest/bench/integrity.verify):
  an acknowledged message without exactly one user row + one assistant row for its turn;
  a message stored twice; an assistant row that is not the reply to that user message, or
  a reply/turn id seen by the client that differs from what Postgres holds.
- 500: responses 500 (and WebSocket `internal` error frames); 503: responses 503;
  no R-A: 503 or 429 without Retry-After (a failure).
- broken: SSE/WebSocket streams that ended without `final` or a resumable `error` (closed,
  or the connection broke) while no process serving them was being killed, plus resumes
  of a client's own turn refused with 404. cut: streams whose connection died with a
  killed gateway (each then resumed).
- failed: messages that ended with a final, clear failure (a non-resumable error, 4xx, 502);
  gave up: messages unanswered at their deadline (180 s).
- recovery: seconds from the fault's end (the process back and ready, or the scripted
  misbehaviour used up and over) until every message in flight at that moment had its
  answer; with none in flight, until the first message sent after it was answered."""

COLUMNS = (
    ("fault", "fault"),
    ("in_flight", "in flight"),
    ("answered", "answered"),
    ("clear_errors", "clear errors"),
    ("lost", "lost"),
    ("duplicated", "duplicated"),
    ("mismatched", "mismatched"),
    ("status_500", "500"),
    ("status_503", "503"),
    ("no_retry_after", "no R-A"),
    ("broken", "broken"),
    ("cut", "cut"),
    ("failed", "failed"),
    ("gave_up", "gave up"),
    ("recovery_s", "recovery s"),
)
# A message unanswered at its deadline fails the run too: the rows may be right, but its
# user never got the reply.
FAILING = (
    "lost",
    "duplicated",
    "mismatched",
    "status_500",
    "no_retry_after",
    "broken",
    "gave_up",
)


def _in_flight(rec: MessageRecord, at: float) -> bool:
    return (
        rec.first_sent is not None
        and rec.first_sent <= at
        and (rec.finished_at is None or rec.finished_at > at)
    )


def _recovery(records: list[MessageRecord], ended: float) -> float | None:
    pending = [r for r in records if _in_flight(r, ended)]
    if pending:
        if any(r.finished_at is None or not r.answered for r in pending):
            return None
        return max(float(r.finished_at or 0) for r in pending) - ended
    later = [r for r in records if r.first_sent is not None and r.first_sent > ended and r.answered]
    if not later:
        return None
    first = min(later, key=lambda r: float(r.first_sent or 0))
    return float(first.finished_at or 0) - ended


def _clear(rec: MessageRecord) -> int:
    told = sum(1 for code in rec.statuses if 400 <= code < 500 or code in (502, 503))
    return told - rec.without_retry_after + rec.resumable_errors


def summarize(phase: Phase) -> dict[str, Any]:
    window = phase.window
    records = phase.records
    cuts = window.cuts if window else []
    broken = cut = 0
    for rec in records:
        for end in rec.streams:
            if end.how not in (EOF, TRANSPORT):
                continue
            if any(a - CUT_MARGIN <= end.at <= b + CUT_MARGIN for a, b in cuts):
                cut += 1
            else:
                broken += 1
        broken += rec.resume_refused
    statuses = [code for rec in records for code in rec.statuses]
    recovery = _recovery(records, window.ended) if window else None
    return {
        "fault": phase.fault.name,
        "summary": phase.fault.summary,
        "sessions": phase.sessions,
        "messages": phase.messages,
        "sent": len(records),
        "in_flight": sum(_in_flight(r, window.started) for r in records) if window else 0,
        "answered": sum(r.answered for r in records),
        "clear_errors": sum(_clear(r) for r in records),
        "lost": len(phase.check.lost),
        "duplicated": len(phase.check.duplicated),
        "mismatched": len(phase.check.mismatched),
        "status_500": statuses.count(500),
        "status_503": statuses.count(503),
        "no_retry_after": sum(r.without_retry_after for r in records),
        "broken": broken,
        "cut": cut,
        "failed": sum(r.failed is not None for r in records),
        "gave_up": sum(r.gave_up for r in records),
        "recovery_s": None if recovery is None else round(recovery, 2),
        "fault_seconds": round(window.ended - window.started, 2) if window else None,
        "phase_seconds": round(phase.elapsed, 1),
        "failed_turns_in_postgres": len(phase.check.failed_turns),
        "notes": [*phase.notes, *([window.note] if window and window.note else [])],
        "problems": {
            "lost": phase.check.lost,
            "duplicated": phase.check.duplicated,
            "mismatched": phase.check.mismatched,
            "failed": {r.client_message_id: r.failed for r in records if r.failed},
            "gave_up": [r.client_message_id for r in records if r.gave_up],
        },
    }


def failures(rows: list[dict[str, Any]]) -> list[str]:
    return [f"{row['fault']}: {key} {row[key]}" for row in rows for key in FAILING if row[key]]


def _cell(value: Any) -> str:
    return "n/a" if value is None else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    heads = [h for _, h in COLUMNS]
    cells = [[_cell(row[k]) for k, _ in COLUMNS] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    line = " | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))
    rule = "-|-".join("-" * w for w in widths)
    body = [" | ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join([f"| {line} |", f"|-{rule}-|", *(f"| {b} |" for b in body)])


def write(
    out_dir: Path, meta: dict[str, Any], rows: list[dict[str, Any]], phases: list[Phase]
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    records = {p.fault.name: [r.as_dict() for r in p.records] for p in phases}
    problems = failures(rows)
    results = {"meta": meta, "faults": rows, "failures": problems}
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    (out_dir / "records.json").write_text(json.dumps(records))
    lines = [
        "# Chaos run",
        "",
        f"{meta['sessions']} sessions x {meta['messages']} messages per fault, clients "
        "round robin over JSON, SSE and WebSocket; "
        f"{meta['seconds']:.0f} s in all, started {meta['started']}.",
        "",
        table(rows),
        "",
        "Verdict: " + ("every check passed." if not problems else "; ".join(problems)),
        "",
        "## What the columns mean",
        "",
        DEFINITIONS,
        "",
    ]
    notes = [f"- {row['fault']}: {n}" for row in rows for n in row["notes"]]
    if notes:
        lines += ["## Notes", "", *notes, ""]
    (out_dir / "report.md").write_text("\n".join(lines))
