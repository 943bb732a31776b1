"""Stream activities: publishing a turn's events and a session's feed, and flagging a
cancellation. Run as local activities: each is one Redis call."""

from __future__ import annotations

from redis.asyncio import Redis
from temporalio import activity

from shared.models import CancelTurn, FeedEvent, TurnEvent
from shared.streams import SessionFeed, TurnStreams


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
        self._feed = SessionFeed(redis)

    @activity.defn
    async def publish_feed_event(self, event: FeedEvent) -> None:
        """Best effort, as the turn events are: a user who misses it finds the handoff in
        the session and the agent's message in the history."""
        await self._feed.append(event.session_id, event.kind, event.data)

    @activity.defn
    async def publish_turn_event(self, event: TurnEvent) -> None:
        await append_event(self._streams, event)

    @activity.defn
    async def request_cancel(self, req: CancelTurn) -> None:
        await self._streams.request_cancel(req.turn_id)
