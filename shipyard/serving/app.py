"""The model gateway: an ASGI app (Starlette on uvicorn, orjson) serving routed model versions.

Endpoints (``shipyard.serving.endpoints``): Open Inference Protocol v2 as KServe and Triton speak it
(``/v2``, ``/v2/health/live|ready``, ``/v2/models/{name}[/versions/{v}]/infer|ready`` and metadata,
binary tensor data), MLflow's scoring server (``/invocations`` with JSON or CSV, ``/ping``,
``/version``), ``/v1/models/{name}:predict``, ``/health``, ``/ready``, ``/metrics`` and
``POST /v1/feedback``. Every response carries ``x-shipyard-version`` (the model version that
answered; the gateway's own version on non-model routes) and ``x-request-id``. A client's mistake
is a 4xx naming the field; a 5xx means the model itself failed (500) or the version that must
answer is not loaded on this replica (503).

The request path reads the follower's snapshot (no database), routes with the model's strategy,
predicts, answers, then appends to the request log's queue. The invariant: a candidate that raises,
times out or returns garbage (wrong length, NaN) never fails a request the champion can serve —
the champion answers within the same request and the candidate error is counted and logged.
Shadow copies run after the answer, off the request path, in a bounded pool.
"""

from __future__ import annotations

import asyncio
import gc
import math
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from shipyard.errors import did_you_mean
from shipyard.serving import codec
from shipyard.serving.answers import GATEWAY_VERSION, NotLoaded, new_request_id
from shipyard.serving.batching import Batcher
from shipyard.serving.codec import Inputs, RequestError, Rows
from shipyard.serving.follower import Follower, ModelRoute, Served, Snapshot
from shipyard.serving.metrics import GatewayMetrics
from shipyard.serving.protocols import ArrayPredictor
from shipyard.serving.requestlog import LogEntry, RequestLog
from shipyard.serving.routing import bucket_of

MAX_BODY_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class GatewaySettings:
    max_body_bytes: int = MAX_BODY_BYTES
    batching: bool = True  # adaptive: a request alone never waits (see serving/batching.py)
    max_batch_size: int = 64
    max_latency_ms: float = 2.0
    max_shadow_in_flight: int = 64
    scores: bool = True
    solo_rows: int | None = None  # batching: requests with this many rows skip merging (None: half a batch)


class CandidateFailure(Exception):
    """A candidate's answer was unusable (wrong length, NaN, not loaded)."""


class Gateway:
    """Request handling; owns the follower, the request log and the metrics of one replica."""

    def __init__(self, follower: Follower, request_log: RequestLog | None, settings: GatewaySettings | None = None,
                 background: list[Any] | None = None, enricher: Any = None) -> None:
        self.follower = follower
        self.enricher = enricher  # serving/features.py: online features merged into keyed requests
        self.log = request_log
        self.settings = settings or GatewaySettings()
        self.metrics = GatewayMetrics()
        self.background = background or []
        self.parsing = 0
        self.shadow_in_flight = 0
        self._batchers: dict[tuple[str, int, bool], Batcher] = {}
        self._calls: dict[tuple[str, int], tuple[Served, Callable[[Rows], tuple[np.ndarray, np.ndarray | None]]]] = {}
        self._candidate_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="shipyard-candidate")
        self._shadow_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="shipyard-shadow")
        if request_log is not None:
            request_log._on_drop = lambda n: self.metrics.log_dropped.inc(n)
        follower.on_change.append(self._forget_unrouted)

    def _forget_unrouted(self, snapshot: Snapshot) -> None:
        """Drop the model calls and batch queues of versions the new routing table no longer
        serves, so a replaced model is freed (the follower has dropped it from its own cache).
        Runs on the follower's thread: keys are copied first, entries removed one by one."""
        routed = {(route.name, version) for route in snapshot.models.values() for version in route.versions}
        for cache in (self._calls, self._batchers):
            for key in list(cache):
                if key[:2] not in routed:
                    cache.pop(key, None)

    # -- lifecycle -----------------------------------------------------------------------------
    def startup(self) -> None:
        self.follower.refresh()
        self.follower.start()
        if self.log is not None:
            self.log.start()
        for job in self.background:
            job.start()

    def shutdown(self) -> None:
        for job in self.background:
            job.stop()
        self.follower.stop()
        if self.log is not None:
            self.log.stop()
        self._candidate_pool.shutdown(wait=False, cancel_futures=True)
        self._shadow_pool.shutdown(wait=True)

    # -- responses -----------------------------------------------------------------------------
    @staticmethod
    def respond(body: Any, status: int = 200, version: Any = GATEWAY_VERSION, rid: str | None = None,
                extra: dict[str, str] | None = None, media: str = "application/json") -> Response:
        headers = {"x-shipyard-version": str(version), "x-request-id": rid or new_request_id()}
        if extra:
            headers.update(extra)
        content = body if isinstance(body, bytes) else codec.dumps(body)
        return Response(content, status_code=status, headers=headers, media_type=media)

    def error(self, status: int, message: str, rid: str, field: str | None = None, hint: str | None = None,
              reason: str = "bad_request") -> Response:
        self.metrics.rejected.labels(reason).inc()
        body: dict[str, Any] = {"error": message}
        if field:
            body["field"] = field
        if hint:
            body["hint"] = hint
        return self.respond(body, status, rid=rid)

    # -- request helpers -----------------------------------------------------------------------
    async def read_body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestError("body", f"the body is {int(declared)} bytes; the limit is {limit} bytes", status=413)
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestError("body", f"the body exceeds the limit of {limit} bytes", status=413)
            chunks.append(chunk)
        return b"".join(chunks)

    def all_ready(self) -> bool:
        """Every routed model's champion is loaded (and a routing table has been read)."""
        snapshot = self.follower.snapshot
        return snapshot is not None and all(r.champion is not None and r.champion.ok
                                            for r in snapshot.models.values())

    def refresh_routing_gauges(self) -> None:
        f = self.follower
        self.metrics.routing_stale.set(1 if f.stale else 0)
        if f.snapshot is not None:
            self.metrics.routing_revision.set(f.snapshot.revision)

    def readiness(self) -> tuple[dict[str, Any], bool]:
        """``/ready``'s body (routing freshness, each version's load state, the log's counters) and
        whether the routing table is stale."""
        f = self.follower
        snapshot = f.snapshot
        body: dict[str, Any] = {"ready": self.all_ready(),
                                "routing_revision": snapshot.revision if snapshot else None,
                                "stale": f.stale, "models": {}}
        if f.stale:
            since = f.stale_time
            body["stale_since"] = since
            body["stale_for_s"] = round(time.time() - (since or time.time()), 3)
            body["reason"] = f"serving from the last routing table: the store is unreachable ({f.problem})"
        for name, route in (snapshot.models.items() if snapshot else ()):
            body["models"][name] = {
                str(v): ("ok" if s.ok else f"failed: {s.error}") for v, s in sorted(route.versions.items())}
        if self.log is not None:
            body["request_log"] = {"written_rows": self.log.written_rows, "dropped": self.log.dropped,
                                   "errors": self.log.errors, "last_error": self.log.last_error}
        self.refresh_routing_gauges()
        return body, f.stale

    def find_model(self, name: str, rid: str) -> ModelRoute | Response:
        snapshot = self.follower.snapshot
        route = snapshot.models.get(name) if snapshot else None
        if route is None:
            known = list(snapshot.models) if snapshot else []
            return self.error(404, f"unknown model {name!r}", rid, hint=did_you_mean(name, known)
                              or "deploy one with 'shipyard deploy NAME@VERSION'", reason="unknown_model")
        return route

    # -- prediction ----------------------------------------------------------------------------
    def _call(self, served: Served) -> Callable[[Rows], tuple[np.ndarray, np.ndarray | None]]:
        """The model call of one version (cached: the request path does not build closures)."""
        key = (served.name, served.version)
        cached = self._calls.get(key)
        if cached is None or cached[0] is not served:
            cached = self._calls[key] = (served, _metered(_model_call(served, self.settings.scores), self.log, key))
        return cached[1]

    def _batcher(self, served: Served, candidate: bool) -> Batcher:
        """The micro-batching queue of one version (a candidate's runs in the candidate pool)."""
        key = (served.name, served.version, candidate)
        batcher = self._batchers.get(key)
        if batcher is None or getattr(batcher, "served", None) is not served:
            hist = self.metrics.batch_size.labels(served.name, str(served.version))
            batcher = Batcher(self._call(served), max_batch_size=self.settings.max_batch_size,
                              max_latency_ms=self.settings.max_latency_ms, arriving=lambda: self.parsing,
                              observe=hist.observe, executor=self._candidate_pool if candidate else None,
                              solo_rows=self.settings.solo_rows)
            batcher.served = served  # type: ignore[attr-defined]
            self._batchers[key] = batcher
        return batcher

    async def predict(self, served: Served, rows: Rows, candidate: bool, timeout: float) -> tuple[Any, Any]:
        if served.model is None:
            raise CandidateFailure(f"version {served.version} is not loaded: {served.error}")
        if self.settings.batching:
            coro = self._batcher(served, candidate).submit(rows)
            preds, scores = await (asyncio.wait_for(coro, timeout) if candidate else coro)
        elif candidate:
            loop = asyncio.get_running_loop()
            preds, scores = await asyncio.wait_for(loop.run_in_executor(self._candidate_pool, self._call(served), rows),
                                                   timeout)
        else:
            preds, scores = self._call(served)(rows)
        check_output(preds, len(rows), served.labels)
        return preds, scores

    async def serve(self, route: ModelRoute, inputs: Inputs, rid: str, key: str | None, field: str,
                    version: int | None = None) -> tuple[Served, str, Any, Any, Any, float]:
        """Route one request and predict; returns (served, route, rows, predictions, scores, ms).

        ``version`` pins the request to one served version (OIP's versioned routes): no strategy,
        no fallback. Otherwise the model's strategy assigns it."""
        started = time.perf_counter()
        if self.enricher is not None:
            inputs = self.enricher.enrich(inputs)
        if version is not None:
            served = route.versions[version]
            rows = self.rows_for(route, served, inputs, field)
            preds, scores = await self.predict_primary(served, rows)
            return served, "pinned", rows, preds, scores, (time.perf_counter() - started) * 1000
        assignment = route.strategy.assign(bucket_of(key), bucket_of(None))
        served = route.versions.get(assignment.version)
        if served is None:
            raise NotLoaded(f"routing names version {assignment.version} of {route.name!r}, which is not loaded")
        rows = self.rows_for(route, served, inputs, field)
        if assignment.fallback is not None:
            try:
                preds, scores = await self.predict(served, rows, True, route.timeout_s)
            except Exception as exc:
                self.candidate_failed(route.name, served, assignment.route, rows, exc, rid, started)
                fallback = route.versions.get(assignment.fallback)
                if fallback is None or fallback.model is None:
                    raise
                preds, scores = await self.predict_primary(fallback, rows)
                return fallback, "primary", rows, preds, scores, (time.perf_counter() - started) * 1000
        else:
            preds, scores = await self.predict_primary(served, rows)
        if assignment.shadow is not None:
            self.mirror(route, assignment.shadow, rows, preds, rid)
        return served, assignment.route, rows, preds, scores, (time.perf_counter() - started) * 1000

    @staticmethod
    def rows_for(route: ModelRoute, served: Served, inputs: Inputs, field: str) -> Rows:
        """The request's rows in the version's columns. Parsing already checked the protocol; what
        fails here is the client's data, so an unexpected error is still a 422 naming the field."""
        features = served.features or (route.champion.features if route.champion else None)
        try:
            return codec.to_rows(inputs, features, field)
        except RequestError:
            raise
        except Exception as exc:
            raise RequestError(field, f"the inputs cannot be read as the model's columns "
                               f"({type(exc).__name__}: {exc})"[:500]) from None

    async def predict_primary(self, served: Served, rows: Rows) -> tuple[Any, Any]:
        """Predict on a version that answers the request itself (no fallback behind it).

        A model that refuses missing values raises on NaN: that is the request's NaN, so a 422
        naming the column; any other exception is the model's failure (the caller's 500)."""
        if served.model is None:
            raise NotLoaded(f"model {served.name!r} version {served.version} failed to load: {served.error}")
        try:
            return await self.predict(served, rows, False, 0)
        except (ValueError, TypeError) as exc:
            column = codec.missing_column(rows)
            if column is None:
                raise
            raise RequestError(column, f"feature {column!r} has a missing value (NaN) and model {served.name!r} "
                               f"version {served.version} cannot take missing values ({exc})"[:500]) from None

    def candidate_failed(self, name: str, served: Served, route_name: str, rows: Rows, exc: Exception,
                         rid: str, started: float) -> None:
        """Count and log a candidate's failure (the champion answers the request instead)."""
        kind = ("timeout" if isinstance(exc, TimeoutError) else
                "garbage" if isinstance(exc, CandidateFailure) else "error")
        self.metrics.candidate_errors.labels(name, str(served.version), kind).inc()
        elapsed = (time.perf_counter() - started) * 1000
        self.metrics.request(name, served.version, route_name, "error").inc()
        if self.log is not None:
            self.log.append(LogEntry(rid, time.time(), name, served.version, route_name, "error", elapsed,
                                     f"{kind}: {type(exc).__name__}: {exc}"[:500], rows, None, None, served.labels))

    def record(self, served: Served, route_name: str, rows: Rows, preds: Any, scores: Any, elapsed: float,
               rid: str) -> None:
        m = self.metrics
        m.request(served.name, served.version, route_name, "ok").inc()
        m.latency_of(served.name, served.version).observe(elapsed / 1000.0)
        m.observe_predictions(served.name, served.version, preds, served.labels)
        if self.log is not None:
            self.log.append(LogEntry(rid, time.time(), served.name, served.version, route_name, "ok", elapsed, None,
                                     rows, preds, scores, served.labels))

    async def drain_shadows(self) -> None:
        """Return once every shadow copy submitted so far has run and been counted and logged.

        The shadow pool has one thread and runs jobs in order, so a no-op submitted now finishes
        after all of them; their done-callbacks were queued on the loop before this one wakes."""
        await asyncio.get_running_loop().run_in_executor(self._shadow_pool, _noop)
        await asyncio.sleep(0)

    def mirror(self, route: ModelRoute, version: int, rows: Rows, primary: Any, rid: str) -> None:
        """Run the shadow version on a copy of the request after answering; log its output."""
        served = route.versions.get(version)
        if served is None or served.model is None:
            self.metrics.candidate_errors.labels(route.name, str(version), "not_loaded").inc()
            return
        if self.shadow_in_flight >= self.settings.max_shadow_in_flight:
            self.metrics.shadow_dropped.labels(route.name).inc()
            return
        self.shadow_in_flight += 1
        loop = asyncio.get_running_loop()
        call = self._call(served)

        def run() -> tuple[Any, Any, float, str | None]:
            start = time.perf_counter()
            try:
                preds, scores = call(rows)
                check_output(preds, len(rows), served.labels)
                return preds, scores, (time.perf_counter() - start) * 1000, None
            except Exception as exc:
                return None, None, (time.perf_counter() - start) * 1000, f"{type(exc).__name__}: {exc}"[:500]

        def done(fut: Any) -> None:
            self.shadow_in_flight -= 1
            if fut.cancelled():
                return
            preds, scores, ms, err = fut.result()
            status = "ok" if err is None else "error"
            self.metrics.request(served.name, served.version, "shadow", status).inc()
            if err is not None:
                self.metrics.candidate_errors.labels(served.name, str(served.version), "shadow").inc()
            if self.log is not None:
                self.log.append(LogEntry(rid, time.time(), served.name, served.version, "shadow", status, ms, err,
                                         rows, preds, scores, served.labels))

        future = loop.run_in_executor(self._shadow_pool, run)
        future.add_done_callback(done)


def _noop() -> None:
    return None


def _model_call(served: Served, scores: bool) -> Callable[[Rows], tuple[np.ndarray, np.ndarray | None]]:
    """Predict one version on rows: (labels or values, top-class probability or None)."""
    model = served.model
    assert model is not None
    want_scores = scores and served.labels
    classes = np.asarray(model.classes) if want_scores else None
    # A model taking matrices gets the request's matrix when its columns are this version's inputs.
    matrix_columns = (tuple(f.name for f in served.features)
                      if served.features and isinstance(model, ArrayPredictor) else None)

    def run(rows: Rows) -> tuple[np.ndarray, np.ndarray | None]:
        if matrix_columns is not None and rows.array is not None and rows.columns == matrix_columns:
            predict, predict_proba, given = model.predict_array, model.predict_proba_array, rows.array
        else:
            predict, predict_proba, given = model.predict, model.predict_proba, rows.frame
        if classes is not None:
            proba = predict_proba(given)
            if proba is not None:
                proba = np.asarray(proba)
                return classes[proba.argmax(axis=1)], proba.max(axis=1)
        return np.asarray(predict(given)), None

    return run


def _metered(call: Callable[[Rows], Any], log: RequestLog | None, key: tuple[str, int]) -> Callable[[Rows], Any]:
    """``call`` charging the CPU time of its thread to the version (the request log's cost column)."""
    if log is None:
        return call
    charge, clock = log.charge_model_cpu, time.thread_time

    def metered(rows: Rows) -> Any:
        start = clock()
        try:
            return call(rows)
        finally:
            charge(key, clock() - start)

    return metered


def check_output(preds: Any, n: int, labels: bool) -> None:
    """Refuse garbage: wrong length, or NaN/inf in a numeric prediction."""
    if not hasattr(preds, "__len__") or len(preds) != n:
        raise CandidateFailure(f"returned {len(preds) if hasattr(preds, '__len__') else 'no'} predictions for {n} rows")
    array = np.asarray(preds)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise CandidateFailure("returned NaN or infinite predictions")
    if array.dtype.kind == "O" and any(isinstance(v, float) and not math.isfinite(v) for v in array.tolist()):
        raise CandidateFailure("returned NaN predictions")


def quiet_collector(follower: Follower) -> None:
    """Keep Python's cyclic garbage collector from stalling the event loop (a server process only).

    A full collection walks every object: with pandas, scikit-learn and pyarrow loaded that is
    ~50-100 ms with the loop frozen, and objects surviving on the request log's queue trigger one
    every few seconds under load. Collect once now, then freeze what is there (the loaded models
    and libraries) so later collections only walk new objects; freeze again after each routing
    change has loaded new versions. Objects still free by reference counting as usual.
    """
    gc.collect()
    gc.freeze()
    follower.on_change.append(lambda _snapshot: gc.freeze())


def create_app(gateway: Gateway) -> Starlette:
    """The Starlette app around a Gateway (its endpoints: ``shipyard.serving.endpoints``)."""
    from shipyard.serving.endpoints import Endpoints

    endpoints = Endpoints(gateway)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await asyncio.get_running_loop().run_in_executor(None, gateway.startup)
        quiet_collector(gateway.follower)
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, gateway.shutdown)

    app = Starlette(routes=endpoints.routes(), lifespan=lifespan,
                    exception_handlers={404: endpoints.not_found, 405: endpoints.not_allowed})
    app.state.gateway = gateway
    return app
