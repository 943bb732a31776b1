"""A finished turn for a terminal: what the page shows beside the reply (companies found,
sources, tools that were unavailable, a failure, the intent and timings), as a few lines.

Works on the TurnResult as JSON, so it shows what every client gets, whatever the model
made of the tool results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared import findings

# The page's labels (chatbot/static/messages.js).
INTENTS = {
    "chat": "chat",
    "company_search": "company search",
    "web_search": "web search",
    "both": "companies + web",
}
STATUS_LABELS = {"cancelled": "stopped", "failed": "failed"}


def describe(result: Mapping[str, Any]) -> list[str]:
    """The lines to print under a turn's reply."""
    lines = findings.lines(result.get("tool_results"), result.get("citations"))
    if result.get("status") == "failed":
        error = findings.text(result.get("error"))
        lines.append(f"The reply failed: {error}" if error else "The reply failed.")
    lines.append(_meta(result))
    return lines


def _ms(value: float) -> str:
    return f"{value / 1000:.1f} s" if value >= 1000 else f"{round(value)} ms"


def _meta(result: Mapping[str, Any]) -> str:
    """`[intent · status · total, first token]`: the page's badges and timings."""
    intent = findings.text(result.get("intent"))
    parts = [INTENTS.get(intent, intent or "chat")]
    status = STATUS_LABELS.get(findings.text(result.get("status")))
    if status:
        parts.append(status)
    if result.get("cached") is True:
        parts.append("cached")
    handoff = result.get("handoff")
    if isinstance(handoff, Mapping):
        agent = findings.text(handoff.get("agent_id"))
        parts.append(f"with {agent}, a person" if agent else "waiting for a person")
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
