"""The layered intent router: unambiguous rules first, then the learned classifier, then,
only when a real chat model is configured and the classifier is unsure, one LLM call.
Every answer carries a confidence and, for searches, the query and location filter."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass
from typing import Literal

from openai import AsyncOpenAI

from activities.intent import query as query_mod
from activities.intent import rules
from activities.intent.classifier import (
    INTENTS,
    Classifier,
    ClassifierName,
    default_classifier,
    top,
)
from activities.intent.llm_fallback import LlmFallback
from shared.breaker import Breaker
from shared.config import Settings
from shared.models import IntentResult, TokenUsage

log = logging.getLogger(__name__)

# Below this classifier confidence the LLM decides, when there is one. In 5-fold
# cross-validation of the light classifier on examples.jsonl 8.5 % of the answers fell
# below it, and 63 % of those were right; above it, 97.6 % were.
LLM_THRESHOLD = 0.6

Source = Literal["rule", "classifier", "llm"]


@dataclass(frozen=True)
class Decision:
    """A routing answer and how it was reached (for the CLI, logs and tests)."""

    result: IntentResult
    source: Source
    detail: str  # the rule's or the classifier's name
    probabilities: dict[str, float] | None = None
    usage: TokenUsage | None = None  # of the LLM layer's call, when it was asked


def _result(text: str, intent: str, confidence: float) -> IntentResult:
    result = IntentResult.model_validate({"intent": intent, "confidence": round(confidence, 4)})
    if result.intent != "chat":
        found = query_mod.extract(text, result.intent)
        result.query, result.location = found.query, found.location
        result.web_query = found.web_query
    return result


class Router:
    """Thread-safe; build one per process and share it. `route` runs the offline layers;
    `aroute` runs them in a thread and adds the LLM when one is given."""

    def __init__(
        self,
        classifier: Classifier | None = None,
        *,
        llm: LlmFallback | None = None,
        llm_threshold: float = LLM_THRESHOLD,
    ) -> None:
        self.classifier = classifier if classifier is not None else default_classifier()
        self.llm = llm
        self.llm_threshold = llm_threshold

    def warm(self) -> None:
        """Load the model now rather than on the first message."""
        self.classifier.load()

    def decide(self, text: str) -> Decision:
        matched = rules.match(text)
        if matched is not None:
            return Decision(
                _result(text, matched.intent, rules.RULE_CONFIDENCE), "rule", matched.rule
            )
        probabilities = self.classifier.predict(text)
        intent, confidence = top(probabilities)
        return Decision(
            _result(text, intent, confidence),
            "classifier",
            self.classifier.name,
            dict(zip(INTENTS, probabilities, strict=True)),
        )

    def route(self, text: str) -> IntentResult:
        return self.decide(text).result

    async def adecide(self, text: str) -> Decision:
        decision = await asyncio.to_thread(self.decide, text)
        if (
            self.llm is None
            or decision.source != "classifier"
            or decision.result.confidence >= self.llm_threshold
        ):
            return decision
        found = await self.llm.classify(text)
        answer = found.answer
        if answer is None:
            return dataclasses.replace(decision, usage=found.usage)
        result = IntentResult(intent=answer.intent, confidence=round(answer.confidence, 4))
        if result.intent != "chat":
            ours = query_mod.extract(text, result.intent)
            result.query = answer.query.strip() or ours.query
            result.location = (answer.location or "").strip() or ours.location
            result.web_query = ours.web_query
        return Decision(result, "llm", "llm", decision.probabilities, found.usage)

    async def aroute(self, text: str) -> IntentResult:
        return (await self.adecide(text)).result


def build_router(
    settings: Settings,
    llm_client: AsyncOpenAI | None = None,
    *,
    classifier: ClassifierName = "auto",
    breaker: Breaker | None = None,
) -> Router:
    """The worker's router. The LLM layer needs a real model: an OpenAI key (with or
    without a base URL). The embedded SmolLM of `chatbot dev` is too small to judge, and
    without a key the router stays offline."""
    llm = None
    if llm_client is not None and settings.openai_api_key is not None:
        llm = LlmFallback(
            llm_client, settings.openai_chat_model, breaker=breaker, pii=settings.pii_in_prompts
        )
    return Router(default_classifier(classifier), llm=llm)
