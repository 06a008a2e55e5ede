"""The request log: every prediction's features, output, version, route and latency, as Parquet.

The request path only appends a tuple to a bounded deque (no I/O, no lock); a background thread
drains it every ``flush_interval`` seconds and writes one file per model and hour::

    <root>/model=<name>/date=YYYY-MM-DD/hour=HH/part-<pid>-<uuid>.parquet

with the columns of the cross-room contract: ``request_id`` (str), ``ts`` (timestamp[us, UTC]),
``model`` (str), ``version`` (int64), ``route`` (str), ``status`` (str: ok, error), ``latency_ms``
(float64), ``error`` (str, nullable), ``feature.<name>`` (native dtype), ``prediction`` (str for
class labels, float64 for regression), ``score`` (float64, nullable: the top class probability).
``gateway_cpu_ms`` (float64): the row's share of the gateway process's CPU over the flush window
that wrote it (every thread of the worker). The CPU each version's model calls took on their own
thread (``charge_model_cpu``) goes to that version's rows; the rest (parsing, routing, logging, a
model's extra native threads) is split evenly over the window's rows. A deployment's CPU per 1,000
predictions is then a sum over its rows (``tracking.cost``); CPU of windows with no request is idle
time, charged to no prediction.
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

from shipyard.serving.logstore import LogFolder, log_location
from shipyard.serving.logtable import (
    columns_of,
    hour_partition,
    request_table,
    row_count,
    with_gateway_cpu,
)


class LogEntry(NamedTuple):
    request_id: str
    ts: float  # seconds since the epoch
    model: str
    version: int
    route: str
    status: str
    latency_ms: float
    error: str | None
    frame: Any  # the request's codec.Rows (or a pandas DataFrame) of the model's features, or None
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
                 on_drop: Callable[[int], None] | None = None, redact: tuple[str, ...] = (),
                 hashed: tuple[str, ...] = ()) -> None:
        self.root = log_location(root)  # a local Path, or a LogFolder for an fsspec URL
        # supply.request_log: features written as nulls or keyed digests, so raw values never reach a file
        self.redact, self.hashed = tuple(redact), tuple(hashed)
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
        self._cpu_mark = time.process_time()  # CPU since the last flush is charged to its rows
        self._model_cpu: dict[tuple[str, int], float] = {}  # (model, version) -> model-call CPU seconds
        self._model_cpu_lock = threading.Lock()

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

    def charge_model_cpu(self, key: tuple[str, int], seconds: float) -> None:
        """Add the CPU seconds one model call of ``key`` = (model, version) took on its thread."""
        with self._model_cpu_lock:
            self._model_cpu[key] = self._model_cpu.get(key, 0.0) + seconds

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
            cpu_now = time.process_time()
            window_cpu_s, self._cpu_mark = cpu_now - self._cpu_mark, cpu_now
            rows = self._write_requests(entries, window_cpu_s) if entries else 0
            if feedback:
                self._write_feedback(feedback)
            self.written_rows += rows
            return rows

    def _write_requests(self, entries: list[LogEntry], window_cpu_s: float) -> int:
        groups: dict[tuple[Any, ...], list[LogEntry]] = defaultdict(list)
        per_version: dict[tuple[str, int], int] = defaultdict(int)  # rows of each version in this window
        for e in entries:
            groups[(e.model, *hour_partition(e.ts), columns_of(e.frame), e.labels)].append(e)
            per_version[(e.model, e.version)] += row_count(e)
        total = sum(per_version.values())
        model_ms = self._take_model_cpu(per_version)
        shared_ms = max(window_cpu_s * 1000.0 - sum(model_ms.values()), 0.0) / total if total else 0.0
        for (model, date, hour, columns, labels), group in groups.items():
            table = with_gateway_cpu(request_table(group, list(columns), labels), shared_ms,
                                     {k[1]: ms / per_version[k] for k, ms in model_ms.items() if k[0] == model})
            if self.redact or self.hashed:
                from shipyard.supply.governance import apply_log_policy

                table = apply_log_policy(table, self.redact, self.hashed)
            folder = self.root / f"model={model}" / f"date={date}" / f"hour={hour}"
            _write_parquet(table, folder)
        return total

    def _take_model_cpu(self, rows: dict[tuple[str, int], int]) -> dict[tuple[str, int], float]:
        """The model-call CPU (ms) of the versions that have rows in this window; a version with none
        (its requests still in flight) keeps its CPU for the next window."""
        with self._model_cpu_lock:
            return {key: self._model_cpu.pop(key) * 1000.0 for key in rows if key in self._model_cpu}

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


def _write_parquet(table: Any, folder: Path | LogFolder) -> str:
    """Add ``table`` to ``folder`` as a new part, atomically (see ``LogFolder.write_parquet``)."""
    return LogFolder.of(folder).write_parquet(table)


def now() -> float:
    return time.time()
