"""The light classifier's model: two binary logistic regressions over the sparse features
of `features.py` (needs company search? needs web search?), whose product gives the four
intents; trained in pure Python (`python -m activities.intent.train`) and shipped as
`model.json.gz` (a few hundred kB), so routing needs no ML dependency at all."""

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


# The two decisions the four intents are made of: does the message ask for companies
# from the directory, and does it need current information from the web? Learned apart,
# a cue for one (a provider noun, "right now") no longer has to be learned again for every
# way it combines with the other, and a "both" with an unusual current-info half still
# gets the web from what that half shares with plain web questions.
HEADS = ("company", "web")


def head_labels(intent: Intent) -> tuple[bool, bool]:
    return intent in ("company_search", "both"), intent in ("web_search", "both")


def intent_probabilities(p_company: float, p_web: float) -> list[float]:
    """The four intents' probabilities (INTENTS order) from the two independent ones."""
    by_intent = {
        "company_search": p_company * (1 - p_web),
        "web_search": (1 - p_company) * p_web,
        "both": p_company * p_web,
        "chat": (1 - p_company) * (1 - p_web),
    }
    return [by_intent[i] for i in INTENTS]


@dataclass
class Head:
    """One binary logistic regression over the shared features."""

    weights: dict[str, float]
    bias: float

    def probability(self, vec: dict[str, float]) -> float:
        score = self.bias + sum(self.weights.get(k, 0.0) * v for k, v in vec.items())
        return sigmoid(score)


@dataclass
class LinearModel:
    idf: dict[str, float]
    default_idf: float
    heads: dict[str, Head]
    digest: str = ""

    def vectorize(self, text: str) -> dict[str, float]:
        return vectorize(text, self.idf, self.default_idf)

    def needs(self, text: str) -> tuple[float, float]:
        """P(needs company search), P(needs web search)."""
        vec = self.vectorize(text)
        return self.heads["company"].probability(vec), self.heads["web"].probability(vec)

    def predict_proba(self, text: str) -> list[float]:
        return intent_probabilities(*self.needs(text))

    def to_json(self) -> dict[str, object]:
        return {
            "format": 2,
            "digest": self.digest,
            "heads": {
                name: {
                    "bias": round(head.bias, 5),
                    "weights": {
                        k: round(w, 4) for k, w in sorted(head.weights.items()) if round(w, 4)
                    },
                }
                for name, head in self.heads.items()
            },
            "default_idf": round(self.default_idf, 4),
            "idf": {k: round(v, 4) for k, v in sorted(self.idf.items())},
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
        if data.get("format") != 2 or tuple(data.get("heads", ())) != HEADS:
            raise ValueError(
                f"{path}: not a two-head model (format 2 with heads {HEADS}); "
                "rebuild it with `python -m activities.intent.train`"
            )
        return cls(
            idf=data["idf"],
            default_idf=data["default_idf"],
            heads={
                name: Head(weights=head["weights"], bias=head["bias"])
                for name, head in data["heads"].items()
            },
            digest=data["digest"],
        )


def sigmoid(score: float) -> float:
    if score >= 0:
        return 1.0 / (1.0 + math.exp(-score))
    e = math.exp(score)
    return e / (1.0 + e)


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


def _train_head(
    data: Sequence[tuple[dict[str, float], bool]], *, seed: int, epochs: int = EPOCHS
) -> Head:
    """Binary logistic regression, L2-regularised, by AdaGrad SGD with a fixed seed."""
    weights: dict[str, float] = {}
    grad_sq: dict[str, float] = {}
    bias, bias_sq = 0.0, 1e-8
    lam = L2 / len(data)
    order = list(range(len(data)))
    rng = random.Random(seed)
    for _ in range(epochs):
        rng.shuffle(order)
        for i in order:
            vec, label = data[i]
            score = bias + sum(weights.get(k, 0.0) * v for k, v in vec.items())
            error = sigmoid(score) - (1.0 if label else 0.0)
            bias_sq += error * error
            bias -= LEARNING_RATE * error / math.sqrt(bias_sq)
            for name, value in vec.items():
                w = weights.get(name, 0.0)
                g = error * value + lam * w
                sq = grad_sq[name] = grad_sq.get(name, 1e-8) + g * g
                weights[name] = w - LEARNING_RATE * g / math.sqrt(sq)
    return Head(weights=weights, bias=bias)


def train(examples: Sequence[Example], *, seed: int = 0, digest: str = "") -> LinearModel:
    """The two heads on the same features; the same examples always give the same model."""
    idf, default_idf = fit_idf([e.text for e in examples])
    vectors = [vectorize(e.text, idf, default_idf) for e in examples]
    labels = [head_labels(e.intent) for e in examples]
    heads = {
        name: _train_head(
            [(vec, label[h]) for vec, label in zip(vectors, labels, strict=True)], seed=seed + h
        )
        for h, name in enumerate(HEADS)
    }
    return LinearModel(idf=idf, default_idf=default_idf, heads=heads, digest=digest)
