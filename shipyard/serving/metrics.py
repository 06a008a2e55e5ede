"""Prometheus metrics of one gateway: requests, errors, latency and predictions per model/version.

Each gateway has its own registry (so several apps can live in one process, as in tests). Label
children are cached per (model, version, route) so the request path does one dict lookup.

With several worker processes (``shipyard serve --workers N``) a scrape reaches one random worker,
so ``shipyard serve`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before the workers start:
prometheus_client then keeps every value in a per-process file there, and ``render`` merges the
files of all workers (``MultiProcessCollector``). Counters and histograms add up; the gauges say
how they combine (``multiprocess_mode``). A worker that stops marks itself dead (``WorkerMetricsCleanup``)
so its live gauges leave the merge. Without the variable everything stays in process memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from shipyard.processes import alive

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
VALUE_BUCKETS = (-100, -10, -1, -0.5, 0, 0.5, 1, 2, 5, 10, 100, 1000)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("shipyard_requests", "Prediction requests served",
                                ["model", "version", "route", "status"], registry=r)
        self.candidate_errors = Counter("shipyard_candidate_errors", "Candidate failures answered by the champion",
                                        ["model", "version", "kind"], registry=r)
        self.latency = Histogram("shipyard_request_latency_seconds", "Time to answer a prediction request",
                                 ["model", "version"], buckets=LATENCY_BUCKETS, registry=r)
        self.predicted_labels = Counter("shipyard_predictions", "Predicted class labels",
                                        ["model", "version", "label"], registry=r)
        self.predicted_values = Histogram("shipyard_prediction_value", "Predicted values (regression)",
                                          ["model", "version"], buckets=VALUE_BUCKETS, registry=r)
        self.rejected = Counter("shipyard_rejected_requests", "Requests refused before a model ran",
                                ["reason"], registry=r)
        self.log_dropped = Counter("shipyard_request_log_dropped", "Request-log entries dropped (queue full)",
                                   registry=r)
        self.shadow_dropped = Counter("shipyard_shadow_dropped", "Shadow calls skipped (too many in flight)",
                                      ["model"], registry=r)
        # across workers: the oldest revision any live worker still serves, and 1 if any is stale
        self.routing_revision = Gauge("shipyard_routing_revision", "Routing revision this replica follows",
                                      registry=r, multiprocess_mode="livemin")
        self.routing_stale = Gauge("shipyard_routing_stale", "1 while the routing table cannot be refreshed",
                                   registry=r, multiprocess_mode="livemax")
        self.batch_size = Histogram("shipyard_batch_rows", "Rows per model call with micro-batching",
                                    ["model", "version"], buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 1024),
                                    registry=r)
        self._children: dict[tuple[Any, ...], Any] = {}

    def request(self, model: str, version: int, route: str, status: str) -> Any:
        key = ("r", model, version, route, status)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.requests.labels(model, str(version), route, status)
        return child

    def latency_of(self, model: str, version: int) -> Any:
        key = ("l", model, version)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = self.latency.labels(model, str(version))
        return child

    def observe_predictions(self, model: str, version: int, predictions: Any, labels: bool) -> None:
        if labels:
            values = predictions.tolist() if hasattr(predictions, "tolist") else list(predictions)
            counts: dict[Any, int] = {}
            for label in values:
                counts[label] = counts.get(label, 0) + 1
            for label, n in counts.items():
                key = ("p", model, version, label)
                child = self._children.get(key)
                if child is None:
                    child = self._children[key] = self.predicted_labels.labels(model, str(version), str(label))
                child.inc(n)
        else:
            key = ("v", model, version)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self.predicted_values.labels(model, str(version))
            for value in predictions.tolist():
                child.observe(value)

    def track_routing(self, follower: Any) -> None:
        """Keep the routing gauges current after every poll of ``follower`` (not only when this
        worker is scraped: with several workers the scrape may land on another one)."""
        def update(follower: Any) -> None:
            self.routing_stale.set(1 if follower.stale else 0)
            if follower.snapshot is not None:
                self.routing_revision.set(follower.snapshot.revision)

        follower.on_poll.append(update)

    def render(self) -> bytes:
        """The text exposition: of every worker when PROMETHEUS_MULTIPROC_DIR is set, else of this one."""
        folder = os.environ.get(MULTIPROC_ENV)
        if not folder or not _values_in_files():
            return generate_latest(self.registry)
        from prometheus_client.multiprocess import MultiProcessCollector

        _forget_dead_workers(folder)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=folder)
        return generate_latest(merged)


def _forget_dead_workers(folder: str) -> None:
    """Mark dead the workers that exited without saying so (killed; uvicorn starts a new one), so
    their last routing gauges stop holding down ``livemin``. Their counters stay in the sums."""
    from prometheus_client.multiprocess import mark_process_dead

    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[-1]
        if pid.isdigit() and not alive(int(pid)):
            mark_process_dead(int(pid), folder)


def _values_in_files() -> bool:
    """True when prometheus_client chose file-backed values (the variable was set before its import)."""
    from prometheus_client import values

    return values.ValueClass is not values.MutexValue


class WorkerMetricsCleanup:
    """A gateway background job whose ``stop`` marks this worker's metric files dead (multiprocess
    mode), so its live gauges drop out of the merged scrape once it exits."""

    def start(self) -> None:
        """Nothing to do on start."""

    def stop(self) -> None:
        """Forget this process's live gauges (its counters stay: they count what it served)."""
        folder = os.environ.get(MULTIPROC_ENV)
        if folder:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(os.getpid(), folder)
