"""Worker Versioning with real worker processes on one dev server (issue 17): a session's
run stays on the build that started it through a promotion, its in-flight turn finishes
there, and new sessions and the session's next run (continue-as-new, AUTO_UPGRADE) start
on the promoted build. `chatbot ops deployment` shows both builds and their sessions."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle

from chatbot.ops import show_deployment, show_session
from loadtest.fakes import FakeOpenAIServer
from shared.config import Settings
from shared.models import workflow_id
from tests.support import assert_eventually, worker_env
from workers import versioning

pytestmark = pytest.mark.timeout(300)


async def _worker(
    settings: Settings, build: str, log: Path, *flags: str
) -> asyncio.subprocess.Process:
    with log.open("wb") as out:  # a file, not a pipe nobody reads while it runs
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "chatbot",
            "worker",
            *flags,
            env=worker_env(settings, WORKER_BUILD_ID=build),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=out,
        )


async def _stop(proc: asyncio.subprocess.Process, log: Path) -> str:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.wait(), 60)
    return log.read_text()  # noqa: ASYNC240 (a small file, after the process ended)


async def _current_is(client: Client, settings: Settings, build: str) -> None:
    async def current() -> None:
        view = await versioning.describe(client, settings)
        assert view is not None and view.current_build == build, view

    # Not faster: the server limits the requests to one deployment.
    await assert_eventually(current, within=60, interval=1.0)


async def _run_build(handle: WorkflowHandle[Any, Any]) -> str:
    info = (await handle.describe()).raw_description.workflow_execution_info
    return str(info.versioning_info.deployment_version.build_id)


def _task_builds(history: Any) -> set[str]:
    """The builds whose workers completed this run's workflow tasks."""
    return {
        e.workflow_task_completed_event_attributes.deployment_version.build_id
        for e in history.events
        if e.HasField("workflow_task_completed_event_attributes")
    }


async def test_a_run_stays_on_its_build_through_a_promotion(
    settings: Settings,
    temporal_client: Client,
    gateway: str,
    alice: httpx.AsyncClient,
    llm: FakeOpenAIServer,
    tmp_path: Path,
) -> None:
    settings.turns_per_run = 2  # the session's second turn ends its run
    a, b = f"build-a-{uuid.uuid4().hex[:4]}", f"build-b-{uuid.uuid4().hex[:4]}"
    log_a, log_b = tmp_path / "worker-a.log", tmp_path / "worker-b.log"
    worker_a = await _worker(settings, a, log_a)  # the deployment's first build: current now
    worker_b: asyncio.subprocess.Process | None = None
    try:
        await _current_is(temporal_client, settings, a)
        first = f"pinned-{uuid.uuid4().hex[:6]}"
        resp = await alice.post(f"/sessions/{first}/messages", json={"text": "hello"})
        assert resp.status_code == 200, resp.text
        handle = temporal_client.get_workflow_handle(workflow_id(first))
        first_run = (await handle.describe()).run_id
        assert await _run_build(handle) == a

        # A turn in flight on A (the model takes its time) while B is promoted.
        llm.latency_ms = 4000
        in_flight = asyncio.create_task(
            alice.post(f"/sessions/{first}/messages", json={"text": "slow one"})
        )

        async def generating() -> None:
            assert any(
                r["endpoint"] == "chat" and r["body"]["messages"][-1]["content"] == "slow one"
                for r in llm.requests
            )

        await assert_eventually(generating, within=30)
        worker_b = await _worker(settings, b, log_b, "--promote")
        await _current_is(temporal_client, settings, b)
        llm.latency_ms = 0
        resp = await in_flight
        assert resp.status_code == 200, resp.text
        assert resp.json()["status"] == "complete"
        run_a = temporal_client.get_workflow_handle(workflow_id(first), run_id=first_run)
        assert _task_builds(await run_a.fetch_history()) == {a}  # every task of the run on A

        # A new session starts on B.
        second = f"fresh-{uuid.uuid4().hex[:6]}"
        resp = await alice.post(f"/sessions/{second}/messages", json={"text": "hi"})
        assert resp.status_code == 200, resp.text
        assert await _run_build(temporal_client.get_workflow_handle(workflow_id(second))) == b

        # The first session's next run (continue-as-new after two turns) moves to B.
        async def next_run_on_b() -> None:
            latest = await handle.describe()
            assert latest.run_id != first_run
            assert await _run_build(handle) == b

        await assert_eventually(next_run_on_b, within=60)
        resp = await alice.post(f"/sessions/{first}/messages", json={"text": "on b now"})
        assert resp.status_code == 200, resp.text
        assert _task_builds(await handle.fetch_history()) == {b}

        # The operator's view: both builds, B current, and the session count on each.
        async def drained_view() -> versioning.DeploymentView:
            view = await versioning.describe(temporal_client, settings)
            assert view is not None
            builds = {v.build_id: v for v in view.versions}
            assert builds[b].status == "current" and builds[a].status != "current"
            assert builds[b].running_sessions == 2  # both sessions' open runs
            assert builds[a].running_sessions == 0  # A's run of the first session ended
            return view

        await assert_eventually(drained_view, within=60, interval=1.0)
        shown = await show_deployment(temporal_client, settings)
        assert f"current    {b}" in shown
        assert re.search(rf"^{a}\s+(?:draining|drained|inactive)\s+0 ", shown, re.M), shown
        assert re.search(rf"^{b}\s+current\s+2 ", shown, re.M), shown
        session = await show_session(temporal_client, settings, first)
        assert f"build     {b} (pinned)" in session
    finally:
        logs = [await _stop(worker_a, log_a)]
        if worker_b is not None:
            logs.append(await _stop(worker_b, log_b))
    assert all("Traceback" not in e and "worker stopped" in e for e in logs), logs
    assert "this build is the current version" in logs[0] and logs[1]
