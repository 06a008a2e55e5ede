"""Chart specs for ``<div class="chart" data-chart='...'>`` (drawn by shipyard.js with uPlot) from
metric histories, downsampled on the server so the browser draws at most ~1,000 points a series."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from shipyard.store import run_views as views
from shipyard.tracking.downsample import DEFAULT_LIMIT


def metric_chart(session: Any, key: str, runs: Sequence[tuple[str, str]], *, limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
    """The spec of one chart of metric ``key``: one series per (run id, label), each with its own steps.

    A series carries its own ``x`` when runs logged different steps; shipyard.js aligns them.
    """
    series = []
    points = 0
    for run_id, label in runs:
        xs, ys = views.metric_envelope(session, run_id, key, limit)
        if not xs:
            continue
        points += len(xs)
        series.append({"label": label, "x": xs, "y": ys})
    shared = series[0]["x"] if series and all(s["x"] == series[0]["x"] for s in series) else None
    if shared is not None:
        for s in series:
            del s["x"]
    return {"title": key, "xlabel": "step", "x": shared if shared is not None else [], "series": series,
            "points": points}


def as_attribute(spec: dict[str, Any]) -> str:
    """The JSON for a ``data-chart`` attribute (Jinja escapes it; NaN never appears: gaps are null)."""
    return json.dumps(spec, separators=(",", ":"), allow_nan=False)
