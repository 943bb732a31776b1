"""The response cache on a real Redis: which prompts it keys and which it refuses, what a
scope shares, expiry, the semantic index's bound, and Redis being away."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis

from activities.embeddings import LocalEmbedder
from shared.models import ChatMessage, PromptParts
from shared.pii import PiiRedactor
from shared.response_cache import (
    CacheConfig,
    CachedReply,
    CacheQuery,
    ResponseCache,
    cache_stats,
    normalize,
    query_for,
)
from tests.support import free_port

PII = PiiRedactor(["us_ssn"])
SAMPLING = {"temperature": 0.1, "top_p": 0.2, "max_tokens": 512}


def parts(user: str, **extra: object) -> PromptParts:
    return PromptParts(system="You are helpful.", user=user, **extra)  # type: ignore[arg-type]


def query(p: PromptParts, user_id: str = "alice", **extra: object) -> CacheQuery | None:
    args: dict[str, object] = {
        "user_id": user_id,
        "scope": "user",
        "model": "gpt-4o-mini",
        "sampling": SAMPLING,
        "tools": [],
        "pii": PII,
        **extra,
    }
    return query_for(p, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    e = LocalEmbedder()
    e.load()
    return e


def test_normalize_ignores_case_spacing_and_end_punctuation() -> None:
    assert (
        normalize("  What IS\tTemporal?? ") == normalize("what is temporal") == "what is temporal"
    )
    assert normalize("¿Qué es Temporal?") == "qué es temporal"
    assert normalize("What is Temporal, really?") != normalize("What is Temporal?")
    assert normalize("\uff57\uff48\uff41\uff54") == "what"  # full-width letters (NFKC)


def test_a_personal_prompt_has_no_cache_key() -> None:
    assert query(parts("What is Temporal?")) is not None
    assert query(parts("What is Temporal?", summary="Alice works at ACME.")) is None
    assert query(parts("What is Temporal?", retrieved=["user: my id is 7"])) is None
    assert query(parts("Latest news?", tool_context="Search results: ...")) is None
    assert query(parts("Write to ana.lopez@example.com")) is None
    assert query(parts("My SSN is 536-90-4399, is it valid?")) is None
    earlier = [ChatMessage(role="user", content="call me on +34 612 345 678")]
    assert query(parts("What is Temporal?", recent=earlier)) is None
    assert query(parts(" ?! ")) is None  # nothing left to compare


def test_the_key_holds_what_the_answer_depends_on() -> None:
    base = query(parts("What is Temporal?"))
    assert base == query(parts("what is temporal"))
    assert base != query(parts("What is Temporal?"), user_id="bob")  # scope user: never shared
    shared = query(parts("What is Temporal?"), scope="shared")
    assert shared == query(parts("What is Temporal?"), user_id="bob", scope="shared")
    assert base != query(parts("What is Temporal?"), model="gpt-4o")
    assert base != query(parts("What is Temporal?"), sampling={**SAMPLING, "temperature": 1})
    assert base != query(parts("What is Temporal?"), tools=["web_search"])
    other_system = PromptParts(system="You are a pirate.", user="What is Temporal?")
    assert base != query(other_system)
    earlier = [
        ChatMessage(role="user", content="hi"),
        ChatMessage(role="assistant", content="hello"),
    ]
    assert base != query(parts("What is Temporal?", recent=earlier))


async def test_an_answer_is_kept_until_it_expires_and_the_first_one_stays(redis: Redis) -> None:
    cache = ResponseCache(redis, CacheConfig(mode="exact", ttl_seconds=120))
    q = CacheQuery(bucket=uuid.uuid4().hex, question="what is temporal")
    assert await cache.get(q) is None
    await cache.put(q, CachedReply(text="first", model="m", completion_tokens=5))
    await cache.put(q, CachedReply(text="second", model="m"))
    hit = await cache.get(q)
    assert hit is not None and hit.text == "first"
    assert 0 < await redis.ttl(q.entry_key) <= 120
    stats = await cache_stats(redis)
    assert stats.hits >= 1 and stats.misses >= 1 and stats.tokens_saved >= 5


async def test_semantic_matches_a_paraphrase_and_keeps_a_bounded_index(
    redis: Redis, embedder: LocalEmbedder
) -> None:
    config = CacheConfig(mode="semantic", similarity=0.92, semantic_entries=2)
    cache = ResponseCache(redis, config, embedder, "local:minilm")
    bucket = uuid.uuid4().hex

    def q(text: str) -> CacheQuery:
        return CacheQuery(bucket=bucket, question=normalize(text))

    await cache.put(q("How do I reset my password?"), CachedReply(text="Settings.", model="m"))
    hit = await cache.get(q("how can I reset my password"))
    assert hit is not None and hit.text == "Settings." and 0.92 <= hit.similarity < 1
    assert await cache.get(q("How do I change my email address?")) is None
    assert await cache.get(q("What is the capital of France?")) is None

    await cache.put(q("What is the capital of France?"), CachedReply(text="Paris.", model="m"))
    await cache.put(q("What is the capital of Spain?"), CachedReply(text="Madrid.", model="m"))
    vectors = cache._vectors_key(q("x"))
    assert await redis.hlen(vectors) == 2  # the oldest question left the index
    assert await cache.get(q("how can I reset my password")) is None
    spain = await cache.get(q("what's the capital of spain"))
    assert spain is not None and spain.text == "Madrid."

    # An entry that expired takes its vector with it when it is next the best match.
    await redis.delete(q("What is the capital of Spain?").entry_key)
    assert await cache.get(q("what's the capital of spain")) is None
    assert await redis.hlen(vectors) == 1


def test_semantic_mode_needs_an_embedder(redis: Redis) -> None:
    with pytest.raises(ValueError, match="needs an embedder"):
        ResponseCache(redis, CacheConfig(mode="semantic"))


async def test_redis_away_is_a_miss_not_a_failure() -> None:
    gone = Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    cache = ResponseCache(gone, CacheConfig(mode="exact"))
    q = CacheQuery(bucket="b", question="what is temporal")
    try:
        await cache.put(q, CachedReply(text="x", model="m"))  # no error
        assert await cache.get(q) is None
    finally:
        await gone.aclose()
