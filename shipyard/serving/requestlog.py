"""The request log: every prediction's features, output, version, route and latency, as Parquet.

The request path only appends a tuple to a bounded deque (no I/O, no lock); a background thread
drains it every ``flush_interval`` seconds and writes one file per model and hour::

    <root>/model=<name>/date=YYYY-MM-DD/hour=HH/part-<pid>-<uuid>.parquet

with the columns of the cross-room contract: ``request_id`` (str), ``ts`` (timestamp[us, UTC]),
``model`` (str), ``version`` (int64), ``route`` (str), ``status`` (str: ok, error), ``latency_ms``
(float64), ``error`` (str, nullable), ``feature.<name>`` (native dtype), ``prediction`` (str for
class labels, float64 for regression), ``score`` (float64, nullable: the top class probability).
A request of n > 1 rows logs n rows with ids ``<request id>/<row>``. When the queue is full the
entry is dropped and counted, never blocking a request. The root is a local folder or an fsspec
URL (``shipyard.serving.logstore``): locally a file is written to a temporary name and renamed, on
an object store it is one PUT, so a reader never sees half a file. Feedback labels go the same way
to ``<feedback root>/date=YYYY-MM-DD/part-<pid>-<uuid>.parquet`` (``request_id``, ``ts``, ``label``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from shipyard.serving.logstore import LogFolder, log_location


class LogEntry(NamedTuple):
    request_id: str
    ts: float  # seconds since the epoch
    model: str
    version: int
    route: str
    status: str
    latency_ms: float
    error: str | None
    frame: Any  # pandas DataFrame of the model's features, or None
    predictions: Any  # numpy array or None (error)
    scores: Any  # numpy array or None
    labels: bool  # True: predictions are class labels (logged as str)


class FeedbackEntry(NamedTuple):
    request_id: str
    ts: float
    label: Any


ENV_REQUEST_LOG = "SHIPYARD_REQUEST_LOG"


def _configured(configured: str | None, project_root: Path | None) -> Path | LogFolder | None:
    """SHIPYARD_REQUEST_LOG, else ``deploy.request_log`` (a relative folder is under the project)."""
    where = os.environ.get(ENV_REQUEST_LOG) or configured
    if not where:
        return None
    location = log_location(where)
    if isinstance(location, Path) and not location.is_absolute() and project_root is not None:
        return project_root / location
    return location


def requests_root(state_dir: Path, configured: str | None = None,
                  project_root: Path | None = None) -> Path | LogFolder:
    """Where the request log lives: SHIPYARD_REQUEST_LOG, else ``configured`` (``deploy.request_log``:
    a folder or an fsspec URL such as ``s3://bucket/prefix``), else ``<state_dir>/requests``."""
    return _configured(configured, project_root) or state_dir / "requests"


def feedback_root(state_dir: Path, configured: str | None = None,
                  project_root: Path | None = None) -> Path | LogFolder:
    """Where feedback labels live: ``<request log>/feedback`` when the request log was moved (so
    every reader finds both in one place), else ``<state_dir>/feedback``."""
    moved = _configured(configured, project_root)
    return moved / "feedback" if moved is not None else state_dir / "feedback"


class RequestLog:
    """Bounded, batched, off-the-request-path Parquet writer for requests and feedback."""

    def __init__(self, root: Path | LogFolder, feedback: Path | LogFolder, *, flush_interval: float = 1.0, max_queue: int = 100_000,
                 on_drop: Callable[[int], None] | None = None) -> None:
        self.root = log_location(root)  # a local Path, or a LogFolder for an fsspec URL
        self.feedback_dir = log_location(feedback)
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.dropped = 0
        self.written_rows = 0
        self.errors = 0
        self.last_error: str | None = None
        self._queue: deque[LogEntry] = deque()
        self._feedback: deque[FeedbackEntry] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_lock = threading.Lock()
        self._on_drop = on_drop

    # -- request path ---------------------------------------------------------------------------
    def append(self, entry: LogEntry) -> bool:
        if len(self._queue) >= self.max_queue:
            self.dropped += 1
            if self._on_drop:
                self._on_drop(1)
            return False
        self._queue.append(entry)
        return True

    def append_feedback(self, entries: list[FeedbackEntry]) -> None:
        self._feedback.extend(entries)

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-request-log", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            try:
                self.flush()
            except Exception as exc:  # keep logging alive; the count shows up in /ready and /metrics
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"

    # -- writing -------------------------------------------------------------------------------
    def flush(self) -> int:
        """Write everything queued so far; returns the number of request rows written."""
        with self._flush_lock:
            entries = _drain(self._queue)
            feedback = _drain(self._feedback)
            rows = self._write_requests(entries) if entries else 0
            if feedback:
                self._write_feedback(feedback)
            self.written_rows += rows
            return rows

    def _write_requests(self, entries: list[LogEntry]) -> int:
        groups: dict[tuple[Any, ...], list[LogEntry]] = defaultdict(list)
        for e in entries:
            moment = datetime.fromtimestamp(e.ts, UTC)
            schema = tuple(e.frame.columns) if e.frame is not None else ()
            groups[(e.model, moment.strftime("%Y-%m-%d"), moment.strftime("%H"), schema, e.labels)].append(e)
        total = 0
        for (model, date, hour, columns, labels), group in groups.items():
            table = _request_table(group, list(columns), labels)
            folder = self.root / f"model={model}" / f"date={date}" / f"hour={hour}"
            _write_parquet(table, folder)
            total += table.num_rows
        return total

    def _write_feedback(self, entries: list[FeedbackEntry]) -> None:
        import pyarrow as pa

        by_date: dict[str, list[FeedbackEntry]] = defaultdict(list)
        for e in entries:
            by_date[datetime.fromtimestamp(e.ts, UTC).strftime("%Y-%m-%d")].append(e)
        for date, group in by_date.items():
            labels = [e.label for e in group]
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in labels):
                label_array = pa.array([float(v) for v in labels], pa.float64())
            else:
                label_array = pa.array([str(v) for v in labels], pa.string())
            table = pa.table({
                "request_id": pa.array([e.request_id for e in group], pa.string()),
                "ts": pa.array([int(e.ts * 1_000_000) for e in group], pa.timestamp("us", tz="UTC")),
                "label": label_array,
            })
            _write_parquet(table, self.feedback_dir / f"date={date}")


def _drain(queue: deque[Any]) -> list[Any]:
    out = []
    try:
        while True:
            out.append(queue.popleft())
    except IndexError:
        return out


def _request_table(group: list[LogEntry], columns: list[str], labels: bool) -> Any:
    import pyarrow as pa

    counts = [len(e.frame) if e.frame is not None else (len(e.predictions) if e.predictions is not None else 1)
              for e in group]
    ids: list[str] = []
    for e, n in zip(group, counts, strict=True):
        ids.extend([e.request_id] if n == 1 else [f"{e.request_id}/{i}" for i in range(n)])

    def repeat(values: list[Any]) -> np.ndarray:
        return np.repeat(np.asarray(values, dtype=object), counts)

    ts_us = np.repeat(np.asarray([int(e.ts * 1_000_000) for e in group], dtype=np.int64), counts)
    data: dict[str, Any] = {
        "request_id": pa.array(ids, pa.string()),
        "ts": pa.array(ts_us, pa.timestamp("us", tz="UTC")),
        "model": pa.array(repeat([e.model for e in group]), pa.string()),
        "version": pa.array(np.repeat(np.asarray([e.version for e in group], dtype=np.int64), counts), pa.int64()),
        "route": pa.array(repeat([e.route for e in group]), pa.string()),
        "status": pa.array(repeat([e.status for e in group]), pa.string()),
        "latency_ms": pa.array(np.repeat(np.asarray([e.latency_ms for e in group], dtype=np.float64), counts),
                               pa.float64()),
        "error": pa.array(repeat([e.error for e in group]), pa.string()),
    }
    for col in columns:
        parts = [e.frame[col].to_numpy() for e in group]
        merged = np.concatenate(parts) if parts else np.asarray([])
        data[f"feature.{col}"] = pa.array(merged.tolist() if merged.dtype == object else merged)
    preds: list[Any] = []
    scores: list[Any] = []
    for e, n in zip(group, counts, strict=True):
        if e.predictions is None:
            preds.extend([None] * n)
        elif labels:
            preds.extend(str(v) for v in e.predictions.tolist())
        else:
            preds.extend(float(v) for v in np.asarray(e.predictions, dtype=np.float64).tolist())
        if e.scores is None:
            scores.extend([None] * n)
        else:
            scores.extend(float(v) for v in np.asarray(e.scores, dtype=np.float64).tolist())
    data["prediction"] = pa.array(preds, pa.string() if labels else pa.float64())
    data["score"] = pa.array(scores, pa.float64())
    return pa.table(data)


def _write_parquet(table: Any, folder: Path | LogFolder) -> str:
    """Add ``table`` to ``folder`` as a new part, atomically (see ``LogFolder.write_parquet``)."""
    return LogFolder.of(folder).write_parquet(table)


def now() -> float:
    return time.time()
