"""The locustfile on its own, as anyone would run it against a deployment: here against the
benchmark's direct-path app (the API's shape, no Temporal) in front of the fake LLM. Each
run must stop by itself, name its requests by step and leave one record per message."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.responses import JSONResponse

from loadtest.bench.direct import create_app
from loadtest.bench.locust_runner import LOCUSTFILE
from loadtest.fakes import FakeOpenAIServer, ServerThread
from loadtest.scenarios.catalog import get_scenario
from loadtest.scenarios.names import (
    CREATE_SESSION,
    SEND_MESSAGE,
    SSE_ACCEPTED,
    SSE_FINAL,
    SSE_FIRST_TOKEN,
)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def direct(llm: FakeOpenAIServer) -> Iterator[str]:
    llm.tokens_per_second = 500  # tokens arrive one by one, so a first token exists
    server = ServerThread(create_app(llm.url, "test-key", "gpt-4o-mini"), lifespan="on").start()
    yield server.url
    server.stop()


def _locust(host: str, tmp_path: Path, *args: str) -> tuple[list[dict[str, object]], set[str]]:
    records = tmp_path / "records.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--only-summary",
            "--host",
            host,
            "--json-file",
            str(tmp_path / "stats"),  # locust adds .json
            "--records",
            str(records),
            "--smoke",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    names = {entry["name"] for entry in json.loads((tmp_path / "stats.json").read_text())}
    return [json.loads(line) for line in records.read_text().splitlines()], names


def test_json_scenario_sends_its_messages_and_stops(direct: str, tmp_path: Path) -> None:
    recs, names = _locust(direct, tmp_path, "--scenario", "high")
    scenario = get_scenario("high", smoke=True)
    messages = [r for r in recs if r["kind"] == "message"]
    assert len(messages) == scenario.planned_messages
    assert all(m["ok"] and m["reply"] for m in messages)
    assert len({m["client_message_id"] for m in messages}) == len(messages)
    assert {CREATE_SESSION, SEND_MESSAGE} <= names


def test_streaming_scenario_measures_time_to_first_token(direct: str, tmp_path: Path) -> None:
    recs, names = _locust(
        direct, tmp_path, "--scenario", "concurrent-stream", "--scenario-users", "3"
    )
    messages = [r for r in recs if r["kind"] == "message"]
    assert len(messages) == 3
    for m in messages:
        assert m["ok"], m
        ttft, e2e = m["ttft_ms"], m["e2e_ms"]
        assert isinstance(ttft, float) and isinstance(e2e, float)
        assert 0 < ttft < e2e
    assert {CREATE_SESSION, SSE_ACCEPTED, SSE_FIRST_TOKEN, SSE_FINAL} <= names


def test_time_boxed_scenario_ends_on_time(direct: str, tmp_path: Path) -> None:
    recs, _ = _locust(direct, tmp_path, "--scenario", "sustained", "--scenario-duration", "1.5")
    messages = [r for r in recs if r["kind"] == "message"]
    assert messages and all(m["ok"] for m in messages)
    first = min(float(str(m["started"])) for m in messages)
    assert max(float(str(m["started"])) for m in messages) - first < 1.5


def _busy_once(app: Any, asked: Counter[str]) -> Any:
    """A deployment whose gateway answers each message's first POST with the service's 503
    "still running, retry with the same client_message_id" and serves the retry."""

    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/messages"):
            await app(scope, receive, send)
            return
        messages = [await receive()]
        while messages[-1].get("more_body"):
            messages.append(await receive())
        cmid = json.loads(b"".join(m.get("body", b"") for m in messages))["client_message_id"]
        asked[cmid] += 1
        if asked[cmid] == 1:
            busy = JSONResponse(
                {"error": {"code": "unavailable", "message": "retry with the same id"}},
                status_code=503,
                headers={"Retry-After": "0.2"},
            )
            await busy(scope, receive, send)
            return
        replay = iter(messages)
        await app(scope, lambda: _next(replay), send)

    async def _next(replay: Iterator[Any]) -> Any:
        return next(replay)

    return wrapped


def test_a_503_with_retry_after_is_asked_again_with_the_same_id(
    llm: FakeOpenAIServer, tmp_path: Path
) -> None:
    asked: Counter[str] = Counter()
    app = _busy_once(create_app(llm.url, "test-key", "gpt-4o-mini"), asked)
    server = ServerThread(app, lifespan="on").start()
    try:
        recs, _ = _locust(server.url, tmp_path, "--scenario", "baseline")
    finally:
        server.stop()
    messages = [r for r in recs if r["kind"] == "message"]
    assert len(messages) == get_scenario("baseline", smoke=True).planned_messages
    for m in messages:
        assert m["ok"] and m["retries"] == 1, m
        assert float(str(m["e2e_ms"])) >= 200  # the time spent waiting counts
    assert sorted(asked.values()) == [2] * len(messages)
    assert sum(1 for r in llm.requests if r["endpoint"] == "chat") == len(messages)
