"""Chat generation on an OpenAI-compatible API, streaming tokens into the turn's Redis
stream as they arrive."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import openai
from openai import AsyncOpenAI, AsyncStream
from redis.asyncio import Redis
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from activities.embeddings import openai_failed
from activities.heartbeat import heartbeating
from activities.prompt import assemble, token_counter
from activities.tools.registry import ToolRegistry
from shared.breaker import Breaker, ProviderUnavailable, guarded, unavailable_error
from shared.config import Settings
from shared.logging import bind
from shared.models import GeneratedReply, GenerateReplyInput, PromptParts, TokenUsage
from shared.pii import PiiRedactor, Redaction, StreamRestorer
from shared.redis import REDIS_UNAVAILABLE
from shared.response_cache import CachedReply, CacheQuery, ResponseCache, query_for
from shared.streams import TokenWriter, TurnStreams
from shared.tool_calls import ModelStep, ModelStepInput
from shared.usage import BudgetExceeded, Step, UsageLedger, cost_of, reported_usage

log = logging.getLogger(__name__)

# A provider that refuses the request itself will refuse it again: do not retry these.
NON_RETRYABLE_STATUS = frozenset({400, 401, 403, 404, 422})
CANCEL_CHECK_SECONDS = 0.1
# A cached reply streams as words (each with the space after it), as a model's would.
CACHED_PIECES = re.compile(r"\s*\S+\s*|\s+")


def build_openai_client(settings: Settings) -> AsyncOpenAI:
    """The client's own retries are off: Temporal's retry policy is the one retry layer."""
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "local"
    return AsyncOpenAI(
        api_key=key,
        base_url=settings.openai_base_url,
        max_retries=0,
        timeout=settings.openai_timeout_seconds,
    )


# A streamed completion's chunks as the JSON objects the provider sent.
Chunk = dict[str, Any]


async def stream_chat(
    client: AsyncOpenAI,
    *,
    model: str,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None = None,
    tool_choice: str | None = None,
    **params: Any,
) -> AsyncStream[Chunk]:
    """A streamed chat completion with usage in its last chunk, each chunk a plain dict.

    Sent through the client's generic `post` (its documented way to call any endpoint), so
    the client still builds the request, authenticates, maps HTTP and in-stream errors to
    its exception types and decodes the SSE; what it skips is CPU on the worker's event
    loop that changes nothing here. `chat.completions.create` walks every request message
    with typing introspection (measured: 0.9 ms a call with 3 messages, 43 ms with 100
    turns), and builds a ChatCompletionChunk model tree for each chunk: 13 % of the
    worker's CPU per turn under load, the largest item in its profile (2026-12-04)."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        **{k: v for k, v in params.items() if v is not None},
    }
    if tools:
        body["tools"] = tools
        if tool_choice:
            body["tool_choice"] = tool_choice
    return await client.post(
        "/chat/completions",
        body=body,
        cast_to=object,
        stream=True,
        stream_cls=AsyncStream[Chunk],
    )


def chunk_text(chunk: Chunk) -> str:
    """The reply text a chunk carries (none in a usage-only or tool-call chunk)."""
    return "".join((c.get("delta") or {}).get("content") or "" for c in chunk.get("choices") or ())


def _retry_after(err: openai.APIStatusError) -> timedelta | None:
    value = err.response.headers.get("retry-after", "")
    try:
        seconds = float(value)
    except ValueError:
        return None
    return timedelta(seconds=min(max(seconds, 0.0), 60.0))


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
        return ApplicationError(
            f"the model provider failed ({status}): {err.message}",
            type="LLMUnavailable",
            next_retry_delay=_retry_after(err),
        )
    return ApplicationError(f"the model provider failed: {err}", type="LLMUnavailable")


def budget_error(err: BudgetExceeded) -> ApplicationError:
    """Over budget: the same step would be refused again, so it is not retried. Benign: an
    expected refusal, logged by the SDK without a traceback."""
    return ApplicationError(
        str(err),
        err.details(),
        type="BudgetExceeded",
        non_retryable=True,
        category=ApplicationErrorCategory.BENIGN,
    )


class LlmActivities:
    def __init__(
        self,
        client: AsyncOpenAI,
        redis: Redis,
        settings: Settings,
        tools: ToolRegistry | None = None,
        ledger: UsageLedger | None = None,
        breaker: Breaker | None = None,
        cache: ResponseCache | None = None,
    ) -> None:
        self._client = client
        self._streams = TurnStreams(redis)
        self._settings = settings
        self._tools = tools  # what a tool-calling turn may offer its model
        self._ledger = ledger  # where each call's usage is reserved and settled
        self._breaker = breaker  # fails calls at once while the provider is down
        self._pii = settings.pii_in_prompts
        self._cache = cache if cache is not None and cache.enabled else None
        # A message with personal data is never cached, whatever PII_REDACTION says.
        self._personal = PiiRedactor(settings.pii_national_ids)

    def warm(self) -> None:
        """Load the tokenizer now (it may try to fetch its files), not inside a turn."""
        token_counter(self._settings.openai_chat_model)

    async def _announce_restart(self, turn_id: str, keep_chars: int = 0) -> None:
        """Readers drop what an earlier attempt streamed and start the reply again; they
        keep the first `keep_chars` of it (earlier steps of a tool-calling turn)."""
        try:
            if await self._streams.has_entries(turn_id):
                data = {"attempt": activity.info().attempt, "keep_chars": keep_chars}
                await self._streams.append(turn_id, "restart", data)
        except REDIS_UNAVAILABLE as err:
            log.warning("restart not announced: %s", err)

    async def _cancel_requested(self, turn_id: str) -> bool:
        try:
            return await self._streams.cancel_requested(turn_id)
        except REDIS_UNAVAILABLE:
            return False  # asked again at the next check

    @activity.defn
    async def generate_reply(self, req: GenerateReplyInput) -> GeneratedReply:
        s = self._settings
        bind(turn_id=req.turn_id)
        messages, context = req.messages, None
        count = token_counter(s.openai_chat_model)  # cached: loaded by warm() at start
        if req.parts is not None:
            messages, context = assemble(req.parts, s.context_max_tokens, count)
        owner = (req.session_id, req.user_id) if req.session_id else None
        query = self._cache_query(req.parts, req.user_id, tools=[])
        hit = await self._cache.get(query) if self._cache and query else None
        if hit is not None:
            charge = self._step(req.turn_id, "reply", owner)
            served = await self._serve_cached(req.turn_id, owner, hit, charge)
            return GeneratedReply(
                text=served.text,
                usage=served.usage,
                first_token_ms=served.first_token_ms,
                model=hit.model,
                context=context,
                cached=True,
            )
        wire, redaction = self._redacted([m.model_dump() for m in messages])
        prompt = context.prompt_tokens if context else count(json.dumps(wire))
        started = time.perf_counter()
        out = await self._stream(
            req.turn_id,
            owner,
            wire,
            charge=self._step(req.turn_id, "reply", owner),
            prompt=prompt,
            redaction=redaction,
        )
        await self._remember(query, req.turn_id, out, started)
        return GeneratedReply(
            text=out.text,
            usage=out.usage,
            cancelled=out.cancelled,
            first_token_ms=out.first_token_ms,
            model=s.openai_chat_model,
            context=context,
        )

    @activity.defn
    async def model_step(self, req: ModelStepInput) -> ModelStep:
        """One round of a tool-calling turn: the model answers (its tokens stream like a
        reply's) or asks for tool calls, which come back parsed and checked."""
        s = self._settings
        bind(turn_id=req.turn_id)
        count = token_counter(s.openai_chat_model)
        messages, context = assemble(req.parts, s.context_max_tokens, count)
        # Only the first round of a turn can be answered from the cache: later ones
        # follow tool calls, and a turn that called tools is never stored.
        first = req.step == 0 and not req.exchange and not req.answer_now
        query = self._cache_query(req.parts, req.user_id, tools=req.tools) if first else None
        hit = await self._cache.get(query) if self._cache and query else None
        if hit is not None:
            owner = (req.session_id, req.user_id)
            charge = self._step(req.turn_id, f"step:{req.step}", owner)
            served = await self._serve_cached(req.turn_id, owner, hit, charge)
            return ModelStep(
                text=served.text,
                usage=served.usage,
                first_token_ms=served.first_token_ms,
                context=context,
                cached=True,
            )
        # After the user's message: this turn's calls and results.
        wire, redaction = self._redacted([*(m.model_dump() for m in messages), *req.exchange])
        registry = self._tools
        offered = registry.openai_tools(req.tools) if registry is not None else []
        owner = (req.session_id, req.user_id)
        # The worst case: the assembled prompt, this turn's calls and results so far, and
        # the tools' schemas.
        prompt = context.prompt_tokens + count(json.dumps([req.exchange, offered]))
        started = time.perf_counter()
        out = await self._stream(
            req.turn_id,
            owner,
            wire,
            tools=offered,
            tool_choice="none" if req.answer_now else None,
            keep_chars=req.streamed_chars,
            charge=self._step(req.turn_id, f"step:{req.step}", owner),
            prompt=prompt,
            redaction=redaction,
        )
        await self._remember(query, req.turn_id, out, started)
        if redaction is not None:  # the model's arguments may name what it was shown
            for c in out.calls:
                c.arguments = redaction.restore(c.arguments)
        calls = (
            [
                registry.parse_call(c.id or f"call_{req.step}_{i}", c.name, c.arguments)
                for i, c in enumerate(out.calls)
            ]
            if registry is not None
            else []
        )
        return ModelStep(
            text=out.text,
            calls=calls,
            usage=out.usage,
            first_token_ms=out.first_token_ms,
            cancelled=out.cancelled,
            context=context,
        )

    def _cache_query(
        self, parts: PromptParts | None, user_id: str | None, *, tools: list[str]
    ) -> CacheQuery | None:
        """Where this prompt's answer is cached; None with the cache off, or for a prompt
        with anything personal in it."""
        if self._cache is None or parts is None or not user_id:
            return None
        s = self._settings
        return query_for(
            parts,
            user_id=user_id,
            scope=self._cache.config.scope,
            model=s.openai_chat_model,
            sampling={"temperature": s.temperature, "top_p": s.top_p, "max_tokens": s.max_tokens},
            tools=tools,
            pii=self._personal,
        )

    async def _remember(
        self, query: CacheQuery | None, turn_id: str, out: _Streamed, started: float
    ) -> None:
        """Cache a whole answer written without tools (not a cancelled or empty one)."""
        if self._cache is None or query is None or out.cancelled or out.calls or not out.text:
            return
        reply = CachedReply(
            text=out.text,
            model=self._settings.openai_chat_model,
            prompt_tokens=out.usage.prompt_tokens,
            completion_tokens=out.usage.completion_tokens,
            cost_usd=out.usage.cost_usd,
            generated_ms=round((time.perf_counter() - started) * 1000, 1),
            turn_id=turn_id,
        )
        await self._cache.put(query, reply)

    async def _serve_cached(
        self, turn_id: str, owner: tuple[str, str] | None, hit: CachedReply, charge: Step | None
    ) -> _Streamed:
        """Stream a cached answer into the turn's stream like a model's reply: no
        provider call, and in the ledger a step of no tokens (the turn still counts)."""
        started = time.perf_counter()
        if charge is not None and self._ledger is not None:
            await self._ledger.record(replace(charge, model=f"cache:{hit.model}"), TokenUsage())
        if activity.info().attempt > 1:
            await self._announce_restart(turn_id)
        tokens = TokenWriter(self._streams, turn_id, owner)
        try:
            for piece in CACHED_PIECES.findall(hit.text):
                tokens.add(piece)
        finally:
            await tokens.close()
        out = _Streamed(text=hit.text, first_token_ms=(time.perf_counter() - started) * 1000)
        log.info(
            "reply served from the response cache",
            extra={"similarity": hit.similarity, "cached_from": hit.turn_id},
        )
        return out

    def _redacted(
        self, wire: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], Redaction | None]:
        """PII_REDACTION=logs+prompts: the messages' personal data as placeholders, and
        how to put it back in what the model writes."""
        pii = self._pii
        if pii is None:
            return wire, None
        redaction = Redaction()
        return [
            {**m, "content": pii.redact(m["content"], redaction)}
            if isinstance(m.get("content"), str)
            else m
            for m in wire
        ], redaction

    def _step(self, turn_id: str, step: str, owner: tuple[str, str] | None) -> Step | None:
        if self._ledger is None or owner is None:
            return None
        session_id, user_id = owner
        return Step(
            turn_id=turn_id,
            step=step,
            user_id=user_id,
            session_id=session_id,
            model=self._settings.openai_chat_model,
        )

    async def _stream(
        self,
        turn_id: str,
        owner: tuple[str, str] | None,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | None = None,
        keep_chars: int = 0,
        charge: Step | None = None,
        prompt: int = 0,
        redaction: Redaction | None = None,
    ) -> _Streamed:
        """Reserve the call's worst case, stream it, settle what it used. A call that
        fails releases its reservation (a retry reserves again, under the same key)."""
        s = self._settings
        if charge is None or self._ledger is None:
            return await self._stream_once(
                turn_id, owner, messages, tools, tool_choice, keep_chars, redaction
            )
        worst = TokenUsage(prompt_tokens=prompt, completion_tokens=s.max_tokens)
        try:
            await self._ledger.reserve(
                charge,
                tokens=prompt + s.max_tokens,
                cost=cost_of(s.prices, s.openai_chat_model, worst),
            )
        except BudgetExceeded as err:
            raise budget_error(err) from None
        try:
            out = await self._stream_once(
                turn_id, owner, messages, tools, tool_choice, keep_chars, redaction
            )
        except BaseException:
            try:
                await self._ledger.release(charge)
            except Exception as err:  # the database away: the turn's end releases it
                log.warning("reservation not released: %s", err)
            raise
        if out.usage.prompt_tokens == 0:  # a provider that reports no usage
            out.usage = out.usage.model_copy(update={"prompt_tokens": prompt})
        out.usage.cost_usd = round(cost_of(s.prices, s.openai_chat_model, out.usage), 6)
        await self._ledger.settle(charge, out.usage)
        return out

    async def _stream_once(
        self,
        turn_id: str,
        owner: tuple[str, str] | None,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        tool_choice: str | None,
        keep_chars: int,
        redaction: Redaction | None,
    ) -> _Streamed:
        """Stream a completion's text into the turn's Redis stream as it arrives, and
        gather the tool calls it asks for (their pieces arrive spread over chunks)."""
        s = self._settings
        started = time.perf_counter()
        out = _Streamed()
        parts: list[str] = []
        pending: dict[int, _PendingCall] = {}
        restorer = StreamRestorer(redaction) if redaction is not None else None
        if activity.info().attempt > 1:
            await self._announce_restart(turn_id, keep_chars)
        tokens = TokenWriter(self._streams, turn_id, owner)

        async def consume() -> None:
            stream = await stream_chat(
                self._client,
                model=s.openai_chat_model,
                messages=messages,
                max_tokens=s.max_tokens,
                temperature=s.temperature,
                top_p=s.top_p,
                tools=tools,
                tool_choice=tool_choice if tools else None,
            )
            async with stream:
                async for chunk in stream:
                    usage = chunk.get("usage")
                    if usage:
                        out.usage = reported_usage(usage)
                    for choice in chunk.get("choices") or ():
                        for piece in (choice.get("delta") or {}).get("tool_calls") or ():
                            call = pending.setdefault(int(piece["index"]), _PendingCall())
                            call.add(piece)
                    text = chunk_text(chunk)
                    if text and restorer is not None:  # placeholders back to originals
                        text = restorer.feed(text)
                    if text:
                        if out.first_token_ms is None:
                            out.first_token_ms = (time.perf_counter() - started) * 1000
                        parts.append(text)
                        tokens.add(text)

        # Beats while the model thinks (a slow first token) as well as while it streams; a
        # reply shorter than a beat sends none.
        try:
            async with heartbeating(), guarded(self._breaker, openai_failed):
                out.cancelled = await unless_cancelled(
                    consume(), lambda: self._cancel_requested(turn_id)
                )
                if restorer is not None and (tail := restorer.flush()):
                    parts.append(tail)
                    tokens.add(tail)
        except openai.APIError as err:
            raise provider_error(err) from err
        except ProviderUnavailable as err:
            raise unavailable_error(err) from None
        finally:
            await tokens.close()
        out.text = "".join(parts)
        out.calls = [pending[i] for i in sorted(pending)] if not out.cancelled else []
        if out.usage.completion_tokens == 0 and parts:
            out.usage = out.usage.model_copy(update={"completion_tokens": len(parts)})
        log.info(
            "reply generated",
            extra={
                "completion_tokens": out.usage.completion_tokens,
                "first_token_ms": round(out.first_token_ms or 0, 1),
                "cancelled": out.cancelled,
                "tool_calls": len(out.calls),
            },
        )
        return out


async def unless_cancelled(
    work: Coroutine[Any, Any, None], cancelled: Callable[[], Awaitable[bool]]
) -> bool:
    """Run `work`, asking `cancelled` every CANCEL_CHECK_SECONDS meanwhile (while the
    model thinks as well as while it streams), and stop it when it says so. True: the
    work was stopped; what it produced so far stays."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=CANCEL_CHECK_SECONDS)
            if done:
                task.result()
                return False
            if await cancelled():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                return True
    finally:
        if not task.done():
            task.cancel()


@dataclass
class _PendingCall:
    """A tool call as its deltas arrive: the id and name first, the arguments in pieces."""

    id: str = ""
    name: str = ""
    arguments: str = ""

    def add(self, piece: dict[str, Any]) -> None:
        self.id = piece.get("id") or self.id
        function = piece.get("function") or {}
        self.name += function.get("name") or ""
        self.arguments += function.get("arguments") or ""


@dataclass
class _Streamed:
    text: str = ""
    calls: list[_PendingCall] = field(default_factory=list)
    usage: TokenUsage = field(default_factory=TokenUsage)
    first_token_ms: float | None = None
    cancelled: bool = False
