"""The light classifier's model: a multinomial logistic regression over the sparse features
of `features.py`, trained in pure Python (`python -m activities.intent.train`) and shipped
as `model.json.gz` (a few hundred kB), so routing needs no ML dependency at all."""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from activities.intent import features
from shared.models import Intent

INTENTS: tuple[Intent, ...] = ("company_search", "web_search", "both", "chat")
HERE = Path(__file__).parent
EXAMPLES_PATH = HERE / "examples.jsonl"
MODEL_PATH = HERE / "model.json.gz"

# How much each feature group counts after its own normalisation (tuned by
# cross-validation on examples.jsonl, never on eval.jsonl).
GROUP_WEIGHTS = {"w": 1.0, "c": 1.0, "l": 1.0}
L2 = 1.0 / 16  # a light touch: the few epochs of AdaGrad are most of the regularisation
EPOCHS = 10
LEARNING_RATE = 0.05


@dataclass(frozen=True)
class Example:
    text: str
    intent: Intent


def load_examples(path: Path = EXAMPLES_PATH) -> list[Example]:
    out: list[Example] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            if row["intent"] not in INTENTS:
                raise ValueError(f"{path}: unknown intent {row['intent']!r}")
            out.append(Example(row["text"], row["intent"]))
    return out


def examples_digest(path: Path = EXAMPLES_PATH) -> str:
    """What the shipped model was trained from: examples and feature code version."""
    digest = hashlib.sha256(path.read_bytes())
    digest.update(f"features-v{features.FEATURE_VERSION}".encode())
    return digest.hexdigest()


@dataclass
class LinearModel:
    idf: dict[str, float]
    default_idf: float
    weights: dict[str, list[float]]
    bias: list[float]
    digest: str = ""
    classes: tuple[Intent, ...] = INTENTS

    def vectorize(self, text: str) -> dict[str, float]:
        return vectorize(text, self.idf, self.default_idf)

    def predict_proba(self, text: str) -> list[float]:
        scores = list(self.bias)
        for name, value in self.vectorize(text).items():
            row = self.weights.get(name)
            if row is not None:
                for k in range(len(scores)):
                    scores[k] += row[k] * value
        return softmax(scores)

    def to_json(self) -> dict[str, object]:
        return {
            "format": 1,
            "digest": self.digest,
            "classes": list(self.classes),
            "default_idf": round(self.default_idf, 4),
            "idf": {k: round(v, 4) for k, v in sorted(self.idf.items())},
            "bias": [round(b, 5) for b in self.bias],
            "weights": {k: [round(x, 4) for x in w] for k, w in sorted(self.weights.items())},
        }

    def save(self, path: Path = MODEL_PATH) -> None:
        body = json.dumps(self.to_json(), separators=(",", ":")).encode()
        # mtime=0: the same model gives the same bytes, so a retrain without changes
        # leaves git clean.
        with gzip.GzipFile(path, "wb", mtime=0) as out:
            out.write(body)

    @classmethod
    def load(cls, path: Path = MODEL_PATH) -> LinearModel:
        with gzip.open(path, "rb") as src:
            data = json.loads(src.read())
        if tuple(data["classes"]) != INTENTS:
            raise ValueError(f"{path}: classes {data['classes']} do not match {INTENTS}")
        return cls(
            idf=data["idf"],
            default_idf=data["default_idf"],
            weights=data["weights"],
            bias=data["bias"],
            digest=data["digest"],
        )


def softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def vectorize(text: str, idf: dict[str, float], default_idf: float) -> dict[str, float]:
    """Words and char n-grams: tf-idf, each group L2-normalised; lexicon features as is."""
    groups = features.extract(text)
    vec: dict[str, float] = {}
    for name in ("w", "c"):
        weighted = {k: v * idf.get(k, default_idf) for k, v in groups[name].items()}
        for k, v in features.l2(weighted).items():
            vec[k] = v * GROUP_WEIGHTS[name]
    for k, v in groups["l"].items():
        vec[k] = v * GROUP_WEIGHTS["l"]
    return vec


def fit_idf(texts: Sequence[str]) -> tuple[dict[str, float], float]:
    df: dict[str, int] = {}
    for text in texts:
        groups = features.extract(text)
        for name in ("w", "c"):
            for k in groups[name]:
                df[k] = df.get(k, 0) + 1
    n = len(texts)
    idf = {k: math.log((1 + n) / (1 + d)) + 1 for k, d in df.items()}
    return idf, math.log(1 + n) + 1


def train(examples: Sequence[Example], *, seed: int = 0, digest: str = "") -> LinearModel:
    """Multinomial logistic regression, L2-regularised, by AdaGrad SGD with a fixed seed:
    the same examples always give the same model."""
    idf, default_idf = fit_idf([e.text for e in examples])
    data = [(vectorize(e.text, idf, default_idf), INTENTS.index(e.intent)) for e in examples]
    k = len(INTENTS)
    weights: dict[str, list[float]] = {}
    grad_sq: dict[str, list[float]] = {}
    bias = [0.0] * k
    bias_sq = [1e-8] * k
    lam = L2 / len(data)
    order = list(range(len(data)))
    rng = random.Random(seed)
    for _ in range(EPOCHS):
        rng.shuffle(order)
        for i in order:
            vec, label = data[i]
            scores = list(bias)
            rows = []
            for name, value in vec.items():
                row = weights.get(name)
                if row is None:
                    row = weights[name] = [0.0] * k
                    grad_sq[name] = [1e-8] * k
                rows.append((name, value, row))
                for c in range(k):
                    scores[c] += row[c] * value
            probs = softmax(scores)
            errors = [probs[c] - (1.0 if c == label else 0.0) for c in range(k)]
            for c in range(k):
                bias_sq[c] += errors[c] * errors[c]
                bias[c] -= LEARNING_RATE * errors[c] / math.sqrt(bias_sq[c])
            for name, value, row in rows:
                sq = grad_sq[name]
                for c in range(k):
                    g = errors[c] * value + lam * row[c]
                    sq[c] += g * g
                    row[c] -= LEARNING_RATE * g / math.sqrt(sq[c])
    return LinearModel(idf=idf, default_idf=default_idf, weights=weights, bias=bias, digest=digest)
