"""Structured JSON logs on stderr: one object a line, carrying the ids of what is being
done (request, session, turn, workflow) and the current trace, so any line can be joined
to the rest of its turn.

`log_scope()` opens a fresh context (one per request); `bind(**ids)` adds ids to it. The
context is a mutable dict held in a ContextVar, so ids bound deep in a handler are seen by
the middleware that logs the request's last line."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

from opentelemetry import trace
from temporalio import activity, workflow

from shared.pii import PiiRedactor

# Attributes every LogRecord has; anything else came from `extra=` and is logged as a field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_context: ContextVar[dict[str, str] | None] = ContextVar("log_context", default=None)
# Credentials that other code may put in a line (uvicorn logs a WebSocket's whole URL,
# query string included): a `token=` parameter, an Authorization value.
_SECRETS = re.compile(r"(?i)((?:[?&;]|\b)(?:access_)?token=|\bbearer\s+)[^\s&\"';,]+")


def redact(text: str) -> str:
    return _SECRETS.sub(r"\1[redacted]", text)


@contextmanager
def log_scope(**ids: str) -> Iterator[dict[str, str]]:
    token = _context.set(dict(ids))
    try:
        yield _context.get() or {}
    finally:
        _context.reset(token)


def bind(**ids: str) -> None:
    """Add ids to the current scope (opening one if there is none)."""
    scope = _context.get()
    if scope is None:
        _context.set(dict(ids))
    else:
        scope.update(ids)


def _temporal_ids() -> dict[str, str]:
    if activity.in_activity():
        info = activity.info()
        return {
            "workflow_id": info.workflow_id or "",
            "session_id": (info.workflow_id or "").removeprefix("chat-"),
            "activity": info.activity_type,
        }
    if workflow.in_workflow():
        wf = workflow.info()
        return {"workflow_id": wf.workflow_id, "session_id": wf.workflow_id.removeprefix("chat-")}
    return {}


class JsonFormatter(logging.Formatter):
    def __init__(self, pii: PiiRedactor | None = None) -> None:
        super().__init__()
        self._pii = pii  # PII_REDACTION: personal data out of every line

    def format(self, record: logging.LogRecord) -> str:
        line = self._format(record)
        return self._pii.redact(line) if self._pii is not None else line

    def _format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        entry.update(_temporal_ids())
        entry.update(_context.get() or {})
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
            entry["span_id"] = format(span.span_id, "016x")
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO", pii: PiiRedactor | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(pii))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # uvicorn's access log repeats what our request line says, without the ids.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
