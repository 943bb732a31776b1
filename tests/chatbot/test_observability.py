"""Log lines carry the ids of their request, session, turn and workflow; one trace spans
the gateway's request, the workflow and its activities."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.worker import Worker

from shared.config import Settings
from shared.logging import JsonFormatter


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def log_lines() -> Iterator[_Lines]:
    handler, root = _Lines(), logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The process's tracer provider, set once, recording spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return exporter


async def test_log_lines_carry_request_session_turn_and_workflow_ids(
    worker: Worker, alice: httpx.AsyncClient, log_lines: _Lines
) -> None:
    resp = await alice.post(
        "/sessions/obs-logs/messages", json={"text": "log me"}, headers={"X-Request-ID": "req-42"}
    )
    assert resp.status_code == 200
    assert resp.headers["x-request-id"] == "req-42"
    turn_id = resp.json()["turn_id"]
    request_line = next(
        line
        for line in log_lines.lines
        if line["msg"] == "POST /v1/sessions/obs-logs/messages -> 200"
    )
    assert request_line["request_id"] == "req-42"
    assert request_line["session_id"] == "obs-logs"
    assert request_line["workflow_id"] == "chat-obs-logs"
    assert request_line["turn_id"] == turn_id
    for msg in ("reply generated", "turn persisted"):
        line = next(line for line in log_lines.lines if line["msg"] == msg)
        assert line["workflow_id"] == "chat-obs-logs", line
        assert line["session_id"] == "obs-logs" and line["turn_id"] == turn_id


async def test_one_trace_spans_the_gateway_and_the_activities(
    spans: InMemorySpanExporter, worker: Worker, alice: httpx.AsyncClient
) -> None:
    spans.clear()
    resp = await alice.post("/sessions/obs-trace/messages", json={"text": "trace me"})
    assert resp.status_code == 200
    finished: tuple[ReadableSpan, ...] = spans.get_finished_spans()
    by_name = {s.name: s for s in finished}
    request = by_name["POST /v1/sessions/obs-trace/messages"]
    generate = by_name["RunActivity:generate_reply"]
    persist = by_name["RunActivity:persist_turn"]
    assert request.context is not None and generate.context is not None
    trace_id = request.context.trace_id
    assert generate.context.trace_id == trace_id
    assert persist.context is not None and persist.context.trace_id == trace_id
    assert any(n.startswith("HandleUpdate:send_message") for n in by_name), sorted(by_name)
    assert request.attributes is not None
    assert request.attributes["chatbot.session_id"] == "obs-trace"


class TestRedactedTraces:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"pii_redaction": "logs"})

    async def test_span_names_hold_no_personal_data_a_path_carried(
        self, spans: InMemorySpanExporter, gateway: str, alice: httpx.AsyncClient
    ) -> None:
        spans.clear()
        resp = await alice.post("/sessions/ana.lopez@example.com/messages", json={"text": "hi"})
        assert resp.status_code == 422  # no session id has an @; the path still reached a span
        names = [s.name for s in spans.get_finished_spans()]
        assert "POST /v1/sessions/[EMAIL_1]/messages" in names, names
        assert not [n for n in names if "ana.lopez" in n]
