"""Conversation memory beyond the recent turns: the rolling summary and retrieval of
older messages of the session by similarity."""

from __future__ import annotations

import logging

import openai
from openai import AsyncOpenAI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity

from activities.embeddings import Embedder, openai_failed, vector_literal
from activities.llm import provider_error
from shared.breaker import Breaker, ProviderUnavailable, guarded, unavailable_error
from shared.config import Settings
from shared.db.schema import has_column
from shared.logging import bind
from shared.models import Retrieved, RetrieveInput, SummarizeInput, SummaryResult
from shared.pii import Redaction
from shared.usage import UsageLedger, reported_usage, summary_step

log = logging.getLogger(__name__)

# Messages embedded per retrieval at most; a backlog (a session older than its
# embeddings) catches up over the next turns.
EMBED_BATCH = 62
# The session's messages before its most recent `:recent` ones.
_OLDER_THAN_RECENT = (
    "seq < COALESCE((SELECT min(seq) FROM (SELECT seq FROM messages WHERE session_id = :s "
    "ORDER BY seq DESC LIMIT :recent) AS newest), 9223372036854775807)"
)

SNIPPET_CHARS = 1000


def snippet(role: str, content: str) -> str:
    """How a retrieved message reads in the prompt."""
    return f"{role}: {content[:SNIPPET_CHARS]}"


SUMMARY_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between a user and an assistant. "
    "Fold the new turns into the summary. Keep every name, number, date, decision, "
    "preference and open question; drop pleasantries. Write plain sentences, at most "
    "{words} words. Answer with the updated summary only."
)


class MemoryActivities:
    def __init__(
        self,
        client: AsyncOpenAI,
        engine: AsyncEngine,
        embedder: Embedder | None,
        settings: Settings,
        *,
        breaker: Breaker | None = None,
        ledger: UsageLedger | None = None,
    ) -> None:
        self._client = client
        self._engine = engine
        self._embedder = embedder
        self._settings = settings
        self._vectors: bool | None = None
        self._breaker = breaker  # the chat model's: a fold fails at once while it is open
        self._ledger = ledger  # where a fold's tokens are recorded, as the session user's
        self._pii = settings.pii_in_prompts

    async def _current(self, session_id: str) -> SummaryResult:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT summary, summary_version FROM sessions WHERE id = :id"),
                    {"id": session_id},
                )
            ).first()
        return (
            SummaryResult(summary=row.summary, version=row.summary_version)
            if row
            else (SummaryResult(summary="", version=0))
        )

    @activity.defn
    async def summarize(self, req: SummarizeInput) -> SummaryResult:
        """Fold turns into the summary exactly once: the write is conditional on the
        version it started from, so a retry after a successful write changes nothing."""
        current = await self._current(req.session_id)
        if current.version != req.version:
            log.info("summary already at version %s; not folding again", current.version)
            return current
        limit = self._settings.summary_max_chars
        transcript = "\n".join(f"{m.role}: {m.content}" for m in req.turns)
        prompt = f"Summary so far:\n{req.summary or '(none yet)'}\n\nNew turns:\n{transcript}"
        redaction = Redaction()  # logs+prompts: the model sees placeholders, the summary not
        if self._pii is not None:
            prompt = self._pii.redact(prompt, redaction)
        model = self._settings.openai_chat_model
        instructions = SUMMARY_INSTRUCTIONS.format(words=limit // 8)
        try:
            async with guarded(self._breaker, openai_failed):
                completion = await self._client.chat.completions.create(
                    model=model,
                    messages=[
                        {"role": "system", "content": instructions},
                        {"role": "user", "content": prompt},
                    ],
                    max_tokens=max(64, limit // 3),
                    temperature=0,
                )
        except openai.APIError as err:
            raise provider_error(err) from err
        except ProviderUnavailable as err:
            raise unavailable_error(err) from None
        if self._ledger is not None and req.user_id:
            step = summary_step(req.session_id, req.user_id, req.version, model)
            await self._ledger.record(step, reported_usage(completion.usage))
        content = completion.choices[0].message.content if completion.choices else None
        summary = redaction.restore((content or "").strip())[:limit] or req.summary
        async with self._engine.begin() as conn:
            updated = await conn.execute(
                text(
                    "UPDATE sessions SET summary = :s, summary_version = :v + 1, "
                    "updated_at = now() WHERE id = :id AND summary_version = :v"
                ),
                {"s": summary, "v": req.version, "id": req.session_id},
            )
        if not updated.rowcount:
            return await self._current(req.session_id)
        return SummaryResult(summary=summary, version=req.version + 1)

    async def _vectors_available(self) -> bool:
        if self._vectors is None:
            # Added with `embedding` (0003): present wherever pgvector is.
            self._vectors = await has_column(self._engine, "messages", "embedding_model")
        return self._vectors

    @activity.defn
    async def retrieve_context(self, req: RetrieveInput) -> Retrieved:
        """The session's older messages most similar to the new one, above the threshold."""
        top_k = self._settings.retrieval_top_k
        if self._embedder is None or top_k == 0 or not await self._vectors_available():
            return Retrieved(available=False)
        threshold = self._settings.retrieval_threshold
        if threshold is None:
            threshold = self._embedder.relevance_threshold
        bind(session_id=req.session_id)
        bounds = {
            "s": req.session_id,
            "recent": max(req.exclude_recent, 0),
            "model": self._embedder.name,
        }
        async with self._engine.connect() as conn:
            # Messages are embedded here, once they leave the recent window: one request
            # for the query and the newly retrievable messages, none for short sessions.
            # A message another embedder embedded is embedded again by this one.
            pending = (
                await conn.execute(
                    text(
                        f"SELECT id, content FROM messages WHERE session_id = :s "
                        f"AND embedding_model IS DISTINCT FROM :model AND {_OLDER_THAN_RECENT} "
                        "ORDER BY seq LIMIT :n"
                    ),
                    {**bounds, "n": EMBED_BATCH},
                )
            ).all()
            vector, *embedded = await self._embedder.embed(
                [req.query, *(r.content or " " for r in pending)]
            )
            for row, row_vector in zip(pending, embedded, strict=True):
                await conn.execute(
                    text(
                        "UPDATE messages SET embedding = CAST(:v AS vector), "
                        "embedding_model = :model WHERE id = :id"
                    ),
                    {"v": vector_literal(row_vector), "id": row.id, "model": bounds["model"]},
                )
            await conn.commit()
            # Exact nearest neighbours among this session's messages: an approximate
            # (HNSW) scan over every session's vectors filters *after* taking its ~40
            # candidates, and on a busy database those can all be other sessions' (the
            # loaded-machine miss of issue 16). The CTE is materialised, so no vector
            # index can serve the ORDER BY; a session's rows come by its (session, seq)
            # index, and a few thousand distances cost about a millisecond.
            rows = (
                await conn.execute(
                    text(
                        "WITH mine AS MATERIALIZED (SELECT role, content, embedding "
                        "FROM messages WHERE session_id = :s AND embedding_model = :model "
                        f"AND {_OLDER_THAN_RECENT}) "
                        "SELECT role, content, 1 - (embedding <=> CAST(:v AS vector)) AS sim "
                        "FROM mine ORDER BY embedding <=> CAST(:v AS vector) LIMIT :k"
                    ),
                    {**bounds, "v": vector_literal(vector), "k": top_k},
                )
            ).all()
        hits = [r for r in rows if r.sim >= threshold]
        return Retrieved(
            snippets=[snippet(r.role, r.content) for r in hits],
            scores=[round(float(r.sim), 4) for r in hits],
            embedder=self._embedder.name,
        )
