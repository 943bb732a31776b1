"""Chat generation on an OpenAI-compatible API, streaming tokens into Redis as they arrive."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import cast

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionMessageParam
from redis.asyncio import Redis
from temporalio import activity
from temporalio.exceptions import ApplicationError

from shared.config import Settings
from shared.models import GeneratedReply, GenerateReplyInput, TokenUsage
from shared.streams import TokenStreamWriter

# A provider that refuses the request itself will refuse it again: do not retry these.
NON_RETRYABLE_STATUS = frozenset({400, 401, 403, 404, 422})


def build_openai_client(settings: Settings) -> AsyncOpenAI:
    """The client's own retries are off: Temporal's retry policy is the one retry layer."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "local"
    return AsyncOpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.openai_timeout_seconds,
    )


def provider_error(err: openai.APIError) -> ApplicationError:
    """Map a provider error onto Temporal's retry semantics."""
    if isinstance(err, openai.APIStatusError):
        status = err.response.status_code
        if status in NON_RETRYABLE_STATUS:
            return ApplicationError(
                f"the model provider rejected the request ({status}): {err.message}",
                type="LLMRequestRejected",
                non_retryable=True,
            )
        retry_after = err.response.headers.get("retry-after")
        delay = float(retry_after) if retry_after and retry_after.isdigit() else None
        return ApplicationError(
            f"the model provider failed ({status}): {err.message}",
            type="LLMUnavailable",
            next_retry_delay=timedelta(seconds=delay) if delay else None,
        )
    return ApplicationError(f"the model provider failed: {err}", type="LLMUnavailable")


class LlmActivities:
    def __init__(self, client: AsyncOpenAI, redis: Redis, settings: Settings) -> None:
        self._client = client
        self._streams = TokenStreamWriter(redis)
        self._settings = settings

    @activity.defn
    async def generate_reply(self, req: GenerateReplyInput) -> GeneratedReply:
        s = self._settings
        started = time.perf_counter()
        first_token_ms: float | None = None
        parts: list[str] = []
        usage = TokenUsage()
        await self._streams.reset(req.turn_id)
        try:
            stream = await self._client.chat.completions.create(
                model=s.openai_chat_model,
                messages=cast(
                    list[ChatCompletionMessageParam], [m.model_dump() for m in req.messages]
                ),
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = TokenUsage(
                        prompt_tokens=chunk.usage.prompt_tokens,
                        completion_tokens=chunk.usage.completion_tokens,
                    )
                for choice in chunk.choices:
                    text = choice.delta.content
                    if text:
                        if first_token_ms is None:
                            first_token_ms = (time.perf_counter() - started) * 1000
                        parts.append(text)
                        await self._streams.token(req.turn_id, text)
                activity.heartbeat()
        except openai.APIError as err:
            raise provider_error(err) from err
        reply = "".join(parts)
        await self._streams.end(req.turn_id)
        return GeneratedReply(
            text=reply, usage=usage, first_token_ms=first_token_ms, model=s.openai_chat_model
        )
