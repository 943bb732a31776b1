"""Intent detection. A placeholder keyword router until the layered router lands; it
answers in the shape the real one will (intent, confidence, extracted query)."""

from __future__ import annotations

import re

from temporalio import activity

from shared.models import DetectIntentInput, IntentResult

_COMPANY = re.compile(
    r"\b(compan(y|ies)|suppliers?|vendors?|manufacturers?|firms?|who makes|contractors?)\b", re.I
)
_WEB = re.compile(
    r"\b(latest|current(ly)?|today|news|weather|stock price|this week|right now|trading at)\b",
    re.I,
)


class IntentActivities:
    @activity.defn
    async def detect_intent(self, req: DetectIntentInput) -> IntentResult:
        company, web = bool(_COMPANY.search(req.text)), bool(_WEB.search(req.text))
        if company and web:
            return IntentResult(intent="both", confidence=0.6, query=req.text)
        if company:
            return IntentResult(intent="company_search", confidence=0.6, query=req.text)
        if web:
            return IntentResult(intent="web_search", confidence=0.6, query=req.text)
        return IntentResult(intent="chat", confidence=0.6)
