"""Relaying a turn's Redis stream as Server-Sent Events (and as WebSocket frames)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from chatbot.metrics import ACTIVE_STREAMS
from shared.streams import StreamEvent, TurnStreams

KEEPALIVE = ": keep-alive\n\n"


def sse_frame(event: StreamEvent) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {json.dumps(event.data)}\n\n"


def ws_frame(turn_id: str, event: StreamEvent) -> dict[str, Any]:
    return {"type": event.type, "id": event.id, "turn_id": turn_id, **event.data}


async def relay_sse(streams: TurnStreams, turn_id: str, after: str) -> AsyncIterator[str]:
    """Frames from entry `after` (exclusive) to the turn's final or error event."""
    ACTIVE_STREAMS.inc()
    try:
        yield "retry: 1000\n\n"
        async for event in streams.read(turn_id, after):
            yield KEEPALIVE if event is None else sse_frame(event)
    finally:
        ACTIVE_STREAMS.dec()
