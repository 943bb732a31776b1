"""The Redis client, built from settings."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.config import Settings


def redis_from_settings(settings: Settings) -> Redis:
    if settings.redis_url is None:
        raise ValueError("REDIS_URL is not set (run `chatbot dev` to start an embedded Redis)")
    return Redis.from_url(
        settings.redis_url.get_secret_value(),
        decode_responses=True,
        socket_connect_timeout=5,
        health_check_interval=30,
    )
