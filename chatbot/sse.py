"""Relaying a turn's events as Server-Sent Events (and as WebSocket frames)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from chatbot.metrics import ACTIVE_STREAMS
from chatbot.relay import turn_events
from chatbot.resources import Resources
from shared.streams import StreamEvent

KEEPALIVE = ": keep-alive\n\n"


def sse_frame(event: StreamEvent) -> str:
    # An event not read from Redis has no id: the client's Last-Event-ID stays the last
    # real one, which is where a resume must start.
    head = f"id: {event.id}\n" if event.id else ""
    return f"{head}event: {event.type}\ndata: {json.dumps(event.data)}\n\n"


def ws_frame(turn_id: str, event: StreamEvent) -> dict[str, Any]:
    return {"type": event.type, "id": event.id or None, "turn_id": turn_id, **event.data}


async def relay_sse(
    res: Resources, user_id: str, turn_id: str, after: str, *, fresh: bool = False
) -> AsyncIterator[str]:
    """Frames from entry `after` (exclusive) to the turn's final or error event; `fresh`
    as in `turn_events`."""
    with res.slots.hold(user_id, enforce=False):  # admitted before the response started
        ACTIVE_STREAMS.inc()
        try:
            yield "retry: 1000\n\n"
            async for event in turn_events(res, turn_id, after, fresh=fresh):
                yield KEEPALIVE if event is None else sse_frame(event)
        finally:
            ACTIVE_STREAMS.dec()
