"""Timeouts and retry policies of the session workflow's activities.

Every policy is bounded, so a turn holds its session for at most TURN_DEADLINE: the
worst case of its steps one after another (intent, tools, retrieval, the reply, storing
it, publishing it). A data error is never retried: the same row fails the same way."""

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
# All attempts of one reply, backoff included.
GENERATE_DEADLINE = timedelta(minutes=10)
# Short enough that a worker killed mid-generation is noticed fast and the turn retried;
# the activity heartbeats while it waits for a slow first token too.
GENERATE_HEARTBEAT = timedelta(seconds=10)

# Postgres restarting or failing over is waited out; one that stays away ends the turn
# `failed` after DB_DEADLINE instead of holding the session.
DB_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=20,
    non_retryable_error_types=["SessionMissing", "TurnNotStorable"],
)
DB_TIMEOUT = timedelta(seconds=30)
DB_DEADLINE = timedelta(minutes=3)

LOCAL_TIMEOUT = timedelta(seconds=10)
LOCAL_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(milliseconds=100))
# Publishing a turn's event to Redis: a Redis outage is waited out for a while; after that
# the event is dropped (readers find the stored result in Postgres), the turn goes on.
PUBLISH_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=200),
    maximum_interval=timedelta(seconds=2),
    maximum_attempts=10,
)
PUBLISH_DEADLINE = timedelta(seconds=20)

# Each tool has its own deadline; a failed tool does not fail the turn.
TOOL_TIMEOUT = timedelta(seconds=30)
TOOL_RETRY = RetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=5),
    maximum_attempts=3,
    non_retryable_error_types=["CompanySearchRejected", "LLMRequestRejected"],
)
# A call_tool activity beats while its tool runs: a worker killed mid-call is noticed
# within this, not the tool's whole timeout.
TOOL_HEARTBEAT = timedelta(seconds=10)
TOOLS_DEADLINE = 3 * TOOL_TIMEOUT + timedelta(seconds=10)

# The longest one turn can hold its session (README: "Limits"): intent, tools, retrieval,
# the reply, storing it (twice at worst: a failed turn is stored too), its events.
TURN_DEADLINE = (
    5 * LOCAL_TIMEOUT
    + TOOLS_DEADLINE
    + TOOLS_DEADLINE
    + GENERATE_DEADLINE
    + 2 * DB_DEADLINE
    + 3 * PUBLISH_DEADLINE
)
