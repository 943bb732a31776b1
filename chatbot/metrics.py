"""Prometheus metrics of the gateway (served at /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.response_cache import CacheStats

TURNS = Counter("chatbot_turns_total", "Turns answered, by outcome", ["status"])
TURN_LATENCY = Histogram(
    "chatbot_turn_step_seconds",
    "Time spent per turn step (end_to_end, first_token, detect_intent, generate_reply, ...)",
    ["step"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
ERRORS = Counter("chatbot_errors_total", "API errors, by kind", ["kind"])
BREAKER_STATES = ("closed", "open", "half_open")
BREAKER_STATE = Gauge(
    "chatbot_breaker_state",
    "Each provider's circuit breaker: 1 for the state it is in (read from Redis at scrape)",
    ["provider", "state"],
)
# The response cache's figures, kept in Redis by all workers (read at scrape).
CACHE_LOOKUPS = Gauge(
    "chatbot_response_cache_lookups",
    "Response cache lookups since its figures were last reset, by result (hit, miss)",
    ["result"],
)
CACHE_HIT_RATIO = Gauge("chatbot_response_cache_hit_ratio", "Response cache hits / lookups")
CACHE_TOKENS_SAVED = Gauge(
    "chatbot_response_cache_tokens_saved", "Provider tokens the cached answers did not spend"
)
CACHE_SECONDS_SAVED = Gauge(
    "chatbot_response_cache_seconds_saved", "Generation time the cached answers did not take"
)
ACTIVE_STREAMS = Gauge("chatbot_active_streams", "SSE and WebSocket streams open now")


def record_turn(status: str, timings_ms: dict[str, float], end_to_end_s: float) -> None:
    TURNS.labels(status).inc()
    TURN_LATENCY.labels("end_to_end").observe(end_to_end_s)
    for step, ms in timings_ms.items():
        TURN_LATENCY.labels(step).observe(ms / 1000)


def record_cache(stats: CacheStats) -> None:
    CACHE_LOOKUPS.labels("hit").set(stats.hits)
    CACHE_LOOKUPS.labels("miss").set(stats.misses)
    CACHE_HIT_RATIO.set(stats.hit_rate)
    CACHE_TOKENS_SAVED.set(stats.tokens_saved)
    CACHE_SECONDS_SAVED.set(stats.ms_saved / 1000)
