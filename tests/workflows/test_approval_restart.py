"""A pending approval survives the Temporal server restarting: the wait is in the
workflow's history (the dev server's SQLite file here), not in a process's memory. The
decision after the restart runs the tool once and the turn completes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from chatbot.embedded import temporal as embedded_temporal
from chatbot.embedded.process import ManagedProcess
from loadtest.fakes import FakeOpenAIServer, ToolCallStep
from shared.config import Settings
from tests.support import assert_eventually, free_port
from tests.workflows.tool_support import (
    answer,
    calls,
    decide,
    enable_tool_calling,
    start_turn,
    tickets,
    until,
)

pytestmark = pytest.mark.timeout(240)


class RestartableTemporal:
    """A dev server of this module's own, on a fixed port, persisted to a file."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.starts = 0
        self.proc: ManagedProcess | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = embedded_temporal.dev_server_argv(
            port=self.port, db_file=self.home / "temporal.sqlite", namespace="default", ui_port=None
        )
        self.starts += 1
        log = self.home / f"temporal-{self.starts}.log"
        self.proc = embedded_temporal.dev_server_process(argv, port=self.port, log_path=log)
        self.proc.start()
        self.proc.wait_ready()

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop()


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RestartableTemporal]:
    server = RestartableTemporal(tmp_path_factory.mktemp("temporal-restart"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def temporal_address(restartable: RestartableTemporal) -> str:
    """This module's tests run on the restartable server instead of the session's."""
    return restartable.address


@pytest.fixture(autouse=True)
def _tool_calling(settings: Settings) -> None:
    enable_tool_calling(settings)


async def test_a_pending_approval_survives_a_temporal_restart(
    restartable: RestartableTemporal,
    worker: object,
    alice: httpx.AsyncClient,
    settings: Settings,
    llm: FakeOpenAIServer,
) -> None:
    ticket = {"title": "Laptop stolen", "priority": "high"}
    llm.script(calls(ToolCallStep(name="create_ticket", arguments=ticket)), answer("Opened."))
    turn_id = await start_turn(alice, "restart-tool", "My laptop was stolen; open a ticket.")
    asked = (await until(alice, turn_id, "approval_required"))[-1]
    assert asked.type == "approval_required", asked
    call_id = asked.data["call"]["id"]

    restartable.stop()  # SIGTERM, as an orchestrator restarts it
    restartable.start()

    # The gateway answers 503 (retryable) until its connection is back; then the decision
    # reaches the workflow that has been waiting since before the restart.
    async def decided() -> None:
        resp = await decide(alice, "restart-tool", turn_id, call_id, "approve")
        assert resp.status_code == 200, resp.text

    await assert_eventually(decided, within=60, interval=0.5)
    final = (await until(alice, turn_id, "final", within=120))[-1]
    assert final.type == "final", final
    result = final.data["result"]
    assert result["status"] == "complete" and result["reply"] == "Opened."
    [call] = result["tool_calls"]
    assert call["status"] == "ok" and call["approval"]["decision"] == "approve", call
    assert [tuple(t) for t in await tickets(settings, "restart-tool")] == [
        (ticket["title"], f"{turn_id}:0")
    ]
