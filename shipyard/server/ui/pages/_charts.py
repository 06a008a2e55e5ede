"""Chart specs for ``<div class="chart" data-chart='...'>`` (drawn by shipyard.js with uPlot) from
metric histories, downsampled on the server so the browser draws at most ~1,000 points a series.

A long history's envelope is computed once and kept in the store until the history grows
(``run_views.kept_envelopes``): a page collects what it computed in ``computed`` and stores it with
``keep`` after its read transaction.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from shipyard.store import run_views as views
from shipyard.tracking.downsample import DEFAULT_LIMIT

log = logging.getLogger(__name__)


def metric_chart(session: Any, key: str, runs: Sequence[tuple[str, str]], *, limit: int = DEFAULT_LIMIT,
                 computed: list[views.Envelope] | None = None) -> dict[str, Any]:
    """The spec of one chart of metric ``key``: one series per (run id, label), each with its own steps.

    A series carries its own ``x`` when runs logged different steps; shipyard.js aligns them.
    Envelopes computed afresh are appended to ``computed`` (when given) for ``keep``.
    """
    envelopes, fresh = views.kept_envelopes(session, [run_id for run_id, _ in runs], key, limit)
    if computed is not None:
        computed.extend(fresh)
    series = []
    points = 0
    for run_id, label in runs:
        xs, ys = envelopes.get(run_id, ([], []))
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


def keep(store: Any, computed: Sequence[views.Envelope]) -> None:
    """Store the envelopes a page computed, for the next view of the same histories; a failed
    write (a busy or read-only database) costs only that and is logged."""
    if not computed:
        return
    try:
        with store.write() as session:
            views.keep_envelopes(session, computed)
    except SQLAlchemyError as exc:
        log.warning("chart envelopes not kept: %s", exc)


def as_attribute(spec: dict[str, Any]) -> str:
    """The JSON for a ``data-chart`` attribute (Jinja escapes it; NaN never appears: gaps are null)."""
    return json.dumps(spec, separators=(",", ":"), allow_nan=False)
