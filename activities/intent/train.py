"""Rebuild the light classifier's shipped model from examples.jsonl:

    python -m activities.intent.train

Deterministic (fixed seed, rounded weights, gzip without a timestamp), so the same
examples give the same bytes. A test fails when examples.jsonl or the feature code changed
and the model was not rebuilt."""

from __future__ import annotations

import sys
import time

from activities.intent import linear


def main() -> int:
    started = time.perf_counter()
    examples = linear.load_examples()
    model = linear.train(examples, digest=linear.examples_digest())
    model.save()
    took = time.perf_counter() - started
    size = linear.MODEL_PATH.stat().st_size
    sys.stderr.write(
        f"trained on {len(examples)} examples in {took:.1f}s: {len(model.idf)} features, "
        f"{linear.MODEL_PATH.name} {size / 1024:.0f} kB\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
