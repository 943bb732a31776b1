"""`chatbot send` and `chatbot chat` on tool-calling turns: a call that needs approval is
put to the person at the terminal (or decided by `--approve`, or left to the page), the
decision is posted, and the turn streams on to its reply. The relay's own rendering of
these events (and of restarts): test_cli_client.py."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from temporalio.worker import Worker

from loadtest.fakes import FakeOpenAIServer, ToolCallStep
from shared.config import Settings
from shared.models import turn_id_for
from tests.chatbot.api_support import auth
from tests.workflows.tool_support import answer, calls, model_requests, tickets

pytestmark = pytest.mark.timeout(180)  # starting the CLI takes seconds on a loaded machine

PROMPT = "Approve create_ticket? [y/N] "
TICKET = {"title": "Printer on fire", "priority": "urgent"}


@pytest.fixture(autouse=True)
def _tool_calling(settings: Settings) -> None:
    """Before the worker and the gateway are built from these settings."""
    settings.tool_calling = "on"
    settings.tool_max_steps = 3
    settings.approval_timeout_seconds = 60


class Cli:
    """`chatbot ...` as a subprocess; stdin a pipe, or a terminal (a pty) with `tty`."""

    def __init__(self, proc: asyncio.subprocess.Process, tty: int | None) -> None:
        self.proc = proc
        self.tty = tty
        self.err = ""

    @classmethod
    async def start(cls, *args: str, stdin: str = "", tty: bool = False) -> Cli:
        master, slave = pty.openpty() if tty else (None, None)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatbot",
            *args,
            stdin=slave if slave is not None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        if slave is not None:
            os.close(slave)  # the child has its own
        cli = cls(proc, master)
        if proc.stdin is not None:
            proc.stdin.write(stdin.encode())
            proc.stdin.close()
        return cli

    async def wait_for_err(self, text: str) -> str:
        """stderr up to `text` (a prompt has no newline, so it is read as it comes)."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(90):
            while text not in self.err:
                chunk = await self.proc.stderr.read(4096)
                assert chunk, f"stderr ended before {text!r}: {self.err}"
                self.err += chunk.decode()
        return self.err

    def type(self, line: str) -> None:
        assert self.tty is not None
        os.write(self.tty, f"{line}\n".encode())

    async def finish(self) -> tuple[int, str, str]:
        out, err = await asyncio.wait_for(self.proc.communicate(), 90)
        return self.proc.returncode or 0, out.decode(), self.err + err.decode()

    async def close(self) -> None:
        if self.proc.returncode is None:  # a failed test: the CLI may wait at its prompt
            self.proc.kill()
            await asyncio.wait_for(self.proc.wait(), 60)
        if self.tty is not None:
            os.close(self.tty)


Start = Callable[..., Awaitable[Cli]]


@pytest.fixture
async def chatbot() -> AsyncIterator[Start]:
    """Starts `chatbot ...`; what still runs at the end is killed (before the gateway
    stops: the fixture comes last in a test's arguments)."""
    started: list[Cli] = []

    async def start(*args: str, stdin: str = "", tty: bool = False) -> Cli:
        started.append(await Cli.start(*args, stdin=stdin, tty=tty))
        return started[-1]

    yield start
    for cli in started:
        await cli.close()


def _args(gateway: str, settings: Settings) -> tuple[str, ...]:
    token = auth(settings, "ann")["Authorization"].split()[1]
    return ("--url", gateway, "--token", token)


def _script_ticket(llm: FakeOpenAIServer, call_id: str, reply: str) -> None:
    llm.script(
        calls(ToolCallStep(id=call_id, name="create_ticket", arguments=TICKET)), answer(reply)
    )


def _turn_and_call(err: str) -> tuple[str, str, str]:
    """The decision URL's session, turn and call, as the CLI printed it."""
    match = re.search(r"/v1/sessions/([^/]+)/turns/([^/]+)/approvals/(\S+)", err)
    assert match, err
    return match.group(1), match.group(2), match.group(3)


async def test_send_asks_at_the_terminal_and_yes_runs_the_call_once(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer, chatbot: Start
) -> None:
    _script_ticket(llm, "call_y", "Ticket opened.")
    cli = await chatbot(
        "send",
        "cli-ap1",
        "Open a ticket: the printer is on fire",
        *_args(gateway, settings),
        tty=True,
    )
    asked = await cli.wait_for_err(PROMPT)
    assert "[tool call] create_ticket " in asked
    assert '{\n  "title": "Printer on fire",\n' in asked  # pretty JSON
    assert await tickets(settings, "cli-ap1") == []  # nothing ran before the answer
    cli.type("y")
    code, out, err = await cli.finish()
    assert code == 0, err
    assert out.splitlines()[0] == "Ticket opened.", out
    assert "[approval] create_ticket: approved by ann" in err
    assert re.search(r"\[tool result\] create_ticket: ok, \d+ ms: .*Ticket #", err), err
    rows = await tickets(settings, "cli-ap1")
    assert [r.title for r in rows] == ["Printer on fire"]


async def test_chat_asks_on_its_input_and_no_denies_with_the_note(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer, chatbot: Start
) -> None:
    _script_ticket(llm, "call_n", "Alright, no ticket.")
    cli = await chatbot(
        "chat",
        "cli-ap2",
        *_args(gateway, settings),
        stdin="Open a ticket: the printer is on fire\nn: not now\n/quit\n",
    )
    code, out, err = await cli.finish()
    assert code == 0, err
    assert PROMPT in err
    assert "Alright, no ticket." in out
    assert "[approval] create_ticket: denied by ann: not now" in err
    assert "[tool result] create_ticket: not run (denied)" in err
    assert await tickets(settings, "cli-ap2") == []
    told = [m["content"] for m in model_requests(llm)[1]["messages"] if m["role"] == "tool"]
    assert "denied" in told[0] and "not now" in told[0]


async def test_send_approve_none_denies_without_asking(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer, chatbot: Start
) -> None:
    _script_ticket(llm, "call_0", "I did not open one.")
    cli = await chatbot(
        "send", "cli-ap3", "Open a ticket", "--approve", "none", *_args(gateway, settings)
    )
    code, out, err = await cli.finish()
    assert code == 0, err
    assert out.splitlines()[0] == "I did not open one."
    assert PROMPT not in err and "nobody to ask" not in err
    assert "[approval] create_ticket: denied by ann" in err
    assert await tickets(settings, "cli-ap3") == []


async def test_send_approve_all_with_json_keeps_stdout_for_the_result(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer, chatbot: Start
) -> None:
    _script_ticket(llm, "call_a", "Ticket opened.")
    cli = await chatbot(
        "send", "cli-ap4", "Open a ticket", "--approve", "all", "--json", *_args(gateway, settings)
    )
    code, out, err = await cli.finish()
    assert code == 0, err
    [call] = json.loads(out)["tool_calls"]
    assert call["status"] == "ok" and call["approval"]["decision"] == "approve"
    assert "[approval] create_ticket: approved by ann" in err
    assert len(await tickets(settings, "cli-ap4")) == 1


async def test_send_without_a_terminal_waits_for_a_decision_made_elsewhere(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer, chatbot: Start
) -> None:
    _script_ticket(llm, "call_p", "Ticket opened.")
    cli = await chatbot("send", "cli-ap5", "Open a ticket", *_args(gateway, settings))
    told = await cli.wait_for_err("Without a decision in time the call is denied.")
    assert "nobody to ask here (stdin is not a terminal)" in told and PROMPT not in told
    session, turn_id, call_id = _turn_and_call(told)
    assert (session, call_id) == ("cli-ap5", "call_p")
    assert f"GET {gateway.rstrip('/')}/v1/sessions/cli-ap5/approvals lists what waits" in told
    async with httpx.AsyncClient(base_url=gateway, headers=auth(settings, "ann")) as page:
        listed = await page.get("/v1/sessions/cli-ap5/approvals")
        assert listed.status_code == 200, listed.text
        [waiting] = listed.json()["items"]
        assert (waiting["turn_id"], waiting["call"]["id"]) == (turn_id, call_id)
        resp = await page.post(
            f"/v1/sessions/{session}/turns/{turn_id}/approvals/{call_id}",
            json={"decision": "approve"},
        )
        assert resp.status_code == 200, resp.text
    code, out, err = await cli.finish()
    assert code == 0, err
    assert out.splitlines()[0] == "Ticket opened."
    assert len(await tickets(settings, "cli-ap5")) == 1


async def test_an_answer_after_a_decision_elsewhere_is_told_the_turn_moved_on(
    worker: Worker, gateway: str, settings: Settings, llm: FakeOpenAIServer, chatbot: Start
) -> None:
    _script_ticket(llm, "call_late", "No ticket, then.")
    cli = await chatbot(
        "send",
        "cli-ap6",
        "Open a ticket",
        "--client-message-id",
        "m1",
        *_args(gateway, settings),
        tty=True,
    )
    await cli.wait_for_err(PROMPT)
    turn_id = turn_id_for("cli-ap6", "m1")
    async with httpx.AsyncClient(base_url=gateway, headers=auth(settings, "ann")) as page:
        resp = await page.post(
            f"/v1/sessions/cli-ap6/turns/{turn_id}/approvals/call_late",
            json={"decision": "deny"},
        )
        assert resp.status_code == 200, resp.text
    cli.type("y")
    code, out, err = await cli.finish()
    assert code == 0, err
    assert "the turn has moved on" in err
    assert out.splitlines()[0] == "No ticket, then."
    assert await tickets(settings, "cli-ap6") == []
