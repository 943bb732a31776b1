"""The real `openai` client against FakeOpenAIServer."""

from __future__ import annotations

import array
import asyncio
import base64
import json
import math
import operator
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolParam,
    ChatCompletionUserMessageParam,
)

from loadtest.fakes import FakeOpenAIServer, hash_embedding

KEY = "sk-test-key"
USER: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "tell me about welding shops"}
]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=KEY) as fake:
        yield fake


@pytest.fixture(autouse=True)
def _reset(server: FakeOpenAIServer) -> Iterator[None]:
    server.reset()
    yield
    server.reset()


@pytest.fixture
async def client(server: FakeOpenAIServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=server.url, api_key=KEY, max_retries=0) as c:
        yield c


async def test_streaming_reply_chunks_and_usage(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    stream = await client.chat.completions.create(
        model="gpt-4o-mini",
        messages=USER,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    usage = None
    finish = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            if choice.delta.content:
                pieces.append(choice.delta.content)
    assert len(pieces) > 1
    assert "".join(pieces) == "Fake reply to: tell me about welding shops"
    assert finish == "stop"
    assert usage is not None
    assert usage.completion_tokens == len(pieces)
    assert usage.prompt_tokens == 5
    (recorded,) = server.requests
    assert recorded["endpoint"] == "chat"
    assert recorded["body"]["messages"] == USER
    assert recorded["body"]["stream"] is True


async def test_streaming_without_include_usage_sends_no_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(c.usage is None and c.choices for c in chunks)


async def test_non_streaming_completion(client: openai.AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(model="gpt-4o-mini", messages=USER)
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.content == "Fake reply to: tell me about welding shops"
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.annotations == []
    assert reply.usage is not None and reply.usage.total_tokens == 5 + 8


async def test_content_parts_and_reply_template() -> None:
    with FakeOpenAIServer(reply_template="[{model}] {last_user}") as fake:
        async with openai.AsyncOpenAI(base_url=fake.url, api_key="any", max_retries=0) as c:
            message: ChatCompletionUserMessageParam = {
                "role": "user",
                "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "two"}],
            }
            reply = await c.chat.completions.create(model="m1", messages=[message])
    assert reply.choices[0].message.content == "[m1] part one two"


async def test_search_model_annotations(client: openai.AsyncOpenAI) -> None:
    reply = await client.chat.completions.create(model="gpt-4o-search-preview", messages=USER)
    message = reply.choices[0].message
    assert message.content is not None and message.annotations
    cite = message.annotations[0]
    assert cite.type == "url_citation"
    span = message.content[cite.url_citation.start_index : cite.url_citation.end_index]
    assert span == f"([{cite.url_citation.title}]({cite.url_citation.url}))"


async def test_scripted_citations_streaming(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.script(
        {
            "model": "gpt-4o-search-preview",
            "reply": "Acme welds steel.",
            "citations": [
                {"url": "https://acme.example/", "title": "Acme", "start_index": 0, "end_index": 4},
                {"url": "https://b.example/", "title": "B"},
            ],
        }
    )
    stream = await client.chat.completions.create(
        model="gpt-4o-search-preview", messages=USER, stream=True
    )
    text, annotations = "", []
    async for chunk in stream:
        delta = chunk.choices[0].delta
        text += delta.content or ""
        annotations += (delta.model_extra or {}).get("annotations", [])
    assert text == "Acme welds steel. ([B](https://b.example/))"
    assert [a["url_citation"]["url"] for a in annotations] == [
        "https://acme.example/",
        "https://b.example/",
    ]
    first, second = (a["url_citation"] for a in annotations)
    assert text[first["start_index"] : first["end_index"]] == "Acme"
    assert text[second["start_index"] : second["end_index"]] == "([B](https://b.example/))"


async def test_embeddings_base64_by_default(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    result = await client.embeddings.create(
        model="text-embedding-3-small", input=["steel welding", "organic farms", "steel welding"]
    )
    assert server.requests[0]["body"]["encoding_format"] == "base64"
    vectors = [d.embedding for d in result.data]
    assert [d.index for d in result.data] == [0, 1, 2]
    assert all(len(v) == 384 for v in vectors)
    assert math.isclose(sum(x * x for x in vectors[0]), 1.0, rel_tol=1e-5)
    assert vectors[0] == vectors[2] != vectors[1]
    assert vectors[0] == pytest.approx(hash_embedding("steel welding"), abs=1e-6)
    assert result.usage.prompt_tokens == 6
    # The client would also accept floats, so check the wire format itself.
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {KEY}"}) as http:
        body = {"model": "m", "input": "steel welding", "encoding_format": "base64"}
        raw = (await http.post(f"{server.url}/embeddings", json=body)).json()
    decoded = array.array("f", base64.b64decode(raw["data"][0]["embedding"])).tolist()
    assert decoded == pytest.approx(vectors[0])


async def test_embeddings_float_with_dimensions(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    result = await client.embeddings.create(
        model="m", input="steel welding", encoding_format="float", dimensions=64
    )
    assert server.requests[0]["body"]["encoding_format"] == "float"
    assert result.data[0].embedding == pytest.approx(hash_embedding("steel welding", 64))
    # Shared words make vectors closer: the property the vector-search fake relies on.
    near, far = (hash_embedding(t, 64) for t in ("welding steel pipes", "organic farm"))
    query = result.data[0].embedding
    assert sum(map(operator.mul, query, near)) > sum(map(operator.mul, query, far))


async def test_wrong_or_missing_key_is_401(server: FakeOpenAIServer) -> None:
    async with openai.AsyncOpenAI(base_url=server.url, api_key="sk-wrong", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as err:
            await c.chat.completions.create(model="m", messages=USER)
    assert err.value.status_code == 401
    assert err.value.code == "invalid_api_key"
    assert set(err.value.response.json()["error"]) == {"message", "type", "param", "code"}
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{server.url}/embeddings", json={"model": "m", "input": "x"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, openai.BadRequestError),
        (401, openai.AuthenticationError),
        (404, openai.NotFoundError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
async def test_scripted_failures(
    server: FakeOpenAIServer,
    client: openai.AsyncOpenAI,
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    server.script({"endpoint": "chat", "status": status, "message": "scripted"})
    with pytest.raises(error) as err:
        await client.chat.completions.create(model="m", messages=USER)
    assert err.value.status_code == status
    assert err.value.message.endswith("scripted")
    # The step was used up: the next call succeeds.
    reply = await client.chat.completions.create(model="m", messages=USER)
    assert reply.choices[0].message.content


async def test_rate_limit_retry_after_header(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.script({"endpoint": "embeddings", "status": 429, "retry_after": 7})
    with pytest.raises(openai.RateLimitError) as err:
        await client.embeddings.create(model="m", input="x")
    assert err.value.response.headers["retry-after"] == "7"
    assert err.value.code == "rate_limit_exceeded"


async def test_steps_match_endpoint_and_model(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.script({"endpoint": "chat", "model": "special", "reply": "special reply", "times": 2})
    await client.embeddings.create(model="special", input="x")
    plain = await client.chat.completions.create(model="other", messages=USER)
    assert plain.choices[0].message.content == "Fake reply to: tell me about welding shops"
    for _ in range(2):
        hit = await client.chat.completions.create(model="special", messages=USER)
        assert hit.choices[0].message.content == "special reply"
    assert server.pending == []


async def test_steps_can_match_streamed_or_unstreamed_requests(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.script({"endpoint": "chat", "stream": False, "reply": "not streamed"})
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert streamed == "Fake reply to: tell me about welding shops"
    plain = await client.chat.completions.create(model="m", messages=USER)
    assert plain.choices[0].message.content == "not streamed"
    assert server.pending == []


async def test_hang_times_out_the_client(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.script({"hang": True})
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model="m", messages=USER, timeout=0.5)
    assert time.monotonic() - started < 5
    assert len(server.requests) == 1


async def _until(condition: Callable[[], bool], within: float = 10.0) -> None:
    """Wait for `condition` with a deadline (polling, never a sleep as synchronisation)."""
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_stop_does_not_wait_for_hung_requests() -> None:
    fake = FakeOpenAIServer().start()
    async with openai.AsyncOpenAI(base_url=fake.url, api_key="k", max_retries=0) as c:
        fake.script({"hang": True})
        call = asyncio.ensure_future(c.chat.completions.create(model="m", messages=USER))
        try:
            await _until(lambda: bool(fake.requests))
            assert not call.done()
            started = time.monotonic()
            await asyncio.to_thread(fake.stop)
            assert time.monotonic() - started < 1.5  # well under uvicorn's 2 s graceful timeout
            with pytest.raises(openai.APIError):
                await call
        finally:
            call.cancel()
            fake.stop()


async def test_stream_breaks_mid_way(server: FakeOpenAIServer, client: openai.AsyncOpenAI) -> None:
    server.script({"break_after": 3})
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    pieces: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            pieces += [c.delta.content for c in chunk.choices if c.delta.content]
    assert pieces == ["Fake ", "reply ", "to: "]


async def test_latency_and_token_rate(server: FakeOpenAIServer, client: openai.AsyncOpenAI) -> None:
    server.script({"reply": "one two three four five", "latency_ms": 200, "tokens_per_second": 20})
    started = time.monotonic()
    stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
    arrivals: list[float] = []
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            arrivals.append(time.monotonic() - started)
    assert len(arrivals) == 5
    assert arrivals[0] >= 0.2
    assert arrivals[-1] - arrivals[0] >= 4 * 0.05 * 0.9  # four gaps of 1/20 s


async def test_http_control_routes(server: FakeOpenAIServer, client: openai.AsyncOpenAI) -> None:
    async with httpx.AsyncClient(base_url=server.root_url) as http:
        bad = await http.post("/_fake/script", json={"steps": [{"no_such_field": 1}]})
        assert bad.status_code == 400
        steps = [{"endpoint": "chat", "reply": "over http"}, {"status": 500}]
        posted = await http.post("/_fake/script", json={"steps": steps})
        assert posted.status_code == 200
        assert len(posted.json()["pending"]) == 2
        reply = await client.chat.completions.create(model="m", messages=USER)
        assert reply.choices[0].message.content == "over http"
        with pytest.raises(openai.InternalServerError):
            await client.embeddings.create(model="m", input="x")
        recorded = (await http.get("/_fake/requests")).json()["requests"]
        assert [r["endpoint"] for r in recorded] == ["chat", "embeddings"]
        assert recorded[0]["body"]["messages"] == USER
        assert (await http.delete("/_fake/requests")).json() == {"requests": []}
        assert server.requests == []
        await http.post("/_fake/script", json=[{"status": 500}])
        assert (await http.delete("/_fake/script")).json() == {"pending": []}


def test_cli_process_is_scriptable_and_stops_on_sigterm(tmp_path: Path) -> None:
    log = tmp_path / "fake.log"
    argv = [sys.executable, "-m", "loadtest.fakes", "openai", "--api-key", KEY, "--port", "0"]
    with log.open("w") as stderr:
        proc = subprocess.Popen(argv, stderr=stderr)
    try:
        deadline = time.monotonic() + 20
        while not (found := re.search(r"listening on (\S+)", log.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        url = found.group(1)
        root = url.removesuffix("/v1")
        httpx.post(f"{root}/_fake/script", json=[{"reply": "from the CLI"}]).raise_for_status()
        with openai.OpenAI(base_url=url, api_key=KEY, max_retries=0) as c:
            reply = c.chat.completions.create(model="m", messages=USER)
        assert reply.choices[0].message.content == "from the CLI"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


WEATHER_TOOLS: list[ChatCompletionToolParam] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
    for name in ("get_weather", "get_time")
]
TWO_CALLS = [
    {"name": "get_weather", "arguments": {"city": "Paris", "units": "metric"}, "id": "call_w"},
    {"name": "get_time", "arguments": {"city": "Tokyo, Japan"}},
]


async def test_streamed_tool_calls_accumulate_by_index(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.script({"tool_calls": TWO_CALLS})
    stream = await client.chat.completions.create(
        model="m",
        messages=USER,
        tools=WEATHER_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    # Assembled as apps do: the first delta of a call has its id and name, the rest
    # append to its arguments, all keyed by index.
    calls: dict[int, dict[str, str]] = {}
    argument_deltas: dict[int, int] = {}
    contents, finish, usage, n_deltas = [], None, None, 0
    async for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish = choice.finish_reason or finish
            contents.append(choice.delta.content)
            n_deltas += bool(choice.delta.content or choice.delta.tool_calls)
            for part in choice.delta.tool_calls or []:
                call = calls.setdefault(part.index, {"id": "", "name": "", "arguments": ""})
                call["id"] += part.id or ""
                if part.function is not None:
                    call["name"] += part.function.name or ""
                    call["arguments"] += part.function.arguments or ""
                    argument_deltas[part.index] = argument_deltas.get(part.index, 0) + bool(
                        part.function.arguments
                    )
    assert finish == "tool_calls"
    assert set(contents) == {None}  # no text: content is null, as the real API sends it
    assert [c["name"] for c in calls.values()] == ["get_weather", "get_time"]
    assert [json.loads(c["arguments"]) for c in calls.values()] == [
        {"city": "Paris", "units": "metric"},
        {"city": "Tokyo, Japan"},
    ]
    assert calls[0]["id"] == "call_w"
    assert calls[1]["id"].startswith("call_fake_")
    assert all(n > 1 for n in argument_deltas.values())
    assert usage is not None and usage.completion_tokens == n_deltas
    assert server.requests[0]["body"]["tools"][0]["function"]["name"] == "get_weather"


async def test_non_streamed_tool_calls_parse_into_client_types(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    bad_json = '{"city": "Par'
    calls = [TWO_CALLS[0], {"name": "get_time", "arguments": bad_json, "id": "call_t"}]
    server.script({"tool_calls": calls, "reply": "Checking."})
    reply = await client.chat.completions.create(model="m", messages=USER, tools=WEATHER_TOOLS)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    assert choice.message.tool_calls is not None
    first, second = choice.message.tool_calls
    assert isinstance(first, ChatCompletionMessageFunctionToolCall)
    assert isinstance(second, ChatCompletionMessageFunctionToolCall)
    assert (first.id, first.type, first.function.name) == ("call_w", "function", "get_weather")
    assert json.loads(first.function.arguments) == {"city": "Paris", "units": "metric"}
    assert second.function.arguments == bad_json  # a str is sent verbatim
    assert reply.usage is not None and reply.usage.completion_tokens > 1


async def test_tool_results_are_accepted_and_counted(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.script({"tool_calls": [TWO_CALLS[0]]})
    first = await client.chat.completions.create(model="m", messages=USER, tools=WEATHER_TOOLS)
    called = first.choices[0].message
    assert called.tool_calls is not None
    follow_up: list[ChatCompletionMessageParam] = [
        *USER,
        called.model_dump(exclude_none=True),  # type: ignore[list-item]
        {"role": "tool", "tool_call_id": called.tool_calls[0].id, "content": "sunny and warm"},
    ]
    reply = await client.chat.completions.create(model="m", messages=follow_up)
    assert reply.choices[0].message.content == "Fake reply to: tell me about welding shops"
    assert reply.choices[0].message.tool_calls is None
    # 5 user words, the call's one-word JSON arguments, 3 words of the tool result.
    assert reply.usage is not None and reply.usage.prompt_tokens == 5 + 1 + 3


async def test_tools_step_waits_for_a_request_with_tools(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    async with httpx.AsyncClient(base_url=server.root_url) as http:
        steps = [
            {"tools": True, "tool_calls": [{"name": "get_time"}]},
            {"tools": False, "reply": "no tools offered"},
        ]
        (await http.post("/_fake/script", json={"steps": steps})).raise_for_status()
    plain = await client.chat.completions.create(model="m", messages=USER)
    assert plain.choices[0].message.content == "no tools offered"
    assert [s.tools for s in server.pending] == [True]
    called = await client.chat.completions.create(model="m", messages=USER, tools=WEATHER_TOOLS)
    tool_calls = called.choices[0].message.tool_calls
    assert tool_calls is not None and isinstance(
        tool_calls[0], ChatCompletionMessageFunctionToolCall
    )
    assert (tool_calls[0].function.name, tool_calls[0].function.arguments) == ("get_time", "{}")
    assert server.pending == []
    # With tools and no step left, the answer is plain text, as before.
    text = await client.chat.completions.create(model="m", messages=USER, tools=WEATHER_TOOLS)
    assert text.choices[0].message.content == "Fake reply to: tell me about welding shops"
    assert text.choices[0].finish_reason == "stop"


async def test_tool_message_without_tool_call_id_is_400(client: openai.AsyncOpenAI) -> None:
    messages: Any = [*USER, {"role": "tool", "content": "orphan result"}]
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(model="m", messages=messages)
    assert err.value.status_code == 400
    assert err.value.param == "messages[1].tool_call_id"
    assert err.value.code == "missing_required_parameter"


async def test_tool_call_stream_breaks_mid_arguments(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    server.script({"tool_calls": [TWO_CALLS[0]], "break_after": 2})
    stream = await client.chat.completions.create(
        model="m", messages=USER, tools=WEATHER_TOOLS, stream=True
    )
    arguments = ""
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            for part in chunk.choices[0].delta.tool_calls or []:
                if part.function is not None:
                    arguments += part.function.arguments or ""
    assert arguments == '{"ci'  # the call's header (token 1), then one piece (token 2)


async def test_last_role_rules_answer_concurrent_turns_by_their_own_state(
    server: FakeOpenAIServer, client: openai.AsyncOpenAI
) -> None:
    # Two rules, as the bench scripts a tool-calling scenario: the first round of a turn
    # (tools offered, the user's message last) calls two tools; the round that carries
    # their results answers. Neither is used up, whatever order concurrent turns ask in.
    many = 1_000
    server.script(
        {"tools": True, "last_role": "user", "tool_calls": TWO_CALLS[1:] * 2, "times": many},
        {"last_role": "tool", "reply": "Here is what I found.", "times": many},
    )

    async def turn() -> tuple[list[str], str | None]:
        first = await client.chat.completions.create(model="m", messages=USER, tools=WEATHER_TOOLS)
        asked = first.choices[0].message
        calls = asked.tool_calls or []
        results: list[ChatCompletionMessageParam] = [
            {"role": "tool", "tool_call_id": c.id, "content": "found"} for c in calls
        ]
        follow_up = [*USER, asked.model_dump(exclude_none=True), *results]
        answer = await client.chat.completions.create(
            model="m",
            messages=follow_up,  # type: ignore[arg-type]
            tools=WEATHER_TOOLS,
        )
        assert answer.choices[0].message.tool_calls is None
        return [c.id for c in calls], answer.choices[0].message.content

    done = await asyncio.gather(*(turn() for _ in range(8)))
    assert [(len(ids), text) for ids, text in done] == [(2, "Here is what I found.")] * 8
    assert len({i for ids, _ in done for i in ids}) == 16  # every call its own id
    assert [s.times for s in server.pending] == [many - 8, many - 8]
    # A request that ends otherwise (a system message, say) matches neither rule.
    other = await client.chat.completions.create(
        model="m", messages=[*USER, {"role": "system", "content": "be brief"}]
    )
    assert other.choices[0].message.content == "Fake reply to: tell me about welding shops"


async def test_last_role_must_be_a_role(server: FakeOpenAIServer) -> None:
    async with httpx.AsyncClient(base_url=server.root_url) as http:
        resp = await http.post("/_fake/script", json=[{"last_role": "robot"}])
    assert resp.status_code == 400 and "last_role" in resp.json()["error"]
    assert server.pending == []
