"""Tumbling windows over the request log (contract 4), by time or by request count.

Files live under ``<requests>/model=<name>/date=YYYY-MM-DD/hour=HH/part-*.parquet``, in a local
folder or behind an fsspec URL (``s3://bucket/prefix``); only the hours at or after the cursor are
opened. Time windows are aligned to multiples of their size since
the epoch and close when ``now`` passes their end; a run of windows without enough traffic is kept
as one ``empty`` window (no verdict). Count windows close every ``rows`` requests; the tail waits
for more. The cursor is the end of the model's last stored window, so each request is judged once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

from shipyard.serving.logstore import LogFolder

if TYPE_CHECKING:
    import polars as pl


@dataclass
class Window:
    start: float
    end: float
    kind: str  # "time" or "rows"
    frame: pl.DataFrame


def _hour_of(path: PurePath) -> float | None:
    try:
        date = next(p for p in path.parts if p.startswith("date=")).removeprefix("date=")
        hour = next(p for p in path.parts if p.startswith("hour=")).removeprefix("hour=")
        return datetime.strptime(f"{date} {hour}", "%Y-%m-%d %H").replace(tzinfo=UTC).timestamp()
    except (StopIteration, ValueError):
        return None


def log_files(root: Path | LogFolder | str, model: str, since: float | None = None) -> list[str]:
    """The model's request-log files whose hour can hold rows at or after ``since``."""
    folder = LogFolder.of(root) / f"model={model}"
    files = []
    for path in folder.files("date=*/hour=*/*.parquet"):
        hour = _hour_of(folder.relative(path))
        if since is None or hour is None or hour + 3600 > since:
            files.append(path)
    return files


def logged_models(root: Path | LogFolder | str) -> list[str]:
    """The models that have a folder in the request log."""
    return [name.removeprefix("model=") for name in LogFolder.of(root).folders("model=*")]


def read_log(root: Path | LogFolder | str, model: str, since: float | None = None,
             until: float | None = None) -> pl.DataFrame:
    """Rows of ``model`` with ``since <= ts < until`` (seconds since the epoch), sorted by time,
    with an extra ``t`` column (float seconds)."""
    import polars as pl

    log = LogFolder.of(root)
    files = log_files(log, model, since)
    if not files:
        return pl.DataFrame()
    frame = pl.concat([pl.read_parquet(log.source(f), hive_partitioning=False) for f in files],
                      how="diagonal_relaxed")
    frame = frame.with_columns((pl.col("ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("t"))
    if since is not None:
        frame = frame.filter(pl.col("t") >= since)
    if until is not None:
        frame = frame.filter(pl.col("t") < until)
    return frame.sort("t")


def read_feedback(root: Path | LogFolder | str) -> pl.DataFrame | None:
    """Every feedback label written so far, or None when there is none."""
    import polars as pl

    log = LogFolder.of(root)
    files = log.files("date=*/*.parquet")
    if not files:
        return None
    frame = pl.concat([pl.read_parquet(log.source(f), hive_partitioning=False) for f in files],
                      how="diagonal_relaxed")
    return frame.with_columns(pl.col("request_id").cast(pl.String))


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
