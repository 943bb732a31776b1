"""`chatbot dev` end to end: the whole embedded stack from a bare directory, a real turn
through it, a refused second instance, a clean stop, and a warm restart that keeps state."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from activities.embeddings import LocalEmbedder
from chatbot.embedded.llm import DEFAULT_MODEL
from chatbot.embedded.process import port_open
from shared.models import workflow_id
from tests.support import free_port, wait_until

pytestmark = pytest.mark.timeout(300)


def _health(api_port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/health", timeout=5) as resp:
            return dict(json.load(resp))
    except OSError:
        return None


class DevProcess:
    def __init__(self, cwd: Path, env: dict[str, str], name: str) -> None:
        self.out = cwd / f"{name}.out"
        with self.out.open("w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "chatbot", "dev"],
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.out.read_text()


@pytest.fixture
def dev_env(tmp_path: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "DATABASE_", "REDIS_"))
    }
    env.update(
        TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",
        TEMPORAL_UI_URL=f"http://127.0.0.1:{free_port()}",
        API_PORT=str(free_port()),
        LOCAL_LLM_PORT=str(free_port()),
        EMBEDDED_REDIS_PORT=str(free_port()),
    )
    return env


def _ports(env: dict[str, str]) -> list[int]:
    return [
        int(env["TEMPORAL_ADDRESS"].rsplit(":", 1)[1]),
        int(env["TEMPORAL_UI_URL"].rsplit(":", 1)[1]),
        int(env["API_PORT"]),
        int(env["LOCAL_LLM_PORT"]),
        int(env["EMBEDDED_REDIS_PORT"]),
    ]


def _start_and_wait(tmp_path: Path, env: dict[str, str], name: str) -> tuple[DevProcess, float]:
    began = time.monotonic()
    dev = DevProcess(tmp_path, env, name)
    api_port = int(env["API_PORT"])

    def healthy() -> bool:
        if dev.proc.poll() is not None:
            raise AssertionError(f"chatbot dev exited early:\n{dev.text()}")
        report = _health(api_port)
        return report is not None and report["status"] == "ok"

    wait_until(healthy, timeout=180, what="chatbot dev to report healthy")
    return dev, time.monotonic() - began


def _stop(dev: DevProcess, env: dict[str, str], tmp_path: Path) -> None:
    dev.proc.send_signal(signal.SIGTERM)
    assert dev.proc.wait(60) == 0, dev.text()
    assert "Stopped." in dev.text()
    for port in _ports(env):
        assert not port_open("127.0.0.1", port), f"port {port} still open after stop"
    assert not (tmp_path / ".chatbot" / "postgres" / "postmaster.pid").exists()
    assert not (tmp_path / ".chatbot" / "dev.env").exists()  # nothing points at a dead stack


async def _one_turn(env: dict[str, str], session_id: str) -> str:
    """A real turn through the gateway in dev mode (no JWT_SECRET: the local user)."""
    url = f"http://127.0.0.1:{env['API_PORT']}/v1/sessions/{session_id}/messages"
    async with httpx.AsyncClient(timeout=120) as client:
        resp = await client.post(url, json={"text": "Say hello in three words."})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["reply"])


async def test_dev_starts_everything_answers_and_stops_cleanly(
    tmp_path: Path, dev_env: dict[str, str]
) -> None:
    dev, cold = _start_and_wait(tmp_path, dev_env, "first")
    try:
        report = _health(int(dev_env["API_PORT"]))
        assert report is not None
        deps = report["dependencies"]
        assert isinstance(deps, dict)
        assert {name: d["status"] for name, d in deps.items()} == {
            "temporal": "ok",
            "postgres": "ok",
            "redis": "ok",
            "llm": "ok",
            "embeddings": "ok",
        }
        # The model actually served, not the OpenAI default the local server aliases.
        assert str(deps["llm"]["detail"]).endswith(f" model {DEFAULT_MODEL}"), deps["llm"]
        # And the local embedder: the sample companies are searchable by meaning at once.
        assert deps["embeddings"]["detail"] == LocalEmbedder.name
        assert f"  embedder  {LocalEmbedder.name}: " in dev.text()
        # The worker runs as a build of the deployment, made current (issue 17).
        assert re.search(r"^  build     \S+, current in deployment chatbot$", dev.text(), re.M)
        output = dev.text()
        for url in ("/docs", "Temporal UI", f":{dev_env['API_PORT']}"):
            assert url in output
        # Where the data is, for psql or redis-cli.
        assert re.search(r"^  Postgres     postgresql(\+\w+)?://\S+$", output, re.M), output
        assert re.search(r"^  Redis        redis://127\.0\.0\.1:\d+/0$", output, re.M), output

        # A real turn: Temporal -> worker -> the local model -> back.
        reply = await _one_turn(dev_env, "dev-smoke")
        assert reply.strip()

        # Other commands here find this stack by themselves (.chatbot/dev.env), with no
        # TEMPORAL_ADDRESS or DATABASE_URL in their environment.
        bare = {k: v for k, v in dev_env.items() if not k.startswith("TEMPORAL_")}
        ops = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "chatbot", "ops", "sessions"],
            cwd=tmp_path,
            env=bare,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ops.returncode == 0 and "dev-smoke" in ops.stdout, ops.stdout + ops.stderr
        assert (tmp_path / ".chatbot" / "dev.env").stat().st_mode & 0o077 == 0

        # A second instance in the same directory refuses instead of fighting over ports.
        second = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "chatbot", "dev"],
            cwd=tmp_path,
            env=dev_env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert f"already running here (pid {dev.proc.pid}" in second.stderr
        assert dev.proc.poll() is None
    finally:
        if dev.proc.poll() is None:
            _stop(dev, dev_env, tmp_path)

    # Warm start: same directory, state kept (the session workflow survives in SQLite).
    # A stale dev.env (a SIGKILLed dev leaves one) is not taken for configuration.
    (tmp_path / ".chatbot" / "dev.env").write_text("DATABASE_URL=postgresql://x@127.0.0.1:1/x\n")
    # The code changed meanwhile (a new build): the session's run, Pinned to the first
    # build whose workers are gone, is ended, and its next message runs on the new build.
    changed = {**dev_env, "WORKER_BUILD_ID": "next-build"}
    dev, warm = _start_and_wait(tmp_path, changed, "second")
    try:
        assert "  build     next-build, current in deployment chatbot" in dev.text()
        assert "  sessions  1 left running on an earlier build ended" in dev.text()
        reply = await _one_turn(changed, "dev-smoke")
        assert reply.strip()
        client = await Client.connect(dev_env["TEMPORAL_ADDRESS"])
        desc = await client.get_workflow_handle(workflow_id("dev-smoke")).describe()
        info = desc.raw_description.workflow_execution_info
        assert info.versioning_info.deployment_version.build_id == "next-build"
    finally:
        _stop(dev, changed, tmp_path)
    print(f"\nchatbot dev: cold start {cold:.1f} s, warm start {warm:.1f} s")


def test_printed_urls_never_show_a_password() -> None:
    from chatbot.dev import _shown

    assert _shown("postgresql://app:s3cret@db.example:5432/chat") == (
        "postgresql://app:***@db.example:5432/chat"
    )
    assert _shown("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert _shown("redis://127.0.0.1:6390/0") == "redis://127.0.0.1:6390/0"


def test_every_catalogue_model_is_pinned_to_the_file_it_was_measured_with() -> None:
    from chatbot.embedded.llm import CATALOG

    for model in CATALOG.values():
        assert len(model.sha256) == 64 and model.wheels, model.alias
        assert all("==" in requirement for requirement in model.requirements), model.alias
