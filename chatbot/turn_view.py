"""A finished turn for a terminal: what the page shows beside the reply (companies found,
sources, tools that were unavailable, a failure, the intent and timings), as a few lines.

Works on the TurnResult as JSON, so it shows what every client gets, whatever the model
made of the tool results."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# The page's labels (chatbot/static/messages.js).
INTENTS = {
    "chat": "chat",
    "company_search": "company search",
    "web_search": "web search",
    "both": "companies + web",
}
STATUS_LABELS = {"cancelled": "stopped", "failed": "failed"}
TOOL_NAMES = {"company_search": "Company search", "web_search": "Web search"}


def describe(result: Mapping[str, Any]) -> list[str]:
    """The lines to print under a turn's reply."""
    lines: list[str] = []
    for tool in _list(result.get("tool_results")):
        lines += _tool(tool)
    cited = _sources(result)
    if cited:
        lines.append("Sources:")
        lines += [_source(i, citation) for i, citation in enumerate(cited, 1)]
    if result.get("status") == "failed":
        error = _text(result.get("error"))
        lines.append(f"The reply failed: {error}" if error else "The reply failed.")
    lines.append(_meta(result))
    return lines


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, Sequence) else []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _tool(result: Mapping[str, Any]) -> list[str]:
    name = TOOL_NAMES.get(_text(result.get("tool")))
    if name is None:  # a tool this client does not know: its text is in the reply
        return []
    if result.get("unavailable"):
        return [f"{name} is unavailable: {_text(result.get('message')) or 'not configured'}"]
    if result.get("tool") != "company_search":
        message = _text(result.get("message"))
        return [message] if message else []
    companies = _list(result.get("companies"))
    head = "Companies (sample data):" if result.get("sample") else "Companies:"
    if not companies:
        return [head, "  No matching companies found."]
    return [head, *(line for i, c in enumerate(companies, 1) for line in _company(i, c))]


def _company(index: int, company: Mapping[str, Any]) -> list[str]:
    where = " · ".join(
        x for x in (_text(company.get("industry")), _text(company.get("location"))) if x
    )
    score = company.get("score")
    first = f"  {index}. {_text(company.get('name')) or '(no name)'}"
    if where:
        first += f" ({where})"
    if isinstance(score, int | float):
        first += f", match {score:.2f}"
    capabilities = company.get("capabilities")
    if isinstance(capabilities, list):
        capabilities = ", ".join(str(c) for c in capabilities)
    details = [
        f"{label}: {value}"
        for label, value in (
            ("capabilities", _text(capabilities)),
            ("contact", _text(company.get("contact"))),
        )
        if value
    ]
    return [first, f"     {'; '.join(details)}"] if details else [first]


def _sources(result: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The turn's citations; before those are merged in, the web search result's own."""
    cited = _list(result.get("citations"))
    if cited:
        return cited
    web = next((r for r in _list(result.get("tool_results")) if r.get("tool") == "web_search"), {})
    return _list(web.get("citations"))


def _source(position: int, citation: Mapping[str, Any]) -> str:
    index = citation.get("index")
    number = index if isinstance(index, int) else position
    url = _text(citation.get("url"))
    title = _text(citation.get("title")) or url or "source"
    return f"  [{number}] {title} <{url}>" if url and url != title else f"  [{number}] {title}"


def _ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{round(value)} ms"


def _meta(result: Mapping[str, Any]) -> str:
    """`[intent · status · total, first token]`: the page's badges and timings."""
    intent = _text(result.get("intent"))
    parts = [INTENTS.get(intent, intent or "chat")]
    status = STATUS_LABELS.get(_text(result.get("status")))
    if status:
        parts.append(status)
    raw = result.get("timings_ms")
    steps = {
        k: float(v)
        for k, v in (raw.items() if isinstance(raw, Mapping) else ())
        if isinstance(v, int | float)
    }
    # first_token is measured inside generate_reply, so it is not added to the total.
    total = sum(v for k, v in steps.items() if k != "first_token")
    if total:
        timing = _ms(total)
        if "first_token" in steps:
            timing += f", first token {_ms(steps['first_token'])}"
        parts.append(timing)
    return f"[{' · '.join(parts)}]"
