"""`chatbot send`, `chatbot chat` and `chatbot token` as a person runs them."""

from __future__ import annotations

import asyncio
import json
import os
import sys

from temporalio.worker import Worker

from chatbot.auth import user_from_token
from chatbot.turn_view import describe
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from tests.chatbot.api_support import auth
from tests.support import free_port
from tests.workflows.test_tools import sample_companies

__all__ = ["sample_companies"]  # a fixture, used by name


async def _chatbot(
    *args: str, stdin: str = "", env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatbot",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _token(settings: Settings, user: str) -> str:
    return auth(settings, user)["Authorization"].split()[1]


async def test_send_prints_the_streamed_reply(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer
) -> None:
    llm.tokens_per_second = 100
    code, out, err = await _chatbot(
        "send",
        "cli-1",
        "hello from the shell",
        "--url",
        gateway,
        "--token",
        _token(settings, "ann"),
    )
    assert code == 0, err
    reply, meta = out.splitlines()
    assert reply == "Fake reply to: hello from the shell"
    assert meta.startswith("[chat · ") and meta.endswith("]"), meta


async def test_send_reads_url_and_token_from_the_environment(
    worker: Worker, gateway: str, settings: Settings
) -> None:
    env = {"CHATBOT_URL": gateway, "CHATBOT_TOKEN": _token(settings, "ann")}
    code, out, _ = await _chatbot("send", "cli-2", "via env", env=env)
    assert code == 0 and out.splitlines()[0] == "Fake reply to: via env"


async def test_send_fails_clearly(gateway: str, settings: Settings) -> None:
    code, out, err = await _chatbot("send", "cli-3", "hi", "--url", gateway, "--token", "bad")
    assert code == 1 and out == ""
    assert "error: 401 unauthorized: the token is not valid for this service" in err

    dead = f"http://127.0.0.1:{free_port()}"
    code, _, err = await _chatbot("send", "cli-3", "hi", "--url", dead, "--token", "t")
    assert code == 1
    assert f"cannot reach the gateway at {dead}" in err

    code, _, err = await _chatbot(
        "send", "bad id!", "hi", "--url", gateway, "--token", _token(settings, "ann")
    )
    assert code == 1 and "422" in err and "session_id" in err


async def test_chat_is_an_interactive_loop(
    worker: Worker, gateway: str, settings: Settings
) -> None:
    code, out, err = await _chatbot(
        "chat",
        "cli-4",
        "--url",
        gateway,
        "--token",
        _token(settings, "ann"),
        stdin="first\nsecond\n/quit\n",
    )
    assert code == 0, err
    assert "Fake reply to: first" in out and "Fake reply to: second" in out


async def test_token_mints_a_jwt_for_the_gateway(settings: Settings) -> None:
    assert settings.jwt_secret is not None
    secret = settings.jwt_secret.get_secret_value()
    code, out, _ = await _chatbot("token", "dora", env={"JWT_SECRET": secret})
    assert code == 0
    assert user_from_token(secret, out.strip()) == "dora"
    code, _, err = await _chatbot("token", "dora", env={"JWT_SECRET": ""})
    assert code == 2 and "JWT_SECRET" in err


async def test_send_shows_what_the_tools_found_as_the_page_does(
    sample_companies: None,
    worker: Worker,
    gateway: str,
    settings: Settings,
    llm: FakeOpenAIServer,
) -> None:
    llm.script({"endpoint": "chat", "reply": "I'm a tech consultant.", "times": 1})
    args = ("--url", gateway, "--token", _token(settings, "ann"))
    code, out, err = await _chatbot(
        "send", "cli-5", "Which suppliers do PCB assembly in Ohio?", *args
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "I'm a tech consultant."  # a model that ignores the results
    assert "Companies found (sample data):" in lines
    assert any(line.startswith("  1. Buckeye Circuit Works") for line in lines), out
    assert lines[-1].startswith("[company search · "), out

    code, out, err = await _chatbot(
        "send", "cli-5", "Which suppliers do PCB assembly in Ohio?", "--json", *args
    )
    assert code == 0, err
    turn = json.loads(out)  # the TurnResult alone, for scripts
    assert turn["intent"] == "company_search" and turn["session_id"] == "cli-5"
    assert turn["tool_results"][0]["companies"][0]["name"] == "Buckeye Circuit Works"


async def test_send_prints_a_reply_no_model_streamed(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer
) -> None:
    """A news question while the search model refuses: the fixed reply arrives in the
    `final` event only, with no tokens before it, and is printed all the same."""
    llm.script({"endpoint": "chat", "model": settings.openai_search_model, "status": 400})
    code, out, err = await _chatbot(
        "send",
        "cli-6",
        "what is the latest news on interest rates today",
        "--url",
        gateway,
        "--token",
        _token(settings, "ann"),
    )
    assert code == 0, err
    lines = out.splitlines()
    assert (
        lines[0]
        == "I couldn't look that up just now; the search failed. Please try again in a moment."
    ), out
    assert lines[1].startswith("Web search is unavailable: web search is unavailable right now")
    assert lines[-1].startswith("[web search · "), out


def test_notices_sources_and_failures_are_spelled_out() -> None:
    result = {
        "reply": "...",
        "status": "failed",
        "error": "the model provider is unreachable",
        "intent": "both",
        "tool_results": [
            {"tool": "company_search", "unavailable": True, "message": "Databricks said 401"},
            {"tool": "web_search", "unavailable": True, "message": "not configured"},
        ],
        "citations": [{"index": 1, "title": "Launch", "url": "https://example.com/a"}],
        "timings_ms": {"detect_intent": 20.0, "generate_reply": 1480.0, "first_token": 310.0},
    }
    assert describe(result) == [
        "Company search is unavailable: Databricks said 401",
        "Web search is unavailable: not configured",
        "Sources:",
        "  [1] Launch <https://example.com/a>",
        "The reply failed: the model provider is unreachable",
        "[companies + web · failed · 1.5 s, first token 310 ms]",
    ]
