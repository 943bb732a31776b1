"""The shipped Grafana dashboard queries metrics that the gateway and worker export."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import REGISTRY, generate_latest

import chatbot.metrics  # noqa: F401 - registers the gateway's metrics

DASHBOARD = Path(__file__).parents[2] / "chatbot" / "dashboards" / "grafana-chatbot.json"
# Exported by temporalio's runtime on the worker's WORKER_METRICS_PORT (seen there by
# tests/workers/test_worker_process.py scraping a real worker).
TEMPORAL_SDK_METRICS = {
    "temporal_sticky_cache_size",
    "temporal_worker_task_slots_available",
    "temporal_activity_execution_latency_bucket",
}


def test_every_panel_queries_an_exported_metric() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exposition = generate_latest(REGISTRY).decode()
    gateway_metrics = set(re.findall(r"^# TYPE (\w+) ", exposition, re.M))
    known = TEMPORAL_SDK_METRICS | {
        f"{name}{suffix}" for name in gateway_metrics for suffix in ("", "_total", "_bucket")
    }
    titles = set()
    for panel in dashboard["panels"]:
        titles.add(panel["title"])
        for target in panel["targets"]:
            used = set(re.findall(r"\b((?:chatbot|temporal)_\w+)", target["expr"]))
            assert used and used <= known, (panel["title"], used - known)
    for wanted in ("Turn latency", "Time to first token", "Errors by kind", "Active sessions"):
        assert any(t.startswith(wanted) for t in titles), wanted
