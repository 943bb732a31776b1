"""What a turn's tools found, as plain text: the companies with their key fields, a data
query's first rows, the numbered sources, and the tools that were unavailable. Rendered
the same way whatever the model made of the results, so a reply that ignores them still
reaches the user with them (the TurnResult's `findings`, the stored turn, the CLI, the next
turn's context).

Works on the tool results as JSON (TurnResult.tool_results), so a client renders a stored
turn exactly as the workflow did. Pure and deterministic: the workflow calls it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

TOOL_NAMES = {
    "company_search": "Company search",
    "web_search": "Web search",
    "query_data": "Data",
}
CELL_CHARS = 40  # a data cell's width at most, in a terminal's table


def render(tool_results: Any, citations: Any = ()) -> str:
    """The findings block: one line per fact, empty when no tool ran."""
    return "\n".join(lines(tool_results, citations))


def lines(tool_results: Any, citations: Any = ()) -> list[str]:
    out: list[str] = []
    results = as_list(tool_results)
    for tool in results:
        out += _tool(tool)
    cited = as_list(citations) or _web_citations(results)
    if cited:
        out.append("Sources:")
        out += [_source(i, citation) for i, citation in enumerate(cited, 1)]
    return out


def as_list(value: Any) -> list[Mapping[str, Any]]:
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _tool(result: Mapping[str, Any]) -> list[str]:
    name = TOOL_NAMES.get(text(result.get("tool")))
    if name is None:  # a tool this renderer does not know: its text is in the reply
        return []
    if result.get("unavailable"):
        return [f"{name} is unavailable: {text(result.get('message')) or 'not configured'}"]
    if result.get("tool") == "query_data":
        return _data(result)
    if result.get("tool") != "company_search":
        return []  # the web's answer is the reply's to give; its sources are listed below
    companies = as_list(result.get("companies"))
    if not companies:
        return ["Company search found no matching companies."]
    # The label goes on the sample rows only; on the heading when they all are.
    every = all(_is_sample(c, result) for c in companies)
    head = "Companies found (sample data):" if every else "Companies found:"
    rows = (
        _company(i, c, mark=not every and _is_sample(c, result)) for i, c in enumerate(companies, 1)
    )
    return [head, *(line for lines in rows for line in lines)]


def _data(result: Mapping[str, Any]) -> list[str]:
    """A query's first rows as an aligned table (the full result is its CSV file)."""
    columns = result.get("columns")
    if not isinstance(columns, list):
        attempts = as_list(result.get("attempts"))
        last = text(attempts[-1].get("error")) if attempts else text(result.get("error"))
        return [f"The data could not be read: {last}" if last else "The data could not be read."]
    raw_rows = result.get("rows")
    rows = [r for r in raw_rows if isinstance(r, list)] if isinstance(raw_rows, list) else []
    count = result.get("row_count")
    total = count if isinstance(count, int) and not isinstance(count, bool) else len(rows)
    shown = f"{total} row{'' if total == 1 else 's'}"
    if len(rows) < total:
        shown += f", the first {len(rows)}"
    if result.get("truncated"):
        shown += " (cut at the row limit)"
    head = f"Data{' (sample data)' if result.get('sample') else ''}: {shown}:"

    def cell(value: Any) -> str:
        shown = "" if value is None else " ".join(str(value).split())
        return shown if len(shown) <= CELL_CHARS else shown[: CELL_CHARS - 1] + "…"

    grid = [[cell(c) for c in columns], *([cell(v) for v in row] for row in rows)]
    widths = [max((len(r[i]) for r in grid if i < len(r)), default=0) for i in range(len(columns))]
    return [head, *("  " + " | ".join(map(str.ljust, r, widths)).rstrip() for r in grid)]


def _is_sample(company: Mapping[str, Any], result: Mapping[str, Any]) -> bool:
    """Per row; a stored turn from before rows carried it has the result's flag only."""
    flag = company.get("sample")
    return bool(result.get("sample")) if flag is None else flag is True


def _company(index: int, company: Mapping[str, Any], *, mark: bool = False) -> list[str]:
    where = " · ".join(
        x for x in (text(company.get("industry")), text(company.get("location"))) if x
    )
    score = company.get("score")
    first = f"  {index}. {text(company.get('name')) or '(no name)'}"
    if where:
        first += f" ({where})"
    if isinstance(score, int | float) and not isinstance(score, bool):
        first += f", match {score:.2f}"
    if mark:
        first += " [sample data]"
    capabilities = company.get("capabilities")
    if isinstance(capabilities, list):
        capabilities = ", ".join(str(c) for c in capabilities)
    details = [
        f"{label}: {value}"
        for label, value in (
            ("capabilities", text(capabilities)),
            ("contact", text(company.get("contact"))),
        )
        if value
    ]
    return [first, f"     {'; '.join(details)}"] if details else [first]


def _web_citations(results: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    web = next((r for r in results if r.get("tool") == "web_search"), {})
    return as_list(web.get("citations"))


def _source(position: int, citation: Mapping[str, Any]) -> str:
    index = citation.get("index")
    number = index if isinstance(index, int) and not isinstance(index, bool) else position
    url = text(citation.get("url"))
    title = text(citation.get("title")) or url or "source"
    return f"  [{number}] {title} <{url}>" if url and url != title else f"  [{number}] {title}"


def in_context(reply: str, findings: str) -> str:
    """A reply as later turns see it: what the model said, then what the tools found, so
    "the second one" refers to what the user was shown."""
    return f"{reply}\n\n{findings}" if findings else reply
