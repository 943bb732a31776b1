"""The direct path: the same API call answered by a plain FastAPI handler that calls the
LLM itself, with no Temporal, Postgres or Redis in between. The benchmark compares the
service with it to see what orchestration costs when the model is slow.

    python -m loadtest.bench.direct --port 8300 --llm-url http://127.0.0.1:8100/v1
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from openai import AsyncOpenAI
from pydantic import BaseModel

from activities.llm import chunk_text, stream_chat

SYSTEM_PROMPT = "You are a helpful assistant. Answer clearly and concisely."


class SessionBody(BaseModel):
    id: str | None = None
    title: str = ""


class MessageBody(BaseModel):
    text: str
    client_message_id: str | None = None


def create_app(llm_url: str, api_key: str, model: str) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.llm = AsyncOpenAI(api_key=api_key, base_url=llm_url, max_retries=0, timeout=60)
        yield
        await app.state.llm.close()

    app = FastAPI(title="direct path (benchmark)", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/sessions", status_code=201)
    async def create_session(body: SessionBody) -> dict[str, str]:
        return {"id": body.id or uuid.uuid4().hex, "title": body.title}

    @app.post("/v1/sessions/{session_id}/messages")
    async def send_message(session_id: str, body: MessageBody, request: Request) -> Response:
        llm: AsyncOpenAI = request.app.state.llm
        turn_id = str(uuid.uuid4())
        tokens = generate(llm, model, body.text)
        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(
                sse(tokens, turn_id, session_id, body), media_type="text/event-stream"
            )
        began, parts = time.perf_counter(), []
        first: float | None = None
        async for token in tokens:
            first = first if first is not None else (time.perf_counter() - began) * 1000
            parts.append(token)
        timings = {"generate_reply": (time.perf_counter() - began) * 1000}
        if first is not None:
            timings["first_token"] = first
        return JSONResponse(result(turn_id, session_id, body, "".join(parts), timings))

    return app


async def generate(llm: AsyncOpenAI, model: str, text: str) -> AsyncIterator[str]:
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": text},
    ]
    # The same call the worker's generate_reply makes.
    stream = await stream_chat(llm, model=model, messages=messages)
    async with stream:
        async for chunk in stream:
            piece = chunk_text(chunk)
            if piece:
                yield piece


def result(
    turn_id: str, session_id: str, body: MessageBody, reply: str, timings: dict[str, float]
) -> dict[str, Any]:
    return {
        "turn_id": turn_id,
        "session_id": session_id,
        "client_message_id": body.client_message_id,
        "user_text": body.text,
        "reply": reply,
        "status": "complete",
        "timings_ms": timings,
    }


async def sse(
    tokens: AsyncIterator[str], turn_id: str, session_id: str, body: MessageBody
) -> AsyncIterator[str]:
    parts: list[str] = []
    async for token in tokens:
        parts.append(token)
        yield f"id: {len(parts)}\nevent: token\ndata: {json.dumps({'text': token})}\n\n"
    final = {"result": result(turn_id, session_id, body, "".join(parts), {})}
    yield f"id: {len(parts) + 1}\nevent: final\ndata: {json.dumps(final)}\n\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench.direct")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--llm-url", required=True, help="OpenAI-compatible base URL (.../v1)")
    parser.add_argument("--api-key", default="bench")
    parser.add_argument("--model", default="gpt-4o-mini")
    args = parser.parse_args(argv)
    # The same server stack as the gateway (`chatbot serve`): uvicorn's defaults pick
    # uvloop and httptools when they are installed.
    uvicorn.run(
        create_app(args.llm_url, args.api_key, args.model),
        host=args.host,
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
