"""The dispatcher: one background worker per webhook target, so the caller never waits on a network.

Each worker owns a queue. For every event it stores a ``notify_deliveries`` row, posts the signed
body, retries (``shipyard.retry``: exponential backoff, bounded in attempts and total time) on
connection errors, timeouts, 408/425/429 and 5xx (another 4xx answer is final), and stores the outcome (``delivered`` or ``failed`` with the last error). Failed rows keep the
event, and ``redeliver`` sends them again. When a target got ``digest_after`` events within
``digest_window``, later events are held (stored as ``held``) and sent together as one ``digest``
event when the window ends, or at ``flush``.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shipyard.config import Notifier
from shipyard.durations import parse_duration
from shipyard.notify.formats import render
from shipyard.notify.signing import signed_headers
from shipyard.retry import Retryable, RetryPolicy, retry_after_seconds, retryable_status

if TYPE_CHECKING:
    from shipyard.store import Store

log = logging.getLogger("shipyard.notify")
MAX_BACKOFF_S = 30.0
TOTAL_S = 300.0  # one delivery never keeps its target's queue for longer, retries included


class _Refused(Exception):
    """The endpoint answered with a final (4xx) status: no retry."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class DeliveryResult:
    """The fate of one event at one target: queued, delivered, failed, held (in a digest) or filtered."""

    target: str
    format: str
    status: str
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    delivery_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.status in ("queued", "delivered", "held", "filtered")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NullNotifier:
    """What runs when no ``notify:`` is configured: accepts every event, sends nothing."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> list[DeliveryResult]:
        self.events.append(event)
        return []

    send = __call__


def redact(url: str) -> str:
    """The target as stored and shown: scheme, host and the first path segment (tokens stay out)."""
    parts = urlsplit(url)
    segments = [s for s in parts.path.split("/") if s]
    path = "/" + segments[0] if segments else ""
    if len(segments) > 1:
        path += "/..."
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}{path}"


def _wants(notifier: Notifier, kind: str) -> bool:
    return not notifier.events or any(kind.startswith(prefix) for prefix in notifier.events)


@dataclass
class _Item:
    event: dict[str, Any]
    store: Store | None
    future: Future[DeliveryResult] = field(default_factory=Future)
    delivery_id: int | None = None


class _Flush:
    def __init__(self) -> None:
        self.done = threading.Event()


class _Worker:
    """Delivers the events of one target in order, on its own daemon thread."""

    def __init__(self, notifier: Notifier, owner: Dispatcher) -> None:
        self.notifier = notifier
        self.owner = owner
        self.target = redact(notifier.webhook)
        self.queue: queue.Queue[_Item | _Flush] = queue.Queue()
        self.window_s = parse_duration(notifier.digest_window)
        self.backoff_s = parse_duration(notifier.backoff)
        self.timeout_s = parse_duration(notifier.timeout)
        # the target's retries and backoff, within the one policy (bounded in total time too)
        self.policy = RetryPolicy(attempts=notifier.retries + 1, wait_initial=self.backoff_s, wait_max=MAX_BACKOFF_S,
                                  timeout=TOTAL_S)
        self.recent: deque[float] = deque()
        self.held: list[_Item] = []
        self.held_since = 0.0
        self.thread = threading.Thread(target=self._run, name=f"shipyard-notify {self.target}", daemon=True)
        self.thread.start()

    # -- loop -----------------------------------------------------------------------------------
    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s, follow_redirects=False) as client:
            while True:
                wait = 0.5
                if self.held:
                    wait = max(0.01, min(wait, self.held_since + self.window_s - time.time()))
                try:
                    item = self.queue.get(timeout=wait)
                except queue.Empty:
                    item = None
                try:
                    if isinstance(item, _Flush):
                        self._send_digest(client)
                        item.done.set()
                    elif item is not None:
                        self._handle(client, item)
                    if self.held and time.time() - self.held_since >= self.window_s:
                        self._send_digest(client)
                except Exception as exc:  # the worker must survive anything one event does
                    log.exception("notification worker for %s: %s", self.target, exc)
                    if isinstance(item, _Item) and not item.future.done():
                        item.future.set_result(DeliveryResult(self.target, self.notifier.format, "failed",
                                                              error=str(exc)))
                finally:
                    if item is not None:
                        self.queue.task_done()

    def _handle(self, client: Any, item: _Item) -> None:
        now = time.time()
        while self.recent and now - self.recent[0] > self.window_s:
            self.recent.popleft()
        if item.delivery_id is None and len(self.recent) >= self.notifier.digest_after:
            item.delivery_id = self._store_new(item, "held")
            if not self.held:
                self.held_since = now
            self.held.append(item)
            item.future.set_result(DeliveryResult(self.target, self.notifier.format, "held",
                                                  delivery_id=item.delivery_id))
            return
        self.recent.append(now)
        if item.delivery_id is None:
            item.delivery_id = self._store_new(item, "queued")
        result = self._post(client, item.event)
        result = DeliveryResult(**{**asdict(result), "delivery_id": item.delivery_id})
        self._store_outcome(item.store, item.delivery_id, result)
        item.future.set_result(result)

    def _send_digest(self, client: Any) -> None:
        if not self.held:
            return
        held, self.held = self.held, []
        events = [i.event for i in held]
        digest = {"kind": "digest", "count": len(events), "target": self.target,
                  "since": self.held_since, "events": events}
        item = _Item(digest, held[0].store)
        item.delivery_id = self._store_new(item, "queued")
        result = self._post(client, digest)
        self._store_outcome(item.store, item.delivery_id, result)
        note = f"sent in digest #{item.delivery_id}" if result.status == "delivered" else result.error
        for inner in held:
            self._store_outcome(inner.store, inner.delivery_id,
                                DeliveryResult(self.target, self.notifier.format, result.status, 0,
                                               result.http_status, note))

    # -- HTTP -----------------------------------------------------------------------------------
    def _post(self, client: Any, event: dict[str, Any]) -> DeliveryResult:
        import httpx

        fmt = self.notifier.format
        body = render(event, fmt)
        attempts = 0

        def once() -> int:
            nonlocal attempts
            attempts += 1
            try:
                response = client.post(self.notifier.webhook, content=body,
                                       headers=signed_headers(self.notifier.secret, body))
            except httpx.HTTPError as exc:
                raise Retryable(f"{type(exc).__name__}: {exc}") from exc
            status = response.status_code
            if 200 <= status < 300:
                return status
            error = f"HTTP {status}: {response.text[:200]}"
            if retryable_status(status):
                raise Retryable(error, status=status, retry_after=retry_after_seconds(response.headers.get("Retry-After")))
            raise _Refused(error, status)  # a 4xx answer is final

        try:
            status = self.policy.run(once)
        except (Retryable, _Refused) as exc:
            log.warning("notification to %s failed after %d attempts: %s", self.target, attempts, exc)
            return DeliveryResult(self.target, fmt, "failed", attempts, exc.status, str(exc))
        return DeliveryResult(self.target, fmt, "delivered", attempts, status)

    # -- storage --------------------------------------------------------------------------------
    def _store_new(self, item: _Item, status: str) -> int | None:
        if item.store is None:
            return None
        from shipyard.store import monitoring as repo

        try:
            with item.store.write() as session:
                row = repo.add_delivery(session, event_kind=str(item.event.get("kind", "event")),
                                        target=self.target, format=self.notifier.format, event=item.event,
                                        status=status)
                return row.id
        except Exception as exc:
            self.owner.unstored.append(item.event)
            log.warning("cannot store a notification for %s: %s", self.target, exc)
            return None

    def _store_outcome(self, store: Store | None, delivery_id: int | None, result: DeliveryResult) -> None:
        if store is None or delivery_id is None:
            if result.status == "failed":
                self.owner.unstored.append({"target": self.target, "error": result.error})
            return
        from shipyard.store import monitoring as repo

        try:
            with store.write() as session:
                repo.finish_delivery(session, delivery_id, status=result.status, attempts=result.attempts,
                                     http_status=result.http_status, error=result.error)
        except Exception as exc:
            log.warning("cannot store the outcome of notification #%s: %s", delivery_id, exc)


class Dispatcher:
    """Workers by target; ``send`` queues, ``flush`` waits."""

    def __init__(self) -> None:
        self._workers: dict[tuple[str, str, str | None], _Worker] = {}
        self._lock = threading.Lock()
        self.unstored: list[dict[str, Any]] = []

    def worker(self, notifier: Notifier) -> _Worker:
        key = (notifier.webhook, notifier.format, notifier.secret)
        with self._lock:
            worker = self._workers.get(key)
            if worker is None or worker.notifier != notifier:
                worker = _Worker(notifier, self)
                self._workers[key] = worker
            return worker

    def send(self, event: dict[str, Any], notifiers: list[Notifier], store: Store | None = None,
             wait: bool | float = False) -> list[DeliveryResult]:
        kind = str(event.get("kind", "event"))
        queued: list[tuple[_Worker, _Item]] = []
        results: list[DeliveryResult] = []
        for notifier in notifiers:
            if not _wants(notifier, kind):
                results.append(DeliveryResult(redact(notifier.webhook), notifier.format, "filtered"))
                continue
            worker = self.worker(notifier)
            item = _Item(dict(event), store)
            worker.queue.put(item)
            queued.append((worker, item))
            results.append(DeliveryResult(worker.target, notifier.format, "queued"))
        if not wait:
            return results
        timeout = None if wait is True else float(wait)
        final = []
        for (worker, item), _ in zip(queued, results, strict=False):
            try:
                final.append(item.future.result(timeout=timeout))
            except FutureTimeout:
                final.append(DeliveryResult(worker.target, worker.notifier.format, "queued"))
        return final + [r for r in results if r.status == "filtered"]

    def flush(self, timeout: float = 30.0) -> bool:
        """Send held digests and wait until every queue is empty; False if ``timeout`` ran out."""
        deadline = time.monotonic() + timeout
        with self._lock:
            workers = list(self._workers.values())
        markers = []
        for worker in workers:
            marker = _Flush()
            worker.queue.put(marker)
            markers.append(marker)
        return all(m.done.wait(max(0.0, deadline - time.monotonic())) for m in markers)


_DISPATCHER: Dispatcher | None = None
_DISPATCHER_LOCK = threading.Lock()
_STORES: dict[Path, Store] = {}


def dispatcher() -> Dispatcher:
    global _DISPATCHER
    with _DISPATCHER_LOCK:
        if _DISPATCHER is None:
            _DISPATCHER = Dispatcher()
            atexit.register(_DISPATCHER.flush, 10.0)
        return _DISPATCHER


def _default_store() -> Store | None:
    """The store of the project around the current directory, opened once per project."""
    try:
        from shipyard.project import find_project
        from shipyard.store import open_store

        state_dir = find_project(os.getcwd()).state_dir
        with _DISPATCHER_LOCK:
            if state_dir not in _STORES:
                _STORES[state_dir] = open_store(state_dir)
            return _STORES[state_dir]
    except Exception as exc:
        log.debug("notifications will not be stored: %s", exc)
        return None


def send(event: dict[str, Any], notifiers: list[Notifier], store: Store | None = None,
         wait: bool | float = False) -> list[DeliveryResult]:
    """Queue ``event`` for every notifier and return at once (``wait`` blocks for the outcomes).

    With no notifiers this is the null notifier: nothing is sent, nothing is stored. ``store``
    defaults to the store of the project around the current directory.
    """
    if not notifiers:
        return []
    if store is None:
        store = _default_store()
    return dispatcher().send(event, notifiers, store, wait)


def flush(timeout: float = 30.0) -> bool:
    """Wait until every queued notification (and held digest) has been delivered or stored as failed."""
    return dispatcher().flush(timeout) if _DISPATCHER is not None else True


def redeliver(store: Store, notifiers: list[Notifier], limit: int = 100) -> int:
    """Queue again the stored failed deliveries of the configured targets; returns how many."""
    import json

    from shipyard.store import monitoring as repo

    by_target = {redact(n.webhook): n for n in notifiers}
    with store.write() as session:
        rows = [d for d in repo.deliveries(session, "failed", limit) if d.target in by_target]
        failed = [(d.id, d.target, json.loads(d.event)) for d in rows]
        for d in rows:
            d.status = "retrying"  # not picked again while this attempt is queued
    count = 0
    for delivery_id, target, event in failed:
        notifier = by_target.get(target)
        if notifier is None or event.get("kind") == "digest":
            continue
        item = _Item(event, store, delivery_id=delivery_id)
        dispatcher().worker(notifier).queue.put(item)
        count += 1
    return count
