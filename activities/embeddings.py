"""Text embeddings for vector search: an OpenAI-compatible `/v1/embeddings` endpoint when
one is configured, else none (search is then lexical only, and says so)."""

from __future__ import annotations

from typing import Protocol

from openai import AsyncOpenAI

from shared.config import Settings
from shared.db.models import EMBEDDING_DIMENSIONS

BATCH = 64


class Embedder(Protocol):
    name: str

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


class OpenAIEmbedder:
    def __init__(self, client: AsyncOpenAI, model: str) -> None:
        self._client = client
        self._model = model
        self.name = f"openai:{model}"

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            resp = await self._client.embeddings.create(
                model=self._model,
                input=texts[start : start + BATCH],
                dimensions=EMBEDDING_DIMENSIONS,
            )
            vectors += [item.embedding for item in sorted(resp.data, key=lambda d: d.index)]
        return vectors


def build_embedder(client: AsyncOpenAI, settings: Settings) -> Embedder | None:
    """Embeddings need a real OpenAI-compatible embeddings API (a key is the signal);
    the embedded chat model serves none."""
    if settings.openai_api_key is None:
        return None
    return OpenAIEmbedder(client, settings.openai_embedding_model)


def vector_literal(vector: list[float]) -> str:
    """pgvector's text form, bound as a parameter and cast with ::vector."""
    return "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
