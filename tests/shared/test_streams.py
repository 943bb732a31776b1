"""Turn streams in a real Redis: tokens written without a round trip each still arrive as
one entry per token, in order, with the stream's TTL set; a failed write is not lost."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from shared.streams import STREAM_TTL_SECONDS, TokenWriter, TurnStreams, stream_key


async def _events(streams: TurnStreams, turn_id: str) -> list[tuple[str, dict[str, object]]]:
    events = []
    async for event in streams.read(turn_id, block_ms=1000):
        assert event is not None, "the stream went quiet before its final event"
        events.append((event.type, event.data))
    return events


async def test_tokens_arrive_in_order_one_entry_each(redis: Redis) -> None:
    streams = TurnStreams(redis)
    writer = TokenWriter(streams, "t-order")
    words = [f"w{i} " for i in range(300)]
    for word in words:  # no await between tokens: they pile up behind the first write
        writer.add(word)
    await writer.close()
    await streams.append("t-order", "final", {"reply": "".join(words)})

    events = await _events(streams, "t-order")
    assert [data["text"] for kind, data in events if kind == "token"] == words
    assert events[-1][0] == "final"
    ttl = await redis.ttl(stream_key("t-order"))
    assert 0 < ttl <= STREAM_TTL_SECONDS


async def _expire_calls(redis: Redis) -> int:
    stats = await redis.info("commandstats")
    return int(stats.get("cmdstat_expire", {}).get("calls", 0))


async def test_the_ttl_is_set_once_per_reply_not_per_token(redis: Redis) -> None:
    streams = TurnStreams(redis)
    before = await _expire_calls(redis)
    writer = TokenWriter(streams, "t-ttl")
    for i in range(300):
        writer.add(f"w{i}")
    await writer.close()
    assert await _expire_calls(redis) - before == 1
    assert await redis.xlen(stream_key("t-ttl")) == 300


async def test_a_failed_write_is_raised(redis: Redis) -> None:
    await redis.set(stream_key("t-broken"), "not a stream")
    writer = TokenWriter(TurnStreams(redis), "t-broken")
    writer.add("lost?")
    with pytest.raises(ResponseError):
        await writer.close()
