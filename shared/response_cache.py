"""The response cache (CACHE_MODE=exact|semantic): a question answered before, in the same
context, is answered again from Redis without asking the model.

Only a turn with nothing personal in its prompt is looked up or stored: no summary, no
retrieved messages, no tool results or routing hint, no personal data in the user's
message (shared.pii), and a stored answer is one the model gave without calling a tool.
What else the answer depends on is the entry's *context*: the model and its sampling
settings, the system prompt, the session's earlier messages verbatim (none in a new
session) and the tools offered. The *scope* is the user (CACHE_SCOPE=user, the default:
never shared) or every user of the deployment (`shared`).

`exact` matches the normalized question (case, spacing and end punctuation do not count);
`semantic` then compares the question's embedding with those of the scope's and
context's latest CACHE_SEMANTIC_ENTRIES questions and takes the closest at or above
CACHE_SIMILARITY. Entries expire after CACHE_TTL_SECONDS. Keys are hashes: no user id or
question appears in a key. Redis being away is a miss, never a failed turn."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import math
import time
import unicodedata
from array import array
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from pydantic import BaseModel
from redis.asyncio import Redis

from shared.models import PromptParts
from shared.pii import PiiRedactor
from shared.redis import REDIS_UNAVAILABLE

log = logging.getLogger(__name__)

PREFIX = "chatbot:cache"
STATS_KEY = f"{PREFIX}:stats"  # hits, misses, tokens_saved, ms_saved: for /metrics
CacheMode = Literal["off", "exact", "semantic"]
CacheScope = Literal["user", "shared"]
# What the end of a question may carry without changing it.
_END_MARKS = " \t?!.¡¿,;:…"


class Embed(Protocol):
    async def embed(self, texts: list[str]) -> list[list[float]]: ...


def normalize(text: str) -> str:
    """The question as compared: Unicode-normalized, case-folded, one space between
    words, no punctuation at its ends."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split()).strip(_END_MARKS)


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class CacheConfig:
    mode: CacheMode = "off"
    scope: CacheScope = "user"
    ttl_seconds: int = 86_400
    similarity: float = 0.92
    semantic_entries: int = 256


@dataclass(frozen=True)
class CacheQuery:
    """Where a turn's answer is looked up and stored: the scope and context as one hash,
    and the normalized question."""

    bucket: str
    question: str

    @property
    def entry_key(self) -> str:
        return f"{PREFIX}:e:{self.bucket}:{_digest(self.question)[:32]}"


class CachedReply(BaseModel):
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    generated_ms: float = 0.0  # how long the model took to write it
    turn_id: str = ""  # the turn whose answer it is
    similarity: float = 1.0  # of the question it was found by (semantic mode)


def query_for(
    parts: PromptParts,
    *,
    user_id: str,
    scope: CacheScope,
    model: str,
    sampling: dict[str, Any],
    tools: list[str],
    pii: PiiRedactor,
) -> CacheQuery | None:
    """Where this prompt's answer is cached; None when the prompt is personal."""
    if parts.summary or parts.retrieved or parts.tool_context:
        return None
    texts = [parts.user, *(m.content for m in parts.recent)]
    if any(pii.find(t) for t in texts):
        return None
    question = normalize(parts.user)
    if not question:
        return None
    earlier = [(m.role, m.content) for m in parts.recent]
    owner = user_id if scope == "user" else ""
    bucket = _digest(owner, model, sampling, parts.system, earlier, sorted(tools))[:32]
    return CacheQuery(bucket=bucket, question=question)


def _text(found: dict[Any, Any]) -> dict[str, str]:
    """A hash as text, whether or not the client decodes replies."""
    return {
        (k.decode() if isinstance(k, bytes) else k): (v.decode() if isinstance(v, bytes) else v)
        for k, v in found.items()
    }


def _unit(vector: list[float]) -> array[float]:
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return array("f", (v / norm for v in vector))


class ResponseCache:
    def __init__(
        self,
        redis: Redis,
        config: CacheConfig,
        embedder: Embed | None = None,
        embedder_name: str = "",
    ) -> None:
        if config.mode == "semantic" and embedder is None:
            raise ValueError(
                "CACHE_MODE=semantic needs an embedder: install the embed extra or set "
                "OPENAI_API_KEY (EMBEDDER), or use CACHE_MODE=exact"
            )
        self._redis = redis
        self.config = config
        self._embedder = embedder if config.mode == "semantic" else None
        self._embedder_name = embedder_name

    @property
    def enabled(self) -> bool:
        return self.config.mode != "off"

    def _vectors_key(self, query: CacheQuery) -> str:
        return f"{PREFIX}:v:{_digest(self._embedder_name)[:8]}:{query.bucket}"

    async def get(self, query: CacheQuery) -> CachedReply | None:
        """The cached answer, counted as a hit or a miss; None on a miss or a fault."""
        try:
            found = await self._find(query)
            await self._count(found)
        except REDIS_UNAVAILABLE as err:
            log.warning("response cache not read: %s", err)
            return None
        return found

    async def _find(self, query: CacheQuery) -> CachedReply | None:
        raw = await self._redis.get(query.entry_key)
        if raw is not None:
            return CachedReply.model_validate_json(raw)
        if self._embedder is None:
            return None
        # Vectors as base64 of float32s: the service's Redis client decodes replies as text.
        vectors = _text(await self._redis.hgetall(self._vectors_key(query)))
        if not vectors:
            return None
        (embedded,) = await self._embedder.embed([query.question])
        mine = _unit(embedded)
        best, best_key = -1.0, ""
        for key, packed in vectors.items():
            theirs = array("f")
            theirs.frombytes(base64.b64decode(packed))
            if len(theirs) != len(mine):
                continue
            score = sum(a * b for a, b in zip(mine, theirs, strict=True))
            if score > best:
                best, best_key = score, key
        if best < self.config.similarity:
            return None
        raw = await self._redis.get(best_key)
        if raw is None:  # expired: its vector goes too
            await self._redis.hdel(self._vectors_key(query), best_key)
            return None
        return CachedReply.model_validate_json(raw).model_copy(
            update={"similarity": round(best, 4)}
        )

    async def _count(self, hit: CachedReply | None) -> None:
        pipe = self._redis.pipeline(transaction=False)
        if hit is None:
            pipe.hincrby(STATS_KEY, "misses", 1)
        else:
            pipe.hincrby(STATS_KEY, "hits", 1)
            pipe.hincrby(STATS_KEY, "tokens_saved", hit.prompt_tokens + hit.completion_tokens)
            pipe.hincrbyfloat(STATS_KEY, "ms_saved", round(hit.generated_ms, 1))
        await pipe.execute()

    async def put(self, query: CacheQuery, reply: CachedReply) -> None:
        """Store an answer; the first one stored for a question stays until it expires."""
        ttl = self.config.ttl_seconds
        try:
            stored = await self._redis.set(
                query.entry_key, reply.model_dump_json(), ex=ttl, nx=True
            )
            if stored and self._embedder is not None:
                (embedded,) = await self._embedder.embed([query.question])
                await self._index(query, base64.b64encode(_unit(embedded).tobytes()).decode(), ttl)
        except REDIS_UNAVAILABLE as err:
            log.warning("response cache not written: %s", err)

    async def _index(self, query: CacheQuery, vector: str, ttl: int) -> None:
        """The question's vector among its bucket's latest `semantic_entries`."""
        vectors, order = self._vectors_key(query), f"{self._vectors_key(query)}:order"
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(vectors, query.entry_key, vector)
        pipe.zadd(order, {query.entry_key: time.time()})
        pipe.expire(vectors, ttl)
        pipe.expire(order, ttl)
        pipe.zrange(order, 0, -self.config.semantic_entries - 1)
        pipe.zremrangebyrank(order, 0, -self.config.semantic_entries - 1)
        *_, dropped, _ = await pipe.execute()
        if dropped:
            await self._redis.hdel(vectors, *dropped)


@dataclass(frozen=True)
class CacheStats:
    hits: int = 0
    misses: int = 0
    tokens_saved: int = 0
    ms_saved: float = 0.0

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0


async def cache_stats(redis: Redis) -> CacheStats:
    values = {k: float(v) for k, v in _text(await redis.hgetall(STATS_KEY)).items()}
    return CacheStats(
        hits=int(values.get("hits", 0)),
        misses=int(values.get("misses", 0)),
        tokens_saved=int(values.get("tokens_saved", 0)),
        ms_saved=values.get("ms_saved", 0.0),
    )
