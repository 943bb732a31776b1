"""A client_message_id names one request: the same key with another text is a client's
mistake and gets 409, as Stripe's idempotency keys do, never the first turn's answer.

The key's text is remembered in Redis from the moment the message is sent (Temporal
answers a repeated update id with the first update's outcome, whatever its argument), and
compared with the stored turn once it is in Postgres."""

from __future__ import annotations

import hashlib
import logging

from redis.asyncio import Redis

from chatbot.errors import Conflict
from shared.redis import REDIS_UNAVAILABLE

log = logging.getLogger(__name__)
KEY_TTL_SECONDS = 24 * 3600


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"


def conflict(client_message_id: str) -> IdempotencyConflict:
    return IdempotencyConflict(
        f"client_message_id {client_message_id!r} was already used for a different message "
        "in this session; use a new id for a new message"
    )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def claim(redis: Redis, *, session_id: str, client_message_id: str, text: str) -> None:
    """Remember the key's text, or raise IdempotencyConflict if it was sent with another.
    Without Redis the check falls to Postgres alone (turns already stored)."""
    key, digest = f"idem:{session_id}:{client_message_id}", _digest(text)
    try:
        if await redis.set(key, digest, nx=True, ex=KEY_TTL_SECONDS):
            return
        known = await redis.get(key)
    except REDIS_UNAVAILABLE as err:
        log.warning("idempotency key not checked in Redis: %s", err)
        return
    if known is not None and known != digest:
        raise conflict(client_message_id)
