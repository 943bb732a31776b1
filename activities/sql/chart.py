"""A query result as a chart (PNG), when the question asks for a trend or a comparison:
matplotlib's object API (no pyplot state, so charts render in threads side by side), the
`data` extra."""

from __future__ import annotations

import importlib.util
import io
from typing import Any, Literal

from pydantic import BaseModel

MAX_POINTS = 60  # more bars than this read as noise; a line takes the first ones too


class ChartSpec(BaseModel):
    kind: Literal["bar", "line"]
    x: str
    y: str
    title: str = ""


class ChartRefused(ValueError):
    """The result cannot be drawn as asked; the message says why."""


def charts_available() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ChartRefused(f"{value!r} is not a number")
    return float(value)


def render_chart(columns: list[str], rows: list[list[Any]], spec: ChartSpec) -> bytes:
    """The PNG of `spec` over the result; raises ChartRefused."""
    if spec.x not in columns or spec.y not in columns:
        raise ChartRefused(f"the result has no column {spec.x!r} or {spec.y!r}")
    if not rows:
        raise ChartRefused("the result has no rows to draw")
    from matplotlib.figure import Figure  # the `data` extra, imported when drawing

    xi, yi = columns.index(spec.x), columns.index(spec.y)
    points = rows[:MAX_POINTS]
    xs = [str(r[xi]) for r in points]
    ys = [_number(r[yi]) for r in points]
    fig = Figure(figsize=(7.5, 4), dpi=110)
    ax = fig.subplots()
    if spec.kind == "line":
        ax.plot(xs, ys, marker="o", color="#2563eb")
    else:
        ax.bar(xs, ys, color="#2563eb")
    ax.set_xlabel(spec.x)
    ax.set_ylabel(spec.y)
    ax.set_title(spec.title or f"{spec.y} by {spec.x}")
    ax.grid(axis="y", alpha=0.3)
    if len(xs) > 8 or max(len(x) for x in xs) > 8:
        ax.tick_params(axis="x", labelrotation=45)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()
