"""Turn stream activities: publishing a turn's events and flagging a cancellation. Run as
local activities: each is one Redis call."""

from __future__ import annotations

from redis.asyncio import Redis
from temporalio import activity

from shared.models import CancelTurn, TurnEvent
from shared.streams import TurnStreams


async def append_event(streams: TurnStreams, event: TurnEvent) -> None:
    """Append a numbered turn event to its stream, once however often this runs."""
    data = event.model_dump(
        mode="json", exclude={"turn_id", "kind", "session_id", "user_id", "seq"}
    )
    owner = (event.session_id, event.user_id) if event.session_id else None
    await streams.append_once(event.turn_id, event.seq, event.kind, data, owner=owner)


class StreamActivities:
    def __init__(self, redis: Redis) -> None:
        self._streams = TurnStreams(redis)

    @activity.defn
    async def publish_turn_event(self, event: TurnEvent) -> None:
        await append_event(self._streams, event)

    @activity.defn
    async def request_cancel(self, req: CancelTurn) -> None:
        await self._streams.request_cancel(req.turn_id)
