"""The keyword router this package replaces, kept to score beside it: the original
system's list ("companies", "supplier", "vendor", "current", "latest", "news", "weather",
"stock price", ...) as this repository's placeholder spelled it out. Company words and
current-events words; both when both match; chat otherwise."""

from __future__ import annotations

import re

from shared.models import Intent, IntentResult

_COMPANY = re.compile(
    r"\b(compan(y|ies)|suppliers?|vendors?|manufacturers?|firms?|who makes|contractors?)\b", re.I
)
_WEB = re.compile(
    r"\b(latest|current(ly)?|today|news|weather|stock price|this week|right now|trading at)\b",
    re.I,
)


def keyword_intent(text: str) -> Intent:
    company, web = bool(_COMPANY.search(text)), bool(_WEB.search(text))
    if company and web:
        return "both"
    if company:
        return "company_search"
    if web:
        return "web_search"
    return "chat"


def keyword_route(text: str) -> IntentResult:
    intent = keyword_intent(text)
    return IntentResult(intent=intent, confidence=0.6, query=None if intent == "chat" else text)
