"""The eval's table (the README's) and every reply with what it failed, as Markdown."""

from __future__ import annotations

from loadtest.answers.runner import ModelRun

COLUMNS = [
    ("model", "model", "{}"),
    ("file_mb", "file MB", "{}"),
    ("cases_passed", "cases passed", "{}"),
    ("checks_passed", "checks passed", "{:.0%}"),
    ("grounded", "names from results", "{:.0%}"),
    ("language", "user's language", "{:.0%}"),
    ("no_invented_facts", "no invented facts", "{:.0%}"),
    ("loops", "loops", "{}"),
    ("ttft_p50_ms", "TTFT p50 ms", "{:.0f}"),
    ("tokens_per_second_p50", "tokens/s p50", "{:.1f}"),
    ("reply_p50_ms", "reply p50 ms", "{:.0f}"),
    ("reply_p90_ms", "reply p90 ms", "{:.0f}"),
]


def table(runs: list[ModelRun]) -> str:
    rows = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |"]
    rows.append("|" + "---|" * len(COLUMNS))
    for run in runs:
        summary = run.summary()
        cells = []
        for key, _, fmt in COLUMNS:
            value = summary[key]
            cells.append("n/a" if value is None else fmt.format(value))
        cells[2] = f"{summary['cases_passed']}/{summary['cases']}"
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def details(run: ModelRun) -> str:
    lines = [f"### {run.model.alias}", ""]
    for reply in run.replies:
        failed = {k: v for k, v in reply.failures.items() if v}
        verdict = "pass" if not failed else "; ".join(f"{k}: {v}" for k, v in failed.items())
        how = "fixed reply, no model asked" if reply.fixed else f"{reply.total_ms:.0f} ms"
        shown = " ".join(reply.text.split())
        shown = shown if len(shown) <= 300 else shown[:299] + "…"
        lines.append(
            f"- **{reply.case.id}** ({reply.case.kind}, {how}): {verdict}  \n"
            f"  > {shown or '(empty)'}"
        )
    return "\n".join(lines)


def markdown(runs: list[ModelRun], *, header: str) -> str:
    parts = [header, "", table(runs), "", "## Replies", ""]
    parts += [details(run) + "\n" for run in runs]
    return "\n".join(parts)
