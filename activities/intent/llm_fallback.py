"""The last layer: when a real chat model is configured and the classifier is unsure, one
structured-output call (a JSON schema in `response_format`) decides. Any failure (the
provider's error, a timeout, a reply that does not fit the schema) leaves the classifier's
answer standing: routing never fails a turn."""

from __future__ import annotations

import asyncio
import json
import logging

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema
from pydantic import BaseModel, Field, ValidationError

from shared.models import Intent

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


class LlmFallback:
    """One structured-output call per unsure message, through an injected client."""

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self._client = client
        self._model = model
        self._timeout = timeout_seconds

    async def classify(self, text: str) -> LlmIntent | None:
        """The model's decision, or None when it cannot give one in time and in shape."""
        messages: list[ChatCompletionMessageParam] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": text},
        ]
        try:
            async with asyncio.timeout(self._timeout):
                completion = await self._client.chat.completions.create(
                    model=self._model,
                    messages=messages,
                    response_format=INTENT_SCHEMA,
                    temperature=0,
                    max_tokens=200,
                    timeout=self._timeout,
                )
        except (openai.APIError, TimeoutError) as err:
            log.warning("intent LLM fallback failed, keeping the classifier's answer: %s", err)
            return None
        content = completion.choices[0].message.content if completion.choices else None
        try:
            return LlmIntent.model_validate(json.loads(content or ""))
        except (ValueError, ValidationError) as err:
            log.warning(
                "intent LLM fallback gave an unusable reply (%s); keeping the classifier's", err
            )
            return None
