"""Timeouts and retry policies of the session workflow's activities."""

from __future__ import annotations

from datetime import timedelta

from temporalio.common import RetryPolicy

LLM_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=6,
    non_retryable_error_types=["LLMRequestRejected"],
)
GENERATE_TIMEOUT = timedelta(minutes=3)
# Short enough that a worker killed mid-generation is noticed fast and the turn retried.
GENERATE_HEARTBEAT = timedelta(seconds=10)

DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
)
DB_TIMEOUT = timedelta(seconds=30)

LOCAL_TIMEOUT = timedelta(seconds=10)
LOCAL_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=100))

# Each tool has its own deadline; a failed tool does not fail the turn.
TOOL_TIMEOUT = timedelta(seconds=30)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
    non_retryable_error_types=["CompanySearchRejected", "LLMRequestRejected"],
)
