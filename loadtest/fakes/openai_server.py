"""A local server speaking enough of the OpenAI API for the real `openai` client."""

from __future__ import annotations

import base64
import functools
import hashlib
import itertools
import json
import math
import re
import struct
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Send

from loadtest.fakes.scripting import (
    Citation,
    FakeServer,
    Step,
    ToolCallStep,
    openai_error_body,
)

DEFAULT_CITATIONS = (Citation(url="https://example.com/fake-source", title="Fake source"),)


def split_tokens(text: str) -> list[str]:
    """Words with their trailing whitespace, so the pieces concatenate back to `text`."""
    return re.findall(r"\S+\s*|\s+", text)


@functools.lru_cache(maxsize=65536)
def _word_vector(word: str, dims: int) -> tuple[int, ...]:
    return struct.unpack(f"<{dims}i", hashlib.shake_256(word.encode()).digest(4 * dims))


def hash_embedding(text: str, dims: int = 384) -> list[float]:
    """Deterministic unit vector: the sum of per-word hash vectors, so shared words mean
    higher cosine similarity (good enough for retrieval tests, and cheap)."""
    words = re.findall(r"[a-z0-9]+", text.lower()) or [text]
    acc = [0.0] * dims
    for word in words:
        for i, v in enumerate(_word_vector(word, dims)):
            acc[i] += v
    norm = math.sqrt(sum(x * x for x in acc)) or 1.0
    return [x / norm for x in acc]


def _content_text(content: Any) -> str:
    """Text of a message's content, which is a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _prompt_tokens(messages: list[Any]) -> int:
    """Rough prompt size: words of every message's content (tool results included) and of
    the arguments of the assistant's earlier tool calls."""
    n = 0
    for m in messages:
        if not isinstance(m, dict):
            continue
        n += len(_content_text(m.get("content")).split())
        for call in m.get("tool_calls") or []:
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                n += len(str(function.get("arguments", "")).split())
    return n


def _missing_tool_call_id(messages: list[Any]) -> Response | None:
    """The real API's 400 for a `tool` message without the id of the call it answers."""
    for i, m in enumerate(messages):
        if isinstance(m, dict) and m.get("role") == "tool" and not m.get("tool_call_id"):
            param = f"messages[{i}].tool_call_id"
            error = {
                "message": f"Missing required parameter: '{param}'.",
                "type": "invalid_request_error",
                "param": param,
                "code": "missing_required_parameter",
            }
            return JSONResponse({"error": error}, status_code=400)
    return None


def _argument_pieces(arguments: str, size: int = 4) -> list[str]:
    """Streamed arguments come a few characters at a time, so clients must accumulate."""
    return [arguments[i : i + size] for i in range(0, len(arguments), size)]


def call_arguments(call: ToolCallStep) -> str:
    """A scripted call's arguments as the API sends them: always a JSON string."""
    args = call.arguments
    return args if isinstance(args, str) else json.dumps(args, separators=(",", ":"))


def streamed_pieces(text: str, calls: Sequence[ToolCallStep] = ()) -> int:
    """How many pieces ("tokens") a streamed completion sends after its role delta: the
    text's tokens, then per call a header and its arguments in pieces. The fake spaces
    them by its token rate, so this gives its own time for a completion."""
    pieces = len(split_tokens(text))
    return pieces + sum(1 + len(_argument_pieces(call_arguments(c))) for c in calls)


def with_citations(text: str, citations: Sequence[Citation]) -> tuple[str, list[dict[str, Any]]]:
    """Append a markdown link per index-less citation, as search models do; build annotations."""
    annotations = []
    for c in citations:
        start, end = c.start_index, c.end_index
        if start is None or end is None:
            start = len(text) + 1
            text += f" ([{c.title}]({c.url}))"
            end = len(text)
        cite = {"url": c.url, "title": c.title, "start_index": start, "end_index": end}
        annotations.append({"type": "url_citation", "url_citation": cite})
    return text, annotations


class _StreamBroken(Exception):
    pass


class _EventStream(StreamingResponse):
    """SSE response that can stop without its final chunk, which clients see as a dropped
    connection (uvicorn logs "ASGI callable returned without completing response")."""

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self.body_iterator:
                body = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        except _StreamBroken:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


class FakeOpenAIServer(FakeServer):
    """Chat completions (streamed or not; web-search annotations for models named "*search*")
    and embeddings. `url` is the `base_url` for the openai client (it ends in /v1); the
    `/_fake/*` control routes live at `root_url`. `tokens_per_second=0` means no delay.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        latency_ms: float = 0,
        tokens_per_second: float = 0,
        reply_template: str = "Fake reply to: {last_user}",
        search_citations: Sequence[Citation] = DEFAULT_CITATIONS,
        embedding_dims: int = 384,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.latency_ms = latency_ms
        self.tokens_per_second = tokens_per_second
        self.reply_template = reply_template  # may use {last_user} and {model}
        self.search_citations = list(search_citations)
        self.embedding_dims = embedding_dims
        self._ids = itertools.count(1)
        self._call_ids = itertools.count(1)
        routes = [
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/v1/embeddings", self._embeddings, methods=["POST"]),
            Route("/v1/models", self._models, methods=["GET"]),
        ]
        super().__init__(routes, openai_error_body, token=api_key, host=host, port=port)

    @property
    def root_url(self) -> str:
        return super().url

    @property
    def url(self) -> str:
        return f"{self.root_url}/v1"

    async def _chat(self, request: Request) -> Response:
        started = await self.begin(request, "chat")
        if isinstance(started, Response):
            return started
        body, step = started
        messages, model = body.get("messages"), body.get("model")
        if not isinstance(messages, list) or not messages or not isinstance(model, str):
            return self.error(400, "'model' and a non-empty 'messages' list are required.")
        if (missing := _missing_tool_call_id(messages)) is not None:
            return missing
        calls = self._tool_calls(step)
        text, annotations = self._reply(messages, model, step)
        if calls and step and step.reply is None:
            text, annotations = "", []  # a reply that only calls tools has no content
        # What the stream sends after the role delta, one "token" each: the text, then per
        # call a header (id, name) and its arguments in pieces.
        pieces: list[dict[str, Any]] = [{"content": t} for t in split_tokens(text)]
        for i, call in enumerate(calls):
            function = call["function"]
            header = {**call, "function": {**function, "arguments": ""}}
            pieces.append({"tool_calls": [{"index": i, **header}]})
            for part in _argument_pieces(function["arguments"]):
                pieces.append({"tool_calls": [{"index": i, "function": {"arguments": part}}]})
        finish_reason = "tool_calls" if calls else "stop"
        n_prompt = _prompt_tokens(messages)
        usage = {
            "prompt_tokens": n_prompt,
            "completion_tokens": len(pieces),
            "total_tokens": n_prompt + len(pieces),
        }
        latency = _pick(step.latency_ms if step else None, self.latency_ms) / 1000
        tps = _pick(step.tokens_per_second if step else None, self.tokens_per_second)
        gap = 1 / tps if tps else 0.0
        head = {
            "id": f"chatcmpl-fake-{next(self._ids)}",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        if not body.get("stream"):
            await self.sleep(latency + gap * len(pieces))
            message: dict[str, Any] = {
                "role": "assistant",
                "content": None if calls and not text else text,
                "annotations": annotations,
            }
            if calls:
                message["tool_calls"] = calls
            choice = {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            completion = {**head, "object": "chat.completion", "choices": [choice]}
            return JSONResponse({**completion, "usage": usage})
        with_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        break_after = step.break_after if step else None

        def event(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            chunk = {**head, "object": "chat.completion.chunk", "choices": choices, **extra}
            return f"data: {json.dumps(chunk)}\n\n".encode()

        def delta(delta: dict[str, Any], finish: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
            return event([choice], **({"usage": None} if with_usage else {}))

        async def events() -> AsyncIterator[bytes]:
            if await self.sleep(latency):
                raise _StreamBroken
            # The real API sends content null, not "", when the reply only calls tools.
            content = None if calls and not text else ""
            yield delta({"role": "assistant", "content": content, "refusal": None})
            for i, piece in enumerate(pieces):
                if i == break_after or (i and await self.sleep(gap)):
                    raise _StreamBroken
                yield delta(piece)
            if break_after is not None:  # break_after >= the number of tokens
                raise _StreamBroken
            if annotations:  # search models send their citations in a delta after the text
                yield delta({"annotations": annotations})
            yield delta({}, finish_reason)
            if with_usage:  # stream_options.include_usage: a last chunk with no choices
                yield event([], usage=usage)
            yield b"data: [DONE]\n\n"

        return _EventStream(events(), media_type="text/event-stream")

    def _tool_calls(self, step: Step | None) -> list[dict[str, Any]]:
        """The step's calls as the API writes them (arguments always a JSON string)."""
        calls: list[dict[str, Any]] = []
        for call in (step.tool_calls if step else None) or []:
            function = {"name": call.name, "arguments": call_arguments(call)}
            call_id = call.id or f"call_fake_{next(self._call_ids)}"
            calls.append({"id": call_id, "type": "function", "function": function})
        return calls

    def _reply(
        self, messages: list[Any], model: str, step: Step | None
    ) -> tuple[str, list[dict[str, Any]]]:
        if step and step.reply is not None:
            text = step.reply
        else:
            users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
            last_user = _content_text(users[-1].get("content")) if users else ""
            text = self.reply_template.format(last_user=last_user, model=model)
        if step and step.citations is not None:
            return with_citations(text, step.citations)
        return with_citations(text, self.search_citations if "search" in model else ())

    async def _models(self, request: Request) -> Response:
        """The model list the gateway's readiness check asks for; not recorded and no
        script step, so tests that count requests never see it."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return self.error(401, "No bearer token was sent.")
        if self.token is not None and token != self.token:
            return self.error(self.bad_token_status, "Invalid access token.")
        model = {"object": "model", "created": 0, "owned_by": "fake"}
        return JSONResponse({"object": "list", "data": [{"id": "gpt-4o-mini", **model}]})

    async def _embeddings(self, request: Request) -> Response:
        started = await self.begin(request, "embeddings")
        if isinstance(started, Response):
            return started
        body, step = started
        raw = body.get("input")
        texts = [raw] if isinstance(raw, str) else raw
        if not isinstance(texts, list) or not texts:
            return self.error(400, "'input' must be a non-empty string or list.")
        dims = int(body.get("dimensions") or self.embedding_dims)
        data = []
        for i, item in enumerate(texts):
            vector: Any = hash_embedding(item if isinstance(item, str) else json.dumps(item), dims)
            if body.get("encoding_format") == "base64":  # little-endian float32, as decoded
                vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
            data.append({"object": "embedding", "index": i, "embedding": vector})
        await self.sleep(_pick(step.latency_ms if step else None, self.latency_ms) / 1000)
        n = sum(len(str(t).split()) for t in texts)
        usage = {"prompt_tokens": n, "total_tokens": n}
        result = {"object": "list", "data": data, "model": body.get("model")}
        return JSONResponse({**result, "usage": usage})


def _pick(override: float | None, default: float) -> float:
    return default if override is None else override
