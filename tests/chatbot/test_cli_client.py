"""`chatbot send`, `chatbot chat` and `chatbot token` as a person runs them; the
client's relay of a turn's events (restarts, tool calls) fed the frames a gateway sends.
Tool-calling turns through the CLI: test_cli_approvals.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from typing import Any

import pytest
from temporalio.worker import Worker

from chatbot.auth import user_from_token
from chatbot.cli import main
from chatbot.client import Event, Relay, SseParser, call_line, parse_answer
from chatbot.sse import sse_frame
from chatbot.turn_view import describe
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.streams import StreamEvent
from tests.chatbot.api_support import run_chatbot, token
from tests.support import free_port
from tests.workflows.test_tools import sample_companies

__all__ = ["sample_companies"]  # a fixture, used by name


async def test_send_prints_the_streamed_reply(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer
) -> None:
    llm.tokens_per_second = 100
    code, out, err = await run_chatbot(
        "send",
        "cli-1",
        "hello from the shell",
        "--url",
        gateway,
        "--token",
        token(settings, "ann"),
    )
    assert code == 0, err
    reply, meta = out.splitlines()
    assert reply == "Fake reply to: hello from the shell"
    assert meta.startswith("[chat · ") and meta.endswith("]"), meta


async def test_send_reads_url_and_token_from_the_environment(
    worker: Worker, gateway: str, settings: Settings
) -> None:
    env = {"CHATBOT_URL": gateway, "CHATBOT_TOKEN": token(settings, "ann")}
    code, out, _ = await run_chatbot("send", "cli-2", "via env", env=env)
    assert code == 0 and out.splitlines()[0] == "Fake reply to: via env"


async def test_send_fails_clearly(gateway: str, settings: Settings) -> None:
    code, out, err = await run_chatbot("send", "cli-3", "hi", "--url", gateway, "--token", "bad")
    assert code == 1 and out == ""
    assert "error: 401 unauthorized: the token is not valid for this service" in err

    dead = f"http://127.0.0.1:{free_port()}"
    code, _, err = await run_chatbot("send", "cli-3", "hi", "--url", dead, "--token", "t")
    assert code == 1
    assert f"cannot reach the gateway at {dead}" in err

    code, _, err = await run_chatbot(
        "send", "bad id!", "hi", "--url", gateway, "--token", token(settings, "ann")
    )
    assert code == 1 and "422" in err and "session_id" in err


async def test_chat_is_an_interactive_loop(
    worker: Worker, gateway: str, settings: Settings
) -> None:
    code, out, err = await run_chatbot(
        "chat",
        "cli-4",
        "--url",
        gateway,
        "--token",
        token(settings, "ann"),
        stdin="first\nsecond\n/quit\n",
    )
    assert code == 0, err
    assert "Fake reply to: first" in out and "Fake reply to: second" in out


async def test_chat_regenerates_the_last_answer(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer
) -> None:
    llm.script(
        {"endpoint": "chat", "stream": True, "reply": "Blue."},
        {"endpoint": "chat", "stream": True, "reply": "Green, surely."},
    )
    code, out, err = await run_chatbot(
        "chat",
        "cli-regen",
        "--url",
        gateway,
        "--token",
        token(settings, "ann"),
        stdin="/regenerate\nname a colour\n/regenerate\n/quit\n",
    )
    assert code == 0, err
    assert "nothing to regenerate yet" in err
    assert "Blue." in out and "Green, surely." in out
    code, out, err = await run_chatbot(
        "send",
        "cli-regen",
        "and why?",
        "--json",
        "--url",
        gateway,
        "--token",
        token(settings, "ann"),
    )
    assert code == 0, err
    last_reply = [r for r in llm.requests if r["endpoint"] == "chat"][-1]
    assert {"role": "assistant", "content": "Green, surely."} in last_reply["body"]["messages"]


async def test_send_says_what_to_do_while_busy(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer
) -> None:
    code, out, err = await run_chatbot(
        "send",
        "cli-busy",
        "hi",
        "--on-busy",
        "reject",
        "--url",
        gateway,
        "--token",
        token(settings, "ann"),
    )
    assert code == 0 and out.startswith("Fake reply to: hi"), err


async def test_token_mints_a_jwt_for_the_gateway(settings: Settings) -> None:
    assert settings.jwt_secret is not None
    secret = settings.jwt_secret.get_secret_value()
    code, out, _ = await run_chatbot("token", "dora", env={"JWT_SECRET": secret})
    assert code == 0
    assert user_from_token(secret, out.strip()) == "dora"
    code, _, err = await run_chatbot("token", "dora", env={"JWT_SECRET": ""})
    assert code == 2 and "JWT_SECRET" in err


async def test_send_shows_what_the_tools_found_as_the_page_does(
    sample_companies: None,
    worker: Worker,
    gateway: str,
    settings: Settings,
    llm: FakeOpenAIServer,
) -> None:
    llm.script({"endpoint": "chat", "reply": "I'm a tech consultant.", "times": 1})
    args = ("--url", gateway, "--token", token(settings, "ann"))
    code, out, err = await run_chatbot(
        "send", "cli-5", "Which suppliers do PCB assembly in Ohio?", *args
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == "I'm a tech consultant."  # a model that ignores the results
    assert "Companies found (sample data):" in lines
    assert any(line.startswith("  1. Buckeye Circuit Works") for line in lines), out
    assert lines[-1].startswith("[company search · "), out

    code, out, err = await run_chatbot(
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
    code, out, err = await run_chatbot(
        "send",
        "cli-6",
        "what is the latest news on interest rates today",
        "--url",
        gateway,
        "--token",
        token(settings, "ann"),
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


def test_a_chat_with_a_person_says_so() -> None:
    waiting = {"reply": "", "handoff": {"state": "waiting", "agent_id": None}}
    assert describe(waiting) == ["[chat · waiting for a person]"]
    claimed = {"reply": "", "handoff": {"state": "claimed", "agent_id": "zoe"}}
    assert describe(claimed) == ["[chat · with zoe, a person]"]


def test_send_arguments_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, said in [
        (["send", "s", "hi", "--approve", "maybe"], "argument --approve: invalid choice: 'maybe'"),
        (["send", "s", "hi", "--on-busy", "later"], "argument --on-busy: invalid choice: 'later'"),
        (["send", "s", "   "], "error: TEXT must not be empty"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        captured = capsys.readouterr()
        assert captured.out == "" and said in captured.err


def test_answers() -> None:
    assert parse_answer("y\n") == ("approve", "")
    assert parse_answer(" YES : go ahead\n") == ("approve", "go ahead")
    assert parse_answer("\n") == ("deny", "")
    assert parse_answer("") == ("deny", "")  # the input ended
    assert parse_answer("sure") == ("deny", "")
    assert parse_answer("n: wrong priority") == ("deny", "wrong priority")


def _frames(*events: tuple[str, dict[str, Any]]) -> list[Event]:
    """Events as the gateway frames them and the CLI parses them."""
    parser, out = SseParser(), []
    for i, (kind, data) in enumerate(events, 1):
        for line in sse_frame(StreamEvent(f"1-{i}", kind, data)).split("\n"):
            if (event := parser.feed(line)) is not None:
                out.append(event)
    return out


def _final(reply: str) -> tuple[str, dict[str, Any]]:
    return "final", {"result": {"reply": reply, "status": "complete"}}


def test_a_restart_keeps_what_earlier_steps_streamed() -> None:
    out, notes = io.StringIO(), io.StringIO()
    relay = Relay(out, notes)
    result = relay.follow(
        iter(
            _frames(
                ("token", {"text": "Let me check. "}),
                ("token", {"text": "It is"}),
                ("restart", {"attempt": 2, "keep_chars": 14}),
                ("token", {"text": "It is done."}),
                _final("Let me check. It is done."),
            )
        )
    )
    assert result is not None and relay.text == "Let me check. It is done."
    assert out.getvalue() == (
        "Let me check. It is\n[the generation restarted after a failure]\n"
        "Let me check. It is done.\n"
    )


def test_a_restart_that_lost_nothing_prints_nothing_and_one_without_keep_starts_over() -> None:
    out = io.StringIO()
    relay = Relay(out, io.StringIO())
    relay.follow(
        iter(
            _frames(
                ("token", {"text": "Step one. "}),
                ("restart", {"attempt": 2, "keep_chars": 10}),  # nothing past the kept text
                ("token", {"text": "Done."}),
                _final("Step one. Done."),
            )
        )
    )
    assert out.getvalue() == "Step one. Done.\n"

    out = io.StringIO()
    relay = Relay(out, io.StringIO())
    relay.follow(
        iter(
            _frames(
                ("token", {"text": "Hal"}),
                ("restart", {"attempt": 2}),  # the router's reply: all of it is void
                _final("Hello."),  # a fixed reply, in `final` only
            )
        )
    )
    assert out.getvalue() == "Hal\n[the generation restarted after a failure]\nHello.\n"


def test_tool_events_are_lines_apart_from_the_reply_and_each_call_is_asked_once() -> None:
    call = {"id": "c1", "name": "create_ticket", "arguments": {"title": "t"}, "status": "pending"}
    asked: list[dict[str, Any]] = []
    out, notes = io.StringIO(), io.StringIO()
    relay = Relay(out, notes, on_approval=asked.append)
    decided = {**call, "approval": {"decision": "approve", "decided_by": "ann", "note": ""}}
    done = {**decided, "status": "ok", "content": "Ticket #7\nopened", "ms": 12.4}
    relay.follow(
        iter(
            _frames(
                ("token", {"text": "Opening it."}),
                ("tool_call", {"call": call}),
                ("approval_required", {"call": {**call, "status": "awaiting_approval"}}),
                ("approval_required", {"call": {**call, "status": "awaiting_approval"}}),
                ("approval_decided", {"call": decided}),
                ("tool_result", {"call": done}),
                ("token", {"text": "Done."}),
                _final("Opening it.Done."),
            )
        )
    )
    assert [c["id"] for c in asked] == ["c1"]
    assert out.getvalue() == "Opening it.\nDone.\n"  # the notes start on a line of their own
    assert notes.getvalue().splitlines() == [
        '[tool call] create_ticket {"title": "t"}',
        "[approval] create_ticket: approved by ann",
        "[tool result] create_ticket: ok, 12 ms: Ticket #7 opened",
    ]
    timed_out = {**call, "approval": {"decision": "deny", "timed_out": True}}
    assert call_line("approval_decided", timed_out).endswith("nobody decided in time, denied")
    assert call_line("tool_result", {**call, "status": "timed_out"}).endswith("(timed out)")


def test_client_commands_start_without_importing_the_server_stack() -> None:
    """`chatbot send` and `chat` are what users run most: their start-up must not load the
    model client, the MCP SDK or the embedded stack that other commands' options bring."""
    code = (
        "import sys\n"
        "from chatbot.cli import build_parser\n"
        "build_parser(only='send').parse_args(['send', 's', 'hi'])\n"
        "heavy = {'mcp', 'openai', 'chatbot.dev', 'loadtest.chaos.faults'} & set(sys.modules)\n"
        "print(sorted(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stdout
