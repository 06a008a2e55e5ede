"""Metric points buffered in memory and written in batches by a background thread.

``add`` only appends to a list (the caller never waits for the database or the network). A daemon
thread flushes every ``interval`` seconds, or as soon as ``batch_size`` points are waiting; ``flush``
writes everything now on the caller's thread. A failed write puts the points back in order, so a
later flush (at exit, at end of run) retries them; an error that retrying cannot fix (a bad run id)
is raised by the next synchronous ``flush``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from shipyard.errors import InputError, NotFound, ShipyardError
from shipyard.store.runs import MetricValue


@dataclass(frozen=True)
class BufferedParam:
    key: str
    value: str


Item = MetricValue | BufferedParam
Chunk = tuple[str, list[MetricValue], dict[str, str]]
Writer = Callable[[str, Sequence[MetricValue], dict[str, str]], None]
PARAMS_PER_BATCH = 100


def _chunks(taken: list[tuple[str, Item]], batch_size: int) -> list[Chunk]:
    """Per run, batches of at most ``batch_size`` points and 100 params, in logging order."""
    points: dict[str, list[MetricValue]] = {}
    params: dict[str, list[tuple[str, str]]] = {}
    for run_id, item in taken:
        if isinstance(item, BufferedParam):
            params.setdefault(run_id, []).append((item.key, item.value))
            points.setdefault(run_id, [])
        else:
            points.setdefault(run_id, []).append(item)
    out: list[Chunk] = []
    for run_id, run_points in points.items():
        run_params = params.get(run_id, [])
        while True:  # at most batch_size items in all (MLflow's limit counts params too)
            some_params, run_params = run_params[:PARAMS_PER_BATCH], run_params[PARAMS_PER_BATCH:]
            room = batch_size - len(some_params)
            some_points, run_points = run_points[:room], run_points[room:]
            out.append((run_id, some_points, dict(some_params)))
            if not run_points and not run_params:
                break
    return out


class MetricBuffer:
    def __init__(self, writer: Writer, *, batch_size: int = 1000, interval: float = 1.0,
                 background: bool = True) -> None:
        self.writer = writer
        self.background = background
        self.batch_size = batch_size
        self.interval = interval
        self._pending: list[tuple[str, Item]] = []
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = False
        self._error: ShipyardError | None = None
        self._thread: threading.Thread | None = None

    def add(self, run_id: str, point: MetricValue) -> None:
        with self._lock:
            self._pending.append((run_id, point))
            full = len(self._pending) >= self.batch_size
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    def add_many(self, run_id: str, points: Sequence[MetricValue]) -> None:
        with self._lock:
            self._pending.extend((run_id, p) for p in points)
            full = len(self._pending) >= self.batch_size
        if self._thread is None:
            self._start()
        if full:
            self._wake.set()

    def __len__(self) -> int:
        return len(self._pending)

    def _start(self) -> None:
        if not self.background:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="shipyard-metrics", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while not self._stop:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop:
                break
            try:
                self._write_pending(only_run=None)
            except ShipyardError as exc:
                self._error = exc
            except Exception as exc:  # keep the thread alive; the next flush reports it
                self._error = ShipyardError(f"writing metrics failed: {type(exc).__name__}: {exc}")

    def add_params(self, run_id: str, params: dict[str, str]) -> None:
        """Queue params of a run this process created (their immutability was checked in memory)."""
        with self._lock:
            self._pending.extend((run_id, BufferedParam(k, v)) for k, v in params.items())
        if self._thread is None:
            self._start()

    def _write_pending(self, only_run: str | None) -> None:
        with self._write_lock:
            with self._lock:
                if only_run is None:
                    taken, self._pending = self._pending, []
                else:
                    taken = [item for item in self._pending if item[0] == only_run]
                    self._pending = [item for item in self._pending if item[0] != only_run]
            if not taken:
                return
            chunks = _chunks(taken, self.batch_size)
            for index, (run_id, points, params) in enumerate(chunks):
                try:
                    self.writer(run_id, points, params)
                except (InputError, NotFound):
                    # these points can never be written (the run is gone or deleted): drop them
                    self._requeue([c for c in chunks[index + 1:] if c[0] != run_id])
                    raise
                except BaseException:
                    self._requeue(chunks[index:])
                    raise

    def _requeue(self, chunks: list[Chunk]) -> None:
        with self._lock:
            restored: list[tuple[str, Item]] = []
            for run_id, points, params in chunks:
                restored += [(run_id, BufferedParam(k, v)) for k, v in params.items()]
                restored += [(run_id, p) for p in points]
            self._pending[:0] = restored

    def take(self, run_id: str) -> tuple[list[MetricValue], dict[str, str]]:
        """Remove and return what waits for one run: points and params (the caller writes them)."""
        with self._write_lock, self._lock:
            mine = [item for r, item in self._pending if r == run_id]
            if mine:
                self._pending = [item for item in self._pending if item[0] != run_id]
        points = [i for i in mine if isinstance(i, MetricValue)]
        params = {i.key: i.value for i in mine if isinstance(i, BufferedParam)}
        return points, params

    def put_back(self, run_id: str, points: list[MetricValue], params: dict[str, str]) -> None:
        self._requeue([(run_id, points, params)])

    def raise_deferred(self) -> None:
        """Raise the error a background write met, if any (once)."""
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def flush(self, run_id: str | None = None) -> None:
        """Write what is waiting (for one run, or all) now; raise a deferred background error."""
        self._write_pending(only_run=run_id)
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def close(self) -> None:
        """Stop the thread and write everything left (called at exit)."""
        self._stop = True
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        try:
            self.flush()
        except ShipyardError as exc:
            print(f"shipyard: could not write buffered metrics: {exc}", file=sys.stderr)
