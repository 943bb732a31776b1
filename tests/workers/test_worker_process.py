"""`chatbot worker` as a process: clear start-up failures, Prometheus metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

import httpx

from shared.config import Settings
from tests.support import assert_eventually, free_port, worker_env


async def _worker(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "chatbot",
        "worker",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_unreachable_temporal_fails_clearly_after_retrying(settings: Settings) -> None:
    proc = await _worker(
        worker_env(settings, TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}", STARTUP_RETRY_SECONDS="1")
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    assert "worker cannot start: cannot connect to Temporal at 127.0.0.1:" in err.decode()
    assert "Traceback" not in err.decode()


async def test_worker_serves_sdk_metrics_and_stops_on_sigterm(settings: Settings) -> None:
    port = free_port()
    proc = await _worker(worker_env(settings, WORKER_METRICS_PORT=str(port)))
    try:

        async def scraped() -> str:
            async with httpx.AsyncClient() as client:
                try:
                    body = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError as err:
                    raise AssertionError(f"no metrics yet: {err}") from err
            # Client metrics appear at once; worker metrics once the pollers run.
            assert "temporal_num_pollers" in body
            return body

        body = await assert_eventually(scraped, within=30)
        assert 'task_queue="' + settings.temporal_task_queue + '"' in body
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert "worker stopped" in err.decode()
