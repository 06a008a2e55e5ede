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

from shipyard.errors import InputError, NotFound, ShipyardError
from shipyard.store.runs import MetricValue

Writer = Callable[[str, Sequence[MetricValue]], None]


class MetricBuffer:
    def __init__(self, writer: Writer, *, batch_size: int = 1000, interval: float = 1.0) -> None:
        self.writer = writer
        self.batch_size = batch_size
        self.interval = interval
        self._pending: list[tuple[str, MetricValue]] = []
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
            groups: dict[str, list[MetricValue]] = {}
            for run_id, point in taken:
                groups.setdefault(run_id, []).append(point)
            chunks = [(run_id, points[i:i + self.batch_size])
                      for run_id, points in groups.items() for i in range(0, len(points), self.batch_size)]
            for index, (run_id, chunk) in enumerate(chunks):
                try:
                    self.writer(run_id, chunk)
                except (InputError, NotFound):
                    # these points can never be written (the run is gone or deleted): drop them
                    self._requeue([c for c in chunks[index + 1:] if c[0] != run_id])
                    raise
                except BaseException:
                    self._requeue(chunks[index:])
                    raise

    def _requeue(self, chunks: list[tuple[str, list[MetricValue]]]) -> None:
        with self._lock:
            self._pending[:0] = [(run_id, p) for run_id, chunk in chunks for p in chunk]

    def take(self, run_id: str) -> list[MetricValue]:
        """Remove and return the points waiting for one run (the caller writes them itself)."""
        with self._write_lock, self._lock:
            taken = [p for r, p in self._pending if r == run_id]
            if taken:
                self._pending = [item for item in self._pending if item[0] != run_id]
        return taken

    def put_back(self, run_id: str, points: list[MetricValue]) -> None:
        self._requeue([(run_id, points)])

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
