"""Follow the routing tables in the store: poll one revision number, reload only when it moves.

A background thread polls ``RoutingSource.revision()`` every ``poll_interval`` seconds. When it
changes, it reads the tables, loads any version not loaded yet (off the request path), and swaps
in a new immutable ``Snapshot`` with one assignment; requests read ``follower.snapshot`` and never
touch the database. When the store cannot be reached the last snapshot keeps serving and
``stale`` / ``stale_since`` / ``problem`` say so (``/ready`` reports it): after a failed poll, or
when no poll has answered for ``stale_after`` seconds (a poll stuck on a half-open connection never
fails).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from shipyard.serving.protocols import (
    Feature,
    ModelLoader,
    RoutingSource,
    ServableModel,
    features_of,
)
from shipyard.serving.routing import strategy_for, versions_needed


@dataclass(frozen=True)
class Served:
    """One model version as this replica holds it (``error`` set when it failed to load)."""

    name: str
    version: int
    model: ServableModel | None
    features: tuple[Feature, ...] | None
    labels: bool
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.model is not None


@dataclass(frozen=True)
class ModelRoute:
    """A served model: its table, strategy and loaded versions."""

    name: str
    table: dict[str, Any]
    strategy: Any
    versions: dict[int, Served]

    @property
    def champion(self) -> Served | None:
        return self.versions.get(self.table["champion"])

    @property
    def sticky_header(self) -> str | None:
        return (self.table.get("sticky") or {}).get("header")

    @property
    def sticky_key(self) -> str | None:
        return (self.table.get("sticky") or {}).get("key")

    @property
    def timeout_s(self) -> float:
        return float(self.table.get("candidate_timeout_ms") or 250.0) / 1000.0


@dataclass(frozen=True)
class Snapshot:
    revision: int
    models: dict[str, ModelRoute] = field(default_factory=dict)
    loaded_at: float = 0.0


class StaticSource:
    """Routing tables held in memory (tests of the gateway alone, ``--get`` smoke checks)."""

    def __init__(self, tables: dict[str, dict[str, Any]]) -> None:
        self._tables = tables
        self._revision = 1

    def set(self, tables: dict[str, dict[str, Any]]) -> None:
        self._tables = tables
        self._revision += 1

    def revision(self) -> int:
        return self._revision

    def tables(self) -> dict[str, dict[str, Any]]:
        return dict(self._tables)


class StoreRoutingSource:
    """Routing tables from the metadata store (``shipyard.store.serving``)."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def revision(self) -> int:
        from shipyard.store import serving as repo

        with self.store.read() as session:
            return repo.current_revision(session)

    def tables(self) -> dict[str, dict[str, Any]]:
        from shipyard.store import serving as repo

        with self.store.read() as session:
            return repo.routing_tables(session)


def _is_classifier(model: ServableModel) -> bool:
    try:
        classes = model.classes
    except Exception:
        return False
    if classes is not None and len(classes) > 0:
        return True
    # no class list, but the signature says the prediction is a label (an MLflow python_function
    # model): its predictions are counted and logged as labels, not as numbers
    outputs = getattr(getattr(model, "signature", None), "outputs", None) or ()
    return len(outputs) == 1 and getattr(outputs[0], "type", None) in ("string", "boolean")


class Follower:
    """Keeps ``snapshot`` in step with the routing source."""

    def __init__(self, source: RoutingSource, loader: ModelLoader, poll_interval: float = 1.0) -> None:
        self.source = source
        self.loader = loader
        self.poll_interval = poll_interval
        self.snapshot: Snapshot | None = None
        self.stale_since: float | None = None
        self.last_error: str | None = None
        self.last_ok: float | None = None
        self._cache: dict[tuple[str, int], Served] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.on_change: list[Any] = []  # called with the new Snapshot after it is installed
        self.on_poll: list[Any] = []  # called with this Follower after every poll, fresh or failed

    @property
    def stale(self) -> bool:
        """True while the routing table may be out of date (a failed or an overdue poll)."""
        return self.stale_since is not None or self._overdue() is not None

    @property
    def stale_after(self) -> float:
        """Seconds without a successful poll after which the table counts as stale."""
        return max(5 * self.poll_interval, 2.0)

    @property
    def stale_time(self) -> float | None:
        """Since when the table has been stale (the failed poll, or the last good one when overdue)."""
        return self.stale_since if self.stale_since is not None else self._overdue()

    @property
    def problem(self) -> str | None:
        """Why the table is stale, in words."""
        if self.last_error is not None:
            return self.last_error
        overdue = self._overdue()
        return None if overdue is None else f"no routing poll has answered for {time.time() - overdue:.0f} s"

    def _overdue(self) -> float | None:
        """The last good poll's time, when the polling thread runs and that is too long ago."""
        if self._thread is None or self.last_ok is None or time.time() - self.last_ok <= self.stale_after:
            return None
        return self.last_ok

    def refresh(self) -> bool:
        """Poll once; True when a new snapshot was installed. Never raises."""
        changed = self._poll()
        for callback in self.on_poll:
            callback(self)
        return changed

    def _poll(self) -> bool:
        with self._lock:
            try:
                revision = self.source.revision()
                if self.snapshot is not None and revision == self.snapshot.revision:
                    self._ok()
                    return False
                tables = self.source.tables()
            except Exception as exc:
                if self.stale_since is None:
                    self.stale_since = time.time()
                self.last_error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                return False
            self.snapshot = self._build(revision, tables)
            self._ok()
        for callback in self.on_change:
            callback(self.snapshot)
        return True

    def _ok(self) -> None:
        self.stale_since = None
        self.last_error = None
        self.last_ok = time.time()

    def _build(self, revision: int, tables: dict[str, dict[str, Any]]) -> Snapshot:
        models = {}
        keep: set[tuple[str, int]] = set()
        for name, table in tables.items():
            served = {}
            for version in versions_needed(table):
                served[version] = self._load(name, version)
                keep.add((name, version))
            try:
                strategy = strategy_for(table)
            except Exception:
                continue
            models[name] = ModelRoute(name, table, strategy, served)
        for key in list(self._cache):
            if key not in keep:
                del self._cache[key]
        return Snapshot(revision, models, time.time())

    def _load(self, name: str, version: int) -> Served:
        key = (name, version)
        cached = self._cache.get(key)
        if cached is not None and cached.ok:
            return cached
        try:
            # Flavors import pandas/polars lazily inside predict; import them here, off the request
            # path, so concurrent first requests (event loop + candidate threads) never race a
            # half-initialised module.
            import pandas  # noqa: F401
            import polars  # noqa: F401

            model = self.loader.load(name, version)
            served = Served(name, version, model, features_of(model), _is_classifier(model))
        except Exception as exc:
            served = Served(name, version, None, None, False, f"{type(exc).__name__}: {exc}")
        self._cache[key] = served
        return served

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-routing", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_interval):
            self.refresh()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
