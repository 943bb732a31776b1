"""The last layer: when a real chat model is configured and the classifier is unsure, one
structured-output call (a JSON schema in `response_format`) decides. Any failure (the
provider's error, a timeout, a reply that does not fit the schema) leaves the classifier's
answer standing: routing never fails a turn."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, Field, ValidationError

from activities.embeddings import openai_failed
from shared.breaker import Breaker, ProviderUnavailable, guarded
from shared.models import Intent, TokenUsage
from shared.pii import PiiRedactor, Redaction
from shared.usage import reported_usage

log = logging.getLogger(__name__)

# The detect_intent local activity has 10 s in all; the model gets well under that.
DEFAULT_TIMEOUT_SECONDS = 4.0

SYSTEM_PROMPT = """\
You route one user message of a business chat assistant to the tool it needs.
Intents:
- company_search: finding or comparing companies, suppliers, vendors, manufacturers,
  service providers, contractors or partners ("who makes custom PCBs in small batches",
  "find a CNC machining shop in Ohio").
- web_search: needs current, real-time information from the web: news, prices, weather,
  scores, recent events ("how much is bitcoin trading at", "what happened at the fed
  meeting today").
- both: needs companies AND current information ("latest news about lithium battery
  suppliers in Nevada", "which solar panel manufacturers had recalls this month").
- chat: everything else: general knowledge, explanations, advice, coding, writing, math,
  and messages that merely mention "latest" or "companies" without needing a search
  ("explain the latest version of the TCP spec", "write a poem about companies",
  "what is a supplier contract").
For searches, `query` is what to search for, without the request's wording ("find me",
"can you") and without the place; `location` is the place named ("Ohio", "Austin, TX"),
else null. For chat, `query` is "" and `location` null. `confidence` is 0 to 1."""

INTENT_SCHEMA: ResponseFormatJSONSchema = {
    "type": "json_schema",
    "json_schema": {
        "name": "intent",
        "strict": True,
        "schema": {
            "type": "object",
            "properties": {
                "intent": {
                    "type": "string",
                    "enum": ["company_search", "web_search", "both", "chat"],
                },
                "confidence": {"type": "number"},
                "query": {"type": "string"},
                "location": {"type": ["string", "null"]},
            },
            "required": ["intent", "confidence", "query", "location"],
            "additionalProperties": False,
        },
    },
}


class LlmIntent(BaseModel):
    intent: Intent
    confidence: float = Field(ge=0.0, le=1.0)
    query: str = Field(default="", max_length=2000)
    location: str | None = Field(default=None, max_length=200)


@dataclass(frozen=True)
class Classified:
    """The model's decision (None: none usable) and what asking it used."""

    answer: LlmIntent | None
    usage: TokenUsage = field(default_factory=TokenUsage)


class LlmFallback:
    """One structured-output call per unsure message, through an injected client; skipped
    at once while the model's breaker is open, and (PII_REDACTION=logs+prompts) sent the
    message with its personal data as placeholders."""

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        breaker: Breaker | None = None,
        pii: PiiRedactor | None = None,
    ) -> None:
        self._client = client
        self.model = model
        self._timeout = timeout_seconds
        self._breaker = breaker
        self._pii = pii

    async def classify(self, text: str) -> Classified:
        """The model's decision, or none when it cannot give one in time and in shape."""
        redaction = Redaction()
        sent = self._pii.redact(text, redaction) if self._pii is not None else text
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": sent},
        ]
        try:
            async with asyncio.timeout(self._timeout), guarded(self._breaker, openai_failed):
                completion = await self._client.chat.completions.create(
                    model=self.model,
                    messages=messages,
                    response_format=INTENT_SCHEMA,
                    temperature=0,
                    max_tokens=200,
                    timeout=self._timeout,
                )
        except (openai.APIError, TimeoutError, ProviderUnavailable) as err:
            log.warning("intent LLM fallback failed, keeping the classifier's answer: %s", err)
            return Classified(None)
        usage = reported_usage(completion.usage)
        content = completion.choices[0].message.content if completion.choices else None
        try:
            answer = LlmIntent.model_validate(json.loads(content or ""))
        except (ValueError, ValidationError) as err:
            log.warning(
                "intent LLM fallback gave an unusable reply (%s); keeping the classifier's", err
            )
            return Classified(None, usage)
        restored = {"query": redaction.restore(answer.query)}
        if answer.location is not None:
            restored["location"] = redaction.restore(answer.location)
        return Classified(answer.model_copy(update=restored), usage)
