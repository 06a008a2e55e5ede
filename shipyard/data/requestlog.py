"""The request log, read: the one reader that rollout analysis, the monitor's windows and the
gates' replay share (it sits in ``data`` so that all three, above it, can use it).

The gateway (``shipyard.serving.requestlog``) writes, in a local folder or behind any fsspec URL
(``s3://bucket/prefix``)::

    <requests>/model=<name>/date=YYYY-MM-DD/hour=HH/part-<pid>-<uuid>.parquet
    <feedback>/date=YYYY-MM-DD/part-<pid>-<uuid>.parquet        (request_id, ts, label)

Reading is a polars lazy scan per part file, concatenated (parts of one model may carry different
feature columns, so the union is diagonal). The hive partitions are pruned before any file is
opened: only the ``model=`` folder asked for, only the ``date=``/``hour=`` partitions that can hold
rows in the time window. The time filter is pushed down into each scan (Parquet row-group
statistics). Parts are immutable once written, so a ``RequestReader`` may keep the rows of parts it
has read (the rollout controller reads the same growing window every tick).

One feedback rule for every reader: a request id's label is the one with the latest ``ts`` (a label
posted twice counts once; a correction replaces the first label). File order says nothing: part
names carry a random uuid.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import polars as pl

# The request log's cross-room contract (the writer is shipyard.serving.requestlog/logtable).
REQUEST_COLUMNS = ("request_id", "ts", "model", "version", "route", "status", "latency_ms", "error",
                   "prediction", "score")
FEATURE_PREFIX = "feature."
FEEDBACK_COLUMNS = ("request_id", "ts", "label")
PART_GLOB = "part-*.parquet"
HOUR_S = 3600


class FolderLike(Protocol):
    """What the reader needs of a ``shipyard.serving.logstore.LogFolder`` (an fsspec folder)."""

    url: str
    fs: Any
    path: str


Location = str | os.PathLike[str] | FolderLike


@dataclass(frozen=True)
class _Root:
    """A resolved location: the fsspec filesystem (None: the local disk) and its path."""

    fs: Any
    path: str

    def glob(self, pattern: str) -> list[str]:
        if self.fs is None:
            base = Path(self.path)
            return [str(p) for p in sorted(base.glob(pattern))] if base.is_dir() else []
        self.fs.invalidate_cache(self.path)  # other processes write here: never a cached listing
        found = self.fs.glob(f"{self.path}/{pattern}")
        return sorted(p for p in found if not PurePosixPath(p).name.startswith("."))

    def relative(self, path: str) -> PurePosixPath:
        base = Path(self.path).as_posix() if self.fs is None else self.path
        full = Path(path).as_posix() if self.fs is None else path
        return PurePosixPath(full).relative_to(base)

    def scan(self, path: str) -> pl.LazyFrame:
        import polars as pl

        if self.fs is None:
            return pl.scan_parquet(path, hive_partitioning=False)
        # fsspec (not polars' own object store client) so every fsspec URL and its configuration
        # (endpoint, credentials) works as it does for the writer
        return pl.scan_parquet(BytesIO(self.fs.cat_file(path)), hive_partitioning=False)


def _root(location: Location) -> _Root:
    if not isinstance(location, str | os.PathLike):
        return _Root(location.fs, str(location.path))
    text = os.fspath(location)
    if "://" not in text or text.startswith("file://"):
        return _Root(None, str(Path(text.removeprefix("file://"))))
    import fsspec

    fs, path = fsspec.core.url_to_fs(text)
    return _Root(fs, path.rstrip("/"))


def _hive(relative: PurePosixPath) -> dict[str, str]:
    """The ``key=value`` parts of a path (its hive partition values)."""
    return dict(part.split("=", 1) for part in relative.parts[:-1] if "=" in part)


def _hour_start(values: dict[str, str]) -> float | None:
    try:
        stamp = datetime.strptime(f"{values['date']} {values.get('hour', '00')}", "%Y-%m-%d %H")
    except (KeyError, ValueError):
        return None
    return stamp.replace(tzinfo=UTC).timestamp()


def _in_window(values: dict[str, str], since: float | None, until: float | None, span: float) -> bool:
    """Can the partition (an hour, or a day for feedback) hold rows with since <= ts < until?"""
    start = _hour_start(values)
    if start is None:
        return True  # not our layout: read it rather than lose rows
    return (since is None or start + span > since) and (until is None or start < until)


def logged_models(location: Location) -> list[str]:
    """The models that have a folder in the request log."""
    root = _root(location)
    if root.fs is None:
        base = Path(root.path)
        names = [p.name for p in base.glob("model=*") if p.is_dir()] if base.is_dir() else []
    else:
        root.fs.invalidate_cache(root.path)
        found = root.fs.glob(f"{root.path}/model=*", detail=True)
        names = [PurePosixPath(p).name for p, info in found.items() if info.get("type") == "directory"]
    return sorted(name.removeprefix("model=") for name in names)


def request_parts(location: Location, model: str, since: float | None = None,
                  until: float | None = None) -> list[str]:
    """The part files of ``model`` whose hour partition can hold rows with since <= ts < until."""
    root = _root(location)
    model_dir = f"model={model}"
    # one listing of the model's folder (one request on an object store, not one per hour)
    return [p for p in root.glob(f"{model_dir}/date=*/hour=*/{PART_GLOB}")
            if _in_window(_hive(root.relative(p)), since, until, HOUR_S)]


def _time_filter(since: float | None, until: float | None) -> pl.Expr | None:
    import polars as pl

    cond = None
    if since is not None:
        cond = pl.col("ts") >= datetime.fromtimestamp(since, UTC)
    if until is not None:
        upper = pl.col("ts") < datetime.fromtimestamp(until, UTC)
        cond = upper if cond is None else cond & upper
    return cond


class RequestReader:
    """Reads the request log; keeps the rows of every (immutable) part it read while still asked for."""

    def __init__(self, location: Location, *, cache: bool = False) -> None:
        self.location = location
        self._root = _root(location)
        self._cache: dict[str, pl.DataFrame] | None = {} if cache else None

    def scan(self, model: str, since: float | None = None, until: float | None = None) -> pl.LazyFrame | None:
        """A lazy frame of ``model``'s rows with since <= ts < until (None: no part in the window)."""
        import polars as pl

        parts = request_parts(self.location, model, since, until)
        if not parts:
            return None
        frames = [self._part(p) for p in parts]
        if self._cache is not None:
            for stale in set(self._cache) - set(parts):
                del self._cache[stale]
        lazy = pl.concat(frames, how="diagonal_relaxed")
        cond = _time_filter(since, until)
        return lazy if cond is None else lazy.filter(cond)

    def _part(self, path: str) -> pl.LazyFrame:
        if self._cache is None:
            return self._root.scan(path)
        if path not in self._cache:
            self._cache[path] = self._root.scan(path).collect()
        return self._cache[path].lazy()

    def read(self, model: str, since: float | None = None, until: float | None = None,
             columns: list[str] | None = None) -> pl.DataFrame:
        """``model``'s rows with since <= ts < until, sorted by time; ``columns`` (when given) are
        always there, typed as the contract says, even with no rows."""
        import polars as pl

        lazy = self.scan(model, since, until)
        if lazy is None:
            return empty_requests(columns) if columns else pl.DataFrame()
        if columns:
            have = lazy.collect_schema().names()
            empty = empty_requests(columns)
            lazy = lazy.with_columns([pl.lit(None, empty.schema[c]).alias(c) for c in columns if c not in have])
            lazy = lazy.select(columns)
        return _normal_prediction(lazy.collect()).sort("ts", maintain_order=True)


def _normal_prediction(frame: pl.DataFrame) -> pl.DataFrame:
    """Predictions are str (class labels) or float64 (numbers): integers from older parts become float."""
    import polars as pl

    if "prediction" in frame.columns and frame.schema["prediction"] not in (pl.String, pl.Float64):
        if frame.schema["prediction"] == pl.Null:
            return frame.with_columns(pl.col("prediction").cast(pl.String))
        return frame.with_columns(pl.col("prediction").cast(pl.Float64))
    return frame


def answered(frame: pl.DataFrame) -> pl.DataFrame:
    """The rows the model answered (``status`` ok); all rows of a frame without a status."""
    import polars as pl

    return frame.filter(pl.col("status") == "ok") if "status" in frame.columns else frame


def features(frame: pl.DataFrame) -> pl.DataFrame:
    """The model's inputs in request-log rows: the ``feature.<name>`` columns, named ``<name>``."""
    cols = [c for c in frame.columns if c.startswith(FEATURE_PREFIX)]
    return frame.select(cols).rename({c: c.removeprefix(FEATURE_PREFIX) for c in cols})


def empty_requests(columns: list[str] | tuple[str, ...] = REQUEST_COLUMNS) -> pl.DataFrame:
    """No rows, with the contract's column types."""
    import polars as pl

    types: dict[str, Any] = {"request_id": pl.String, "ts": pl.Datetime("us", "UTC"), "model": pl.String,
                             "version": pl.Int64, "route": pl.String, "status": pl.String,
                             "latency_ms": pl.Float64, "error": pl.String, "prediction": pl.String,
                             "score": pl.Float64}
    return pl.DataFrame(schema={c: types.get(c, pl.Float64) for c in columns})


def read_requests(location: Location, model: str, since: float | None = None, until: float | None = None,
                  columns: list[str] | None = None) -> pl.DataFrame:
    """``model``'s request-log rows with since <= ts < until, sorted by time (see RequestReader.read)."""
    return RequestReader(location).read(model, since, until, columns)


def read_files(paths: list[str | os.PathLike[str]]) -> pl.DataFrame:
    """Rows of request-log part files given by path (a replay set), one frame."""
    import polars as pl

    frames = [pl.scan_parquet(os.fspath(p), hive_partitioning=False) for p in paths]
    return _normal_prediction(pl.concat(frames, how="diagonal_relaxed").collect())


def latest_labels(feedback: pl.DataFrame) -> pl.DataFrame:
    """The feedback rule: one label per request id, the one posted last (by ``ts``); ``label`` as str."""
    import polars as pl

    if feedback.height == 0:
        return pl.DataFrame(schema={"request_id": pl.String, "label": pl.String})
    order = feedback.sort("ts", maintain_order=True) if "ts" in feedback.columns else feedback
    return (order.unique("request_id", keep="last", maintain_order=True)
            .select(pl.col("request_id").cast(pl.String), pl.col("label").cast(pl.String)))


def read_labels(location: Location, since: float | None = None) -> pl.DataFrame:
    """Feedback labels of the days since ``since``, one per request id (``latest_labels``):
    columns ``request_id`` and ``label`` (str; a regression reader casts it back to float)."""
    import polars as pl

    root = _root(location)
    day = 24 * HOUR_S
    parts = [p for p in root.glob(f"date=*/{PART_GLOB}") if _in_window(_hive(root.relative(p)), since, None, day)]
    if not parts:
        return latest_labels(pl.DataFrame())
    # labels are floats for numbers and str otherwise: cast each part before the union
    frames = [root.scan(p).select(pl.col("request_id").cast(pl.String), pl.col("ts"),
                                  pl.col("label").cast(pl.String)) for p in parts]
    # pruned by day partition only: a label's ts is when it was posted, always after its request
    return latest_labels(pl.concat(frames, how="vertical_relaxed").collect())
