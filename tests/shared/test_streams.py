"""Turn streams in a real Redis: tokens written without a round trip each still arrive as
one entry per token, in order, with the stream's TTL set; a failed write is not lost."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.streams import (
    STREAM_TTL_SECONDS,
    TokenWriter,
    TurnStreams,
    published_key,
    stream_key,
)


def _new_turn_id() -> str:
    return str(uuid.uuid4())  # the test Redis may be shared and outlive a run


async def _events(streams: TurnStreams, turn_id: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    async for event in streams.read(turn_id, block_ms=1000):
        assert event is not None, "the stream went quiet before its final event"
        events.append((event.type, event.data))
    return events


async def test_tokens_arrive_in_order_one_entry_each(redis: Redis) -> None:
    streams, turn_id = TurnStreams(redis), _new_turn_id()
    writer = TokenWriter(streams, turn_id)
    words = [f"w{i} " for i in range(300)]
    for word in words:  # no await between tokens: they pile up behind the first write
        writer.add(word)
    await writer.close()
    await streams.append(turn_id, "final", {"reply": "".join(words)})

    events = await _events(streams, turn_id)
    assert [data["text"] for kind, data in events if kind == "token"] == words
    assert events[-1][0] == "final"
    ttl = await redis.ttl(stream_key(turn_id))
    assert 0 < ttl <= STREAM_TTL_SECONDS


async def _expire_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_expire", {}).get("calls", 0))


async def test_the_ttl_is_set_once_per_reply_not_per_token(redis: Redis) -> None:
    streams, turn_id = TurnStreams(redis), _new_turn_id()
    before = await _expire_calls(redis)
    writer = TokenWriter(streams, turn_id)
    for i in range(300):
        writer.add(f"w{i}")
    await writer.close()
    assert await _expire_calls(redis) - before == 1
    assert await redis.xlen(stream_key(turn_id)) == 300


async def test_a_failed_write_is_raised(redis: Redis) -> None:
    turn_id = _new_turn_id()
    await redis.set(stream_key(turn_id), "not a stream", ex=60)
    writer = TokenWriter(TurnStreams(redis), turn_id)
    writer.add("lost?")
    with pytest.raises(ResponseError):
        await writer.close()


async def test_a_numbered_event_published_again_is_appended_once(redis: Redis) -> None:
    """A replay after a workflow task's completion was lost runs its publish again."""
    streams = TurnStreams(redis)
    turn_id = str(uuid.uuid4())
    call = {"call": {"id": "call_1", "status": "ok"}}
    assert await streams.append_once(turn_id, 1, "tool_call", call, owner=("s1", "alice"))
    assert not await streams.append_once(turn_id, 1, "tool_call", call, owner=("s1", "alice"))
    assert await streams.append_once(turn_id, 2, "tool_result", call)
    entries = await redis.xrange(stream_key(turn_id))
    assert [fields["type"] for _, fields in entries] == ["tool_call", "tool_result"]
    assert await streams.owner(turn_id) == {"session_id": "s1", "user_id": "alice"}
    assert 0 < await redis.ttl(published_key(turn_id)) <= STREAM_TTL_SECONDS
    assert 0 < await redis.ttl(stream_key(turn_id)) <= STREAM_TTL_SECONDS
    await streams.forget([turn_id])
    assert not await redis.exists(stream_key(turn_id), published_key(turn_id))
