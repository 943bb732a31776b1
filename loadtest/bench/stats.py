"""Percentiles and summaries of latency samples (exact, from every sample)."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0-100) with linear interpolation between closest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> dict[str, float | None]:
    """n, mean, p50, p95, p99 and max of `values` (None where there are no samples)."""
    result: dict[str, float | None] = {f"p{q}": percentile(values, q) for q in PERCENTILES}
    result["n"] = len(values)
    result["mean"] = sum(values) / len(values) if values else None
    result["max"] = max(values) if values else None
    return result
