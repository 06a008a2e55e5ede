"""Parallel coordinates drawn by the server as a small SVG: one vertical axis per chosen column, one
polyline per run. A column whose values all read as numbers gets a linear scale; any other column
puts its distinct values evenly along the axis in sorted order. A run missing a value skips that
axis (its line breaks there), so no value is invented."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

PALETTE = ("#1f5fbf", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d", "#364fc7", "#a61e4d")
WIDTH, HEIGHT, TOP, BOTTOM, SIDE = 900, 320, 30, 40, 60


def _as_number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _scale(values: Sequence[Any]) -> tuple[Any, list[str]]:
    """A function value -> 0..1 (bottom to top) and the axis' tick labels (bottom, top)."""
    present = [v for v in values if v is not None]
    numbers = [_as_number(v) for v in present]
    if present and all(n is not None for n in numbers):
        low, high = min(numbers), max(numbers)  # type: ignore[type-var]
        span = high - low  # type: ignore[operator]

        def numeric(v: Any) -> float | None:
            n = _as_number(v)
            return None if n is None else (0.5 if span == 0 else (n - low) / span)  # type: ignore[operator]

        return numeric, [f"{low:.4g}", f"{high:.4g}"]
    levels = sorted({str(v) for v in present})
    place = {level: (0.5 if len(levels) == 1 else i / (len(levels) - 1)) for i, level in enumerate(levels)}
    return (lambda v: None if v is None else place.get(str(v))), ([levels[0], levels[-1]] if levels else ["", ""])


def parallel(axes: Sequence[str], runs: Sequence[tuple[str, str]],
             values: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The SVG's geometry: axes (x, label, ticks) and one line per run (label, colour, segments).

    ``values`` maps an axis name to run id -> value; ``runs`` is (run id, label) in drawing order.
    """
    if not axes:
        return {"width": WIDTH, "height": HEIGHT, "axes": [], "lines": []}
    step = (WIDTH - 2 * SIDE) / max(1, len(axes) - 1)
    drawn_axes, scales = [], []
    for i, name in enumerate(axes):
        scale, ticks = _scale([values.get(name, {}).get(rid) for rid, _ in runs])
        scales.append(scale)
        drawn_axes.append({"x": SIDE + i * step if len(axes) > 1 else WIDTH / 2, "label": name,
                           "low": ticks[0], "high": ticks[1]})
    lines = []
    for n, (rid, label) in enumerate(runs):
        points = []
        for axis, scale in zip(drawn_axes, scales, strict=True):
            where = scale(values.get(axis["label"], {}).get(rid))
            points.append(None if where is None else (round(axis["x"], 1), round(TOP + (1 - where) * (HEIGHT - TOP - BOTTOM), 1)))
        segments, current = [], []
        for point in points:
            if point is None:
                if len(current) > 1:
                    segments.append(current)
                current = []
            else:
                current.append(point)
        if len(current) > 1:
            segments.append(current)
        dots = [p for p in points if p is not None]
        lines.append({"run_id": rid, "label": label, "color": PALETTE[n % len(PALETTE)],
                      "segments": [" ".join(f"{x},{y}" for x, y in seg) for seg in segments], "dots": dots})
    return {"width": WIDTH, "height": HEIGHT, "top": TOP, "bottom": HEIGHT - BOTTOM, "axes": drawn_axes,
            "lines": lines}
