"""Tumbling windows over the request log (contract 4), by time or by request count.

The rows come from ``shipyard.data.requestlog`` (the one reader of the request log, shared with
rollout analysis and gate replay): only the hours at or after the cursor are opened, and feedback
labels follow its one rule (the latest label per request id). Time windows are aligned to multiples
of their size since the epoch and close when ``now`` passes their end; a run of windows without enough traffic is kept
as one ``empty`` window (no verdict). Count windows close every ``rows`` requests; the tail waits
for more. The cursor is the end of the model's last stored window, so each request is judged once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shipyard.data.requestlog import FolderLike, logged_models, read_labels, read_requests

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Window", "count_windows", "logged_models", "read_feedback", "read_log", "time_windows"]


@dataclass
class Window:
    start: float
    end: float
    kind: str  # "time" or "rows"
    frame: pl.DataFrame


def read_log(root: Path | FolderLike | str, model: str, since: float | None = None,
             until: float | None = None) -> pl.DataFrame:
    """Rows of ``model`` with ``since <= ts < until`` (seconds since the epoch), sorted by time,
    with an extra ``t`` column (float seconds)."""
    import polars as pl

    frame = read_requests(root, model, since, until)
    if frame.height == 0 and "ts" not in frame.columns:
        return frame
    return frame.with_columns((pl.col("ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("t"))


def read_feedback(root: Path | FolderLike | str, since: float | None = None) -> pl.DataFrame | None:
    """The feedback labels (one per request id: the latest posted), or None when there is none."""
    labels = read_labels(root, since)
    return labels if labels.height else None


def time_windows(frame: pl.DataFrame, *, size_s: float, cursor: float | None, now: float,
                 min_rows: int) -> list[Window]:
    """Closed time windows after ``cursor``; consecutive windows with too little traffic merge into
    one empty window."""
    import polars as pl

    if frame.height == 0 and cursor is None:
        return []
    first = cursor if cursor is not None else math.floor(float(frame["t"].min()) / size_s) * size_s
    last_end = math.floor(now / size_s) * size_s
    if last_end <= first:
        return []
    out: list[Window] = []
    bucket = ((pl.col("t") - first) / size_s).floor().cast(pl.Int64)
    groups = {}
    if frame.height:
        closed = frame.filter((pl.col("t") >= first) & (pl.col("t") < last_end)).with_columns(bucket.alias("_w"))
        groups = {int(k[0]): g.drop("_w") for k, g in closed.group_by("_w", maintain_order=True)}
    count = round((last_end - first) / size_s)
    empty_from: float | None = None
    empty_rows: list[pl.DataFrame] = []
    for i in range(count):
        start, end = first + i * size_s, first + (i + 1) * size_s
        part = groups.get(i)
        answered = 0 if part is None else (part.filter(pl.col("status") == "ok").height if "status" in part.columns else part.height)
        if answered < min_rows:
            if empty_from is None:
                empty_from = start
            if part is not None:
                empty_rows.append(part)
            continue
        if empty_from is not None:
            out.append(Window(empty_from, start, "time", _concat(empty_rows, frame)))
            empty_from, empty_rows = None, []
        out.append(Window(start, end, "time", part))  # type: ignore[arg-type]
    if empty_from is not None:
        out.append(Window(empty_from, last_end, "time", _concat(empty_rows, frame)))
    return out


def _concat(parts: list[pl.DataFrame], like: pl.DataFrame) -> pl.DataFrame:
    import polars as pl

    return pl.concat(parts, how="diagonal_relaxed") if parts else like.clear()


def count_windows(frame: pl.DataFrame, *, rows: int, cursor: float | None) -> list[Window]:
    """Full windows of ``rows`` requests after ``cursor``; the rest waits for more traffic."""
    import polars as pl

    if cursor is not None and frame.height:
        frame = frame.filter(pl.col("t") > cursor)
    out = []
    for i in range(frame.height // rows):
        part = frame.slice(i * rows, rows)
        out.append(Window(float(part["t"][0]), float(part["t"][-1]), "rows", part))
    return out
