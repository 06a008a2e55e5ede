"""A real gateway on loopback (uvicorn in a thread) over a real store and registry, plus a bounded
async load generator. Models come from ``tests.serving.models`` (real scikit-learn estimators and
precisely faulty candidates); aliases, gate verdicts and rollout state live in the real store.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn

from shipyard import registry
from shipyard.config import DeploySection
from shipyard.rollout.controller import Controller, ControllerLoop
from shipyard.rollout.ports import NullNotifier, RegistryAdapter
from shipyard.serving.app import Gateway, GatewaySettings, create_app
from shipyard.serving.follower import Follower, StoreRoutingSource
from shipyard.serving.requestlog import RequestLog
from shipyard.serving.routing import single_table
from shipyard.store import serving as repo
from tests.server.live import free_port
from tests.serving.models import IRIS_FEATURES, DictLoader, iris


def register_versions(store: Any, name: str, versions: list[int], champion: int | None = None) -> None:
    """Register versions (passing gate verdicts) and route the champion, as the registry room does."""
    with store.write() as session:
        for v in versions:
            registry.register(session, name, model_oid=f"xxh128:{v:032x}", flavor="sklearn")
            registry.record_verdict(session, f"{name}@{v}", {"passed": True, "checks": []}, "passed")
        if champion is not None:
            registry.set_alias(session, name, "champion", champion)
            repo.put_routing(session, {name: single_table(name, champion)})


class LiveGateway:
    def __init__(self, store: Any, state: Path, models: dict[tuple[str, int], Any], *, batching: bool = True,
                 poll: float = 0.1) -> None:
        self.store = store
        self.state = state
        self.loader = DictLoader(models)
        self.notify = NullNotifier()
        self.controller = Controller(store, RegistryAdapter(), requests_root=state / "requests",
                                     feedback_root=state / "feedback", notify=self.notify)
        self.log = RequestLog(state / "requests", state / "feedback", flush_interval=0.1)
        self.gateway = Gateway(Follower(StoreRoutingSource(store), self.loader, poll_interval=poll), self.log,
                               GatewaySettings(batching=batching), background=[ControllerLoop(self.controller, 0.1)])
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(self.gateway), host="127.0.0.1", port=self.port, log_level="warning",
                                access_log=False, lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveGateway:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def deploy(self, name: str, version: int, strategy: str = "canary", **settings: Any) -> Any:
        return self.controller.start(name, version, DeploySection(strategy=strategy, **settings),
                                     check_load=self.loader.load)

    def deployment(self, name: str) -> dict[str, Any]:
        return self.controller.status(name, limit=1)[0]

    def wait_routing(self, revision_at_least: int, timeout: float = 10) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            snap = self.gateway.follower.snapshot
            if snap is not None and snap.revision >= revision_at_least:
                return
            time.sleep(0.02)
        raise AssertionError("the gateway did not pick up the routing change")

    def revision(self) -> int:
        with self.store.read() as session:
            return repo.current_revision(session)


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    by_key: dict[str, set[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    sent: int = 0

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + len(self.failures)


def iris_rows(n: int, seed: int = 0) -> list[dict[str, float]]:
    x, _ = iris()
    rng = np.random.default_rng(seed)
    picked = x.to_numpy()[rng.integers(0, len(x), n)]
    return [dict(zip(IRIS_FEATURES, map(float, row), strict=True)) for row in picked]


async def drive(url: str, model: str, *, requests: int | None = None, until: Any = None, concurrency: int = 8,
                keys: list[str] | None = None, features: list[str] | None = None, timeout_s: float = 60) -> LoadResult:
    """Send requests with at most ``concurrency`` in flight, until ``requests`` are sent or ``until()``."""
    result = LoadResult()
    rows = iris_rows(512)
    if features is not None:
        rows = [{k: r[k] for k in features} for r in rows]
    started = time.time()
    done = {"at": 0.0, "value": False}

    def stop() -> bool:  # ask ``until`` at most every 0.1 s: it reads the store
        if until is None:
            return False
        if time.time() - done["at"] > 0.1:
            done["value"], done["at"] = bool(until()), time.time()
        return done["value"]

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def worker(w: int) -> None:
            i = w
            while True:
                if requests is not None and result.sent >= requests:
                    return
                if stop():
                    return
                if time.time() - started > timeout_s:
                    return
                result.sent += 1
                headers = {}
                key = None
                if keys:
                    key = keys[i % len(keys)]
                    headers["x-shipyard-key"] = key
                try:
                    r = await client.post(f"/v2/models/{model}/infer", headers=headers, json={"inputs": [
                        {"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in rows[i % 512].items()]})
                    result.statuses[r.status_code] += 1
                    version = r.headers.get("x-shipyard-version", "?")
                    result.versions[version] += 1
                    if key is not None:
                        result.by_key.setdefault(key, set()).add(version)
                except httpx.HTTPError as exc:
                    result.failures.append(f"{type(exc).__name__}: {exc}")
                i += concurrency

        await asyncio.gather(*[worker(w) for w in range(concurrency)])
    return result
