"""The embedders: the local MiniLM (the `embed` extra, part of `local` and `dev`) gives
normalised 384-d vectors that rank by meaning, and EMBEDDER chooses as documented."""

from __future__ import annotations

import math

import pytest
from openai import AsyncOpenAI

from activities import embeddings
from activities.embeddings import (
    EmbedderUnavailable,
    LocalEmbedder,
    OpenAIEmbedder,
    build_embedder,
    choose_embedder,
    embedder_name,
    local_available,
)
from loadtest.fakes import FakeOpenAIServer
from shared.config import load_settings
from shared.db.models import EMBEDDING_DIMENSIONS
from shared.pii import PiiRedactor


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    embedder = LocalEmbedder()
    embedder.load()
    return embedder


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def test_the_test_install_has_the_local_embedder() -> None:
    """`pip install -e '.[dev]'` brings `local`, which brings `embed`: the default run of
    `chatbot dev` embeds locally, so the tests must too."""
    assert local_available()


async def test_local_vectors_are_normalised_and_rank_by_meaning(local: LocalEmbedder) -> None:
    question = "What is my project codename?"
    fact = "Remember this: my project codename is BLUEHERON."
    fillers = [f"filler note {n} about lunch plans and weather" for n in range(3)]
    vectors = await local.embed([question, fact, *fillers, ""])
    assert all(len(v) == EMBEDDING_DIMENSIONS for v in vectors)
    assert all(math.isclose(math.sqrt(_cosine(v, v)), 1.0, abs_tol=1e-4) for v in vectors)
    relevant = _cosine(vectors[0], vectors[1])
    unrelated = max(_cosine(vectors[0], v) for v in vectors[2:5])
    # The default RETRIEVAL_THRESHOLD for this embedder sits between the two.
    assert relevant >= local.relevance_threshold > unrelated


async def test_local_batches_beyond_one_request(local: LocalEmbedder) -> None:
    texts = [f"company number {n} makes widgets" for n in range(embeddings.BATCH + 5)]
    vectors = await local.embed(texts)
    assert len(vectors) == len(texts)
    assert vectors[-1] == pytest.approx((await local.embed([texts[-1]]))[0], abs=1e-5)


def test_embedder_choice() -> None:
    keyed = {"openai_api_key": "sk-x", "openai_base_url": "http://127.0.0.1:9/v1"}
    assert choose_embedder(load_settings()) == "local"  # auto, installed
    assert choose_embedder(load_settings(embedder="none", **keyed)) is None
    assert choose_embedder(load_settings(embedder="openai", **keyed)) == "openai"
    assert embedder_name(load_settings()) == LocalEmbedder.name
    assert embedder_name(load_settings(embedder="openai", **keyed)) == (
        "openai:text-embedding-3-small"
    )
    assert isinstance(build_embedder(None, load_settings()), LocalEmbedder)
    with pytest.raises(EmbedderUnavailable, match="OPENAI_API_KEY"):
        choose_embedder(load_settings(embedder="openai"))


def test_without_the_embed_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with only the base install: auto falls back to OpenAI's with a key, to
    none without; asking for local says what to install."""
    monkeypatch.setattr(embeddings, "LOCAL_MODULES", ("a_module_nobody_installed",))
    keyed = {"openai_api_key": "sk-x", "openai_base_url": "http://127.0.0.1:9/v1"}
    assert choose_embedder(load_settings()) is None
    assert choose_embedder(load_settings(**keyed)) == "openai"
    with pytest.raises(EmbedderUnavailable, match=r"embed\]"):
        choose_embedder(load_settings(embedder="local"))
    assert embedder_name(load_settings(embedder="local")) is None


def test_openai_embedder_is_named_by_its_model() -> None:
    embedder = OpenAIEmbedder(AsyncOpenAI(api_key="x", base_url="http://127.0.0.1:9"), "m")
    assert embedder.name == "openai:m"


async def test_openai_embedder_sends_placeholders_with_prompt_redaction(
    llm: FakeOpenAIServer,
) -> None:
    client = AsyncOpenAI(api_key="test-key", base_url=llm.url, max_retries=0)
    try:
        plain = OpenAIEmbedder(client, "m")
        redacting = OpenAIEmbedder(client, "m", pii=PiiRedactor())
        text = "write to ana.lopez@example.com about card 4111 1111 1111 1111"
        await plain.embed([text])
        await redacting.embed([text])
    finally:
        await client.close()
    sent = [r["body"]["input"] for r in llm.requests if r["endpoint"] == "embeddings"]
    assert sent[0] == [text]
    assert sent[1] == ["write to [EMAIL_1] about card [CARD_1]"]
