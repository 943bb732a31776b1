"""The locust side of the scenarios: users that authenticate, create sessions and talk.

Imported only inside locust's process (`loadtest/locustfile.py`). Every request is named
after its step, so locust's statistics have one line per step; every message also leaves
a record (one JSON line, with `--records FILE`) that the benchmark reads for exact
percentiles, the time to first token and the integrity check against Postgres.
"""

from __future__ import annotations

import codecs
import contextlib
import itertools
import json
import random
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
from locust import HttpUser, LoadTestShape, constant, events, task
from locust.exception import StopUser

from chatbot.client import SseParser
from loadtest.scenarios.catalog import Scenario, get_scenario, scenario_names
from loadtest.scenarios.names import (
    CREATE_SESSION,
    SEND_MESSAGE,
    SSE_ACCEPTED,
    SSE_FINAL,
    SSE_FIRST_TOKEN,
    TOLD_TO_RETRY,
)

# (connect, read) seconds: a turn can queue behind many others under load.
REQUEST_TIMEOUT = (10.0, 300.0)
# A failed session or message is followed by this pause, so a broken deployment is not
# hammered in a tight loop by a time-boxed scenario.
PAUSE_AFTER_FAILURE = 0.5
# Times one message is asked again after a 503 with Retry-After before it counts as failed.
MAX_RETRIES = 20
TOKEN_TTL_SECONDS = 6 * 3600
# What a scenario with `questions` asks: the questions people ask again and again (each
# routed as chat, so no tool runs and the answer may be cached).
QUESTIONS = (
    "How do I reset my password?",
    "How do I book a meeting room?",
    "Explain what a durable workflow is",
    "Write a short welcome message for new team members",
    "How many vacation days do new employees get?",
)


def add_options(parser: Any) -> None:
    """Our options on locust's command line (each also read from its environment variable)."""
    add = parser.add_argument
    add(
        "--scenario",
        default="baseline",
        choices=scenario_names(),
        env_var="CHATBOT_SCENARIO",
        help="which scenario to play (see loadtest/scenarios/catalog.py)",
    )
    add(
        "--smoke",
        action="store_true",
        env_var="CHATBOT_SMOKE",
        help="the scenario's small version (a few seconds)",
    )
    for name, kind, what in (
        ("users", int, "simulated users at once"),
        ("messages", int, "messages per session"),
        ("rounds", int, "sessions per user, one after another"),
        ("duration", float, "seconds a time-boxed scenario runs"),
        ("think-min", float, "shortest pause between messages, seconds"),
        ("think-max", float, "longest pause between messages, seconds"),
        ("spawn", float, "users started per second"),
    ):
        env = "CHATBOT_SCENARIO_" + name.upper().replace("-", "_")
        add(f"--scenario-{name}", type=kind, env_var=env, help=f"override: {what}")
    add(
        "--max-seconds",
        type=float,
        default=0,
        env_var="CHATBOT_MAX_SECONDS",
        help="stop after this long whatever happens (0: the scenario's own bound)",
    )
    add(
        "--session-prefix",
        default="",
        env_var="CHATBOT_SESSION_PREFIX",
        help="session ids start with this (default: lt-<random>)",
    )
    add(
        "--records",
        default="",
        env_var="CHATBOT_RECORDS",
        help="write one JSON line per session and message to this file",
    )
    add(
        "--token",
        default="",
        env_var="CHATBOT_TOKEN",
        is_secret=True,
        help="bearer token for every user (else --jwt-secret, else dev mode)",
    )
    add(
        "--jwt-secret",
        default="",
        env_var="CHATBOT_JWT_SECRET",
        is_secret=True,
        help="mint one token per simulated user with the gateway's JWT_SECRET",
    )


def scenario_from_options(options: Any) -> Scenario:
    scenario = get_scenario(options.scenario, smoke=bool(options.smoke))
    changes: dict[str, object] = {}
    for attr in ("users", "messages", "rounds", "duration"):
        value = getattr(options, f"scenario_{attr}", None)
        if value is not None:
            changes[attr] = value
    low, high = options.scenario_think_min, options.scenario_think_max
    if low is not None or high is not None:
        lo = scenario.think[0] if low is None else low
        changes["think"] = (lo, max(lo, scenario.think[1] if high is None else high))
    if options.scenario_spawn is not None:
        changes["spawn_rate"] = options.scenario_spawn
    return scenario.with_changes(**changes)


@dataclass
class Run:
    """What this locust process's users share: the scenario, the clock, the records."""

    scenario: Scenario = field(default_factory=lambda: get_scenario("baseline"))
    prefix: str = ""
    records_path: Path | None = None
    token: str = ""
    jwt_secret: str = ""
    max_seconds: float = 0.0
    started: float = 0.0
    finished: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    numbers: itertools.count[int] = field(default_factory=itertools.count)

    def configure(self, options: Any) -> None:
        self.scenario = scenario_from_options(options)
        self.prefix = options.session_prefix or f"lt-{uuid.uuid4().hex[:8]}"
        self.records_path = Path(options.records) if options.records else None
        self.token, self.jwt_secret = options.token, options.jwt_secret
        self.max_seconds = options.max_seconds or self.scenario.time_bound

    def start(self) -> None:
        self.started, self.finished = time.monotonic(), 0

    def elapsed(self) -> float:
        """Seconds since the test started (0 before: the shape ticks before test_start)."""
        return time.monotonic() - self.started if self.started else 0.0

    def time_up(self) -> bool:
        s, elapsed = self.scenario, self.elapsed()
        return elapsed >= self.max_seconds or (s.duration is not None and elapsed >= s.duration)

    def auth_headers(self, user_no: int) -> dict[str, str]:
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        if self.jwt_secret:
            now = int(time.time())
            claims = {"sub": f"{self.prefix}-user{user_no}", "iat": now}
            token = jwt.encode({**claims, "exp": now + TOKEN_TTL_SECONDS}, self.jwt_secret)
            return {"Authorization": f"Bearer {token}"}
        return {}  # dev mode: the gateway runs without JWT_SECRET

    def save(self) -> None:
        if self.records_path is None:
            return
        self.records_path.parent.mkdir(parents=True, exist_ok=True)
        with self.records_path.open("w") as out:
            out.writelines(json.dumps(r) + "\n" for r in self.records)


RUN = Run()


def _configure(environment: Any, **_: Any) -> None:
    if environment.parsed_options is not None:
        RUN.configure(environment.parsed_options)


def _started(environment: Any, **_: Any) -> None:
    RUN.start()


def _stopped(environment: Any, **_: Any) -> None:
    RUN.save()


# locust's EventHook.add_listener is unannotated.
events.init.add_listener(_configure)  # type: ignore[no-untyped-call]
events.test_start.add_listener(_started)  # type: ignore[no-untyped-call]
events.test_stop.add_listener(_stopped)  # type: ignore[no-untyped-call]


class ScenarioShape(LoadTestShape):
    """Holds the scenario's user count until every user has played its part (or the time
    bound passes), then ends the test: each run stops by itself."""

    def tick(self) -> tuple[int, float] | None:
        s = RUN.scenario
        if RUN.finished >= s.users or RUN.elapsed() > RUN.max_seconds:
            return None
        return s.users, s.spawn_rate


class ChatUser(HttpUser):
    """Authenticates, then plays the scenario once and stops."""

    wait_time = constant(0)  # the scenario paces itself inside the task

    def on_start(self) -> None:
        self.no = next(RUN.numbers)
        self.rng = random.Random()
        self.client.headers.update(RUN.auth_headers(self.no))
        self.sent = 0

    @task
    def play(self) -> None:
        s = RUN.scenario
        try:
            for round_no in itertools.count():
                if (s.duration is None and round_no >= s.rounds) or RUN.time_up():
                    break
                session_id = self.create_session(round_no)
                if session_id is None:
                    time.sleep(PAUSE_AFTER_FAILURE)
                    continue
                for index in range(s.messages):
                    if self.sent and s.think[1] > 0:
                        time.sleep(self.rng.uniform(*s.think))
                    if RUN.time_up():
                        break
                    if not self.send(session_id, round_no, index):
                        time.sleep(PAUSE_AFTER_FAILURE)
        finally:
            RUN.finished += 1
        if RUN.finished >= s.users:
            # The last one ends the test now rather than at the shape's next tick (1 s),
            # from a greenlet of the runner's, since quitting stops this user's greenlet.
            self.environment.runner.greenlet.spawn(self.environment.runner.quit)
        raise StopUser

    def _record(self, **fields: Any) -> dict[str, Any]:
        record = {"scenario": RUN.scenario.name, "user": self.no, **fields}
        RUN.records.append(record)
        return record

    def create_session(self, round_no: int) -> str | None:
        session_id = f"{RUN.prefix}.{RUN.scenario.name}.u{self.no}.r{round_no}"
        started, t0 = time.time(), time.perf_counter()
        with self.client.post(
            "/v1/sessions",
            json={"id": session_id, "title": f"load test {RUN.scenario.name}"},
            name=CREATE_SESSION,
            catch_response=True,
            timeout=REQUEST_TIMEOUT,
        ) as resp:
            ok = resp.status_code == 201
            if not ok:
                resp.failure(f"{resp.status_code}: {resp.text[:200]}")
        self._record(
            kind="session",
            session_id=session_id,
            started=started,
            e2e_ms=(time.perf_counter() - t0) * 1000,
            status_code=resp.status_code,
            ok=ok,
        )
        return session_id if ok else None

    def send(self, session_id: str, round_no: int, index: int) -> bool:
        self.sent += 1
        cmid = f"{RUN.prefix}-{RUN.scenario.name}-u{self.no}-r{round_no}-m{index}"
        text = f"Load test message {index + 1} [{cmid}]"
        if RUN.scenario.questions:  # round by round, each user goes through the questions
            text = QUESTIONS[(round_no + index) % min(RUN.scenario.questions, len(QUESTIONS))]
        body = {"text": text, "client_message_id": cmid}
        record = self._record(
            kind="message",
            session_id=session_id,
            client_message_id=cmid,
            message_index=index,
            started=time.time(),
            ok=False,
        )
        t0 = time.perf_counter()
        send = self._send_streaming if RUN.scenario.streaming else self._send_json
        send(session_id, body, record, t0)
        # A 503 with Retry-After means the turn still runs: as the API advises, ask again
        # with the same client_message_id (the same turn, never a second one).
        while record.get("retry_after") is not None:
            time.sleep(record.pop("retry_after"))
            record["retries"] = record.get("retries", 0) + 1
            record.pop("error", None)
            send(session_id, body, record, t0)
        return bool(record["ok"])

    def _send_json(
        self, session_id: str, body: dict[str, Any], record: dict[str, Any], t0: float
    ) -> None:
        with self.client.post(
            f"/v1/sessions/{session_id}/messages",
            json=body,
            name=SEND_MESSAGE,
            catch_response=True,
            timeout=REQUEST_TIMEOUT,
        ) as resp:
            record["e2e_ms"] = (time.perf_counter() - t0) * 1000
            record["status_code"] = resp.status_code
            if resp.status_code != 200:
                _take_failure(record, resp)
                return
            _take_result(record, resp.json())
            if not record["ok"]:
                resp.failure(f"turn {record.get('turn_status')}: {record.get('error')}")

    def _send_streaming(
        self, session_id: str, body: dict[str, Any], record: dict[str, Any], t0: float
    ) -> None:
        with self.client.post(
            f"/v1/sessions/{session_id}/messages",
            json=body,
            headers={"Accept": "text/event-stream"},
            name=SSE_ACCEPTED,
            stream=True,
            catch_response=True,
            timeout=REQUEST_TIMEOUT,
        ) as resp:
            record["accepted_ms"] = (time.perf_counter() - t0) * 1000
            record["status_code"] = resp.status_code
            if resp.status_code != 200:
                _take_failure(record, resp)
                return
            resp.success()
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                _take_result(record, resp.json())  # a stored turn, answered at once
            else:
                self._read_events(resp, record, t0)
            resp.close()
        record["e2e_ms"] = (time.perf_counter() - t0) * 1000
        if record.get("ttft_ms") is not None:
            self._fire(SSE_FIRST_TOKEN, record["ttft_ms"], None)
        failure = None if record["ok"] else RuntimeError(str(record.get("error")))
        self._fire(SSE_FINAL, record["e2e_ms"], failure)

    def _read_events(self, resp: Any, record: dict[str, Any], t0: float) -> None:
        parser, decoder, pending = SseParser(), codecs.getincrementaldecoder("utf-8")(), ""
        try:
            for chunk in resp.iter_content(chunk_size=None):
                pending += decoder.decode(chunk)
                *lines, pending = pending.split("\n")
                for line in lines:
                    event = parser.feed(line.removesuffix("\r"))
                    if event is None:
                        continue
                    if event.type == "token" and record.get("ttft_ms") is None:
                        record["ttft_ms"] = (time.perf_counter() - t0) * 1000
                    elif event.type == "restart":
                        record["restarts"] = record.get("restarts", 0) + 1
                    elif event.type == "final":
                        _take_result(record, event.data["result"])
                        return
                    elif event.type == "error":
                        record["error"] = event.data.get("error") or "error event"
                        return
            record["error"] = "the stream ended without a final event"
        except Exception as err:  # a dropped connection mid-stream counts as a failed turn
            record["error"] = f"stream broken: {err!r}"

    def _fire(self, name: str, response_time: float, exception: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="SSE",
            name=name,
            response_time=response_time,
            response_length=0,
            exception=exception,
            context={},
        )


def _take_failure(record: dict[str, Any], resp: Any) -> None:
    """A non-200 answer. A 503 with Retry-After while retries remain is the service saying
    "still running, ask again": its own line in locust's table, not a failure."""
    record["error"] = f"{resp.status_code}: {resp.text[:300]}"
    if resp.status_code == 503 and record.get("retries", 0) < MAX_RETRIES:
        with contextlib.suppress(ValueError):  # no advice to retry: the failure stands
            record["retry_after"] = min(float(resp.headers.get("Retry-After", "")), 30.0)
            resp.request_meta["name"] = TOLD_TO_RETRY
            resp.success()
            return
    resp.failure(record["error"])


def _take_result(record: dict[str, Any], result: dict[str, Any]) -> None:
    record["turn_id"] = result.get("turn_id")
    record["turn_status"] = result.get("status")
    record["reply"] = result.get("reply", "")
    record["timings_ms"] = result.get("timings_ms") or {}
    record["cached"] = bool(result.get("cached"))
    record["completion_tokens"] = (result.get("usage") or {}).get("completion_tokens", 0)
    if calls := result.get("tool_calls"):  # a tool-calling turn's calls, in brief
        keys = ("name", "status", "step", "ms")
        record["tool_calls"] = [{k: c.get(k) for k in keys} for c in calls]
    record["ok"] = result.get("status") == "complete"
    if not record["ok"]:
        record["error"] = result.get("error") or f"turn {result.get('status')}"
