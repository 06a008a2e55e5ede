"""``shipyard serve --workers 2`` as a user runs it: two real uvicorn worker processes on loopback,
over a real project (SQLite store, object store, registered scikit-learn models).

Which worker answered is read from the request log: each worker names its files ``part-<pid>-...``.
Every wait below is a deadline on an observable state (never a sleep that decides the outcome).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shipyard.project import Project
from shipyard.serving.routing import single_table
from shipyard.store import serving as repo
from shipyard.workspace import Workspace
from tests.conftest import shipyard_bin
from tests.e2e.gateway_live import free_port, iris_rows
from tests.serving.project_models import register_iris

# one server for the module, its tests in order (make test runs xdist with --dist loadgroup)
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600), pytest.mark.xdist_group("serve-workers")]
OK_V1 = ("shipyard_requests_total", (("model", "iris"), ("route", "primary"), ("status", "ok"), ("version", "1")))

CONFIG = """pipeline:
  stages: {}
deploy:
  poll_interval: 0.2s
  flush_interval: 0.2s
  interval: 1s
"""
CLEAN_ENV = ("SHIPYARD_STORE", "SHIPYARD_OBJECTS", "SHIPYARD_REQUEST_LOG", "PROMETHEUS_MULTIPROC_DIR",
             "prometheus_multiproc_dir")


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Served:
    """A ``shipyard serve --workers N`` process over a scratch project."""

    def __init__(self, root: Path, workers: int = 2, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.workers = workers
        self.env = env or {}
        self.ws = Workspace(Project(root))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = root.parent / "tmp"  # TMPDIR of the server: holds its Prometheus folder
        self.tmp.mkdir()
        self.output = root.parent / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start_only(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
        env["TMPDIR"] = str(self.tmp)
        env.update(self.env)
        with open(self.output, "wb") as out:
            self.proc = subprocess.Popen([shipyard_bin(), "serve", "--workers", str(self.workers),
                                          "--port", str(self.port)],
                                         cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT)

    def start(self) -> None:
        self.start_only()
        wait_for("the gateway to answer /ready", self._ready, timeout=120)

    def _ready(self) -> bool:
        assert self.proc is not None and self.proc.poll() is None, self.log_text()
        try:
            return httpx.get(f"{self.url}/ready", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> int:
        """SIGINT, as Ctrl-C in a terminal; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"shipyard serve did not stop on SIGINT\n{self.log_text()}") from None

    def worker_pids(self) -> set[int]:
        """The pids of uvicorn's worker processes (the children that serve; not its helpers)."""
        import psutil

        assert self.proc is not None
        pids = set()
        for child in psutil.Process(self.proc.pid).children():
            try:
                if child.status() == psutil.STATUS_ZOMBIE:  # killed, not reaped yet
                    continue
                command = " ".join(child.cmdline())
            except psutil.Error:  # gone meanwhile
                continue
            if "multiprocessing.resource_tracker" not in command:
                pids.add(child.pid)
        return pids

    def log_text(self) -> str:
        return self.output.read_text(errors="replace")[-4000:] if self.output.exists() else ""

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """One GET /metrics: {(sample name, sorted labels): value}."""
        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text) for s in family.samples}

    def log_files(self) -> list[Path]:
        return sorted((self.root / ".shipyard" / "requests").rglob("part-*.parquet"))

    def logged(self) -> Any:
        import polars as pl

        files = self.log_files()
        if not files:
            return pl.DataFrame()
        return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files], how="diagonal_relaxed")

    def writers(self) -> set[str]:
        """The pids of the workers that wrote request-log files."""
        return {f.name.split("-")[1] for f in self.log_files()}

    def routing_revisions(self) -> list[float]:
        """``shipyard_routing_revision`` as scraped: livemin, the oldest revision any live worker serves."""
        return [v for (name, _), v in self.scrape().items() if name == "shipyard_routing_revision"]

    def all_follow(self, revision: int) -> bool:
        return min(self.routing_revisions(), default=0) >= revision

    def lease_holder(self) -> str | None:
        """Who holds the rollout controller's lease now (``host:pid:tag``)."""
        from shipyard.rollout.controller import LEASE
        from shipyard.store.serving import ServingLease

        with self.ws.store.read() as session:
            lease = session.get(ServingLease, LEASE)
            return lease.owner if lease is not None and lease.until > time.time() else None

    def until_both_workers_answer(self, version: str = "1") -> int:
        """Send predictions until the request log shows both workers served some; returns how many."""
        sent = 0
        while len(self.writers()) < 2:
            answers = infer(self.url, 80)
            sent += len(answers)
            assert {v for _, v in answers} == {version}
            if sent >= 4000:
                raise AssertionError(f"one worker answered all {sent} requests\n{self.log_text()}")
            wait_for("the request log to catch up", lambda: self.logged().height == sent)  # noqa: B023
        return sent

    def set_routing(self, table: dict[str, Any]) -> int:
        with self.ws.store.write() as session:
            repo.put_routing(session, {"iris": table})
        with self.ws.store.read() as session:
            return repo.current_revision(session)


def infer(url: str, count: int, *, key: Callable[[int], str | None] = lambda i: None,
          concurrency: int = 8) -> list[tuple[str | None, str]]:
    """``count`` predictions, each on a new connection (so the kernel hands them to either worker);
    returns (sticky key, answering version) per request; any non-200 fails the test."""
    rows = iris_rows(64)

    async def run() -> list[tuple[str | None, str]]:
        out: list[tuple[str | None, str]] = []
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
            async def one(i: int) -> None:
                headers = {"x-shipyard-key": k} if (k := key(i)) is not None else {}
                body = {"inputs": [{"name": n, "shape": [1], "datatype": "FP64", "data": [v]}
                                   for n, v in rows[i % len(rows)].items()]}
                r = await client.post("/v2/models/iris/infer", json=body, headers=headers)
                assert r.status_code == 200, r.text
                out.append((k, r.headers["x-shipyard-version"]))

            for start in range(0, count, concurrency):
                await asyncio.gather(*[one(i) for i in range(start, min(count, start + concurrency))])
        return out

    return asyncio.run(run())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("workers") / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text(CONFIG)
    gateway = Served(root)
    register_iris(gateway.ws, root.parent)
    gateway.start()
    yield gateway
    if gateway.proc is not None and gateway.proc.poll() is None:
        gateway.stop()
    gateway.ws.close()


def test_both_workers_answer_log_and_count_in_one_scrape(served: Served) -> None:
    sent = served.until_both_workers_answer()
    assert served.logged().height == sent  # every worker's rows landed, in files of their own
    assert {int(pid) for pid in served.writers()} == served.worker_pids()
    samples = served.scrape()
    ok = samples[OK_V1]
    assert ok == sent
    assert samples[("shipyard_request_latency_seconds_count", (("model", "iris"), ("version", "1")))] == sent
    predicted = sum(v for (name, labels), v in samples.items()
                    if name == "shipyard_predictions_total" and ("model", "iris") in labels)
    assert predicted == sent


def test_every_worker_follows_a_routing_change_and_sticky_keys_agree(served: Served) -> None:
    canary = {**single_table("iris", 1, warm=[2]), "strategy": "canary", "candidate": 2, "weight": 50.0}
    revision = served.set_routing(canary)
    wait_for("both workers to load the canary table", lambda: served.all_follow(revision))
    keys = [f"user-{i}" for i in range(24)]
    answers = infer(served.url, 24 * 8, key=lambda i: keys[i % len(keys)])
    by_key: dict[str, set[str]] = {}
    for key, version in answers:
        by_key.setdefault(str(key), set()).add(version)
    assert all(len(versions) == 1 for versions in by_key.values()), by_key  # one version per key, any worker
    assert Counter(v for versions in by_key.values() for v in versions).keys() == {"1", "2"}

    revision = served.set_routing(single_table("iris", 1, warm=[2]))  # a rollback: a pointer flip
    wait_for("both workers to follow the rollback", lambda: served.all_follow(revision))
    assert {v for _, v in infer(served.url, 64, key=lambda i: keys[i % len(keys)])} == {"1"}


def test_only_one_worker_drives_rollouts(served: Served) -> None:
    owner = wait_for("a worker to take the controller lease", served.lease_holder)
    assert int(owner.split(":")[1]) in served.worker_pids()  # a worker holds it, not the supervisor
    for _ in range(5):  # the holder renews it; the other worker never takes it over
        time.sleep(0.5)
        assert served.lease_holder() == owner


def test_a_canary_is_driven_by_one_controller_to_promotion(served: Served) -> None:
    from shipyard.config import DeploySection
    from shipyard.rollout.controller import Controller
    from shipyard.rollout.ports import RegistryAdapter
    from shipyard.serving.loaders import RegistryLoader

    state = served.root / ".shipyard"
    starter = Controller(served.ws.store, RegistryAdapter(), requests_root=state / "requests",
                         feedback_root=state / "feedback")  # only starts it; the workers drive it
    settings = DeploySection(strategy="canary", steps=[25, 50, 100], interval="1s", min_samples=20,
                             rollback_when={"error_rate": "> 0.5"})
    starter.start("iris", 2, settings, check_load=RegistryLoader(served.ws.store, served.ws.objects).load)

    def promoted() -> bool:
        infer(served.url, 48, key=lambda i: f"c{i}-{time.monotonic()}")
        return starter.status("iris", limit=1)[0]["state"] == "promoted"

    wait_for("the workers' controller to promote the canary", promoted, timeout=180)
    decisions = starter.status("iris", limit=1)[0]["decisions"]
    moves = [(d["from"], d["to"]) for d in decisions if d["status"] == "ACCEPT"]
    assert moves == [("none", "canary[0]"), ("canary[0]", "canary[1]"), ("canary[1]", "promoted")]
    # Each analysis comes a full interval after the last conclusive decision (an inconclusive wait,
    # too few samples, keeps the window open). Two controllers ticking at once would analyse the
    # same window twice, moments apart.
    window_start = None
    for d in decisions:
        if d["cause"] == "analysis":
            assert window_start is not None and d["at"] - window_start >= 1.0, decisions
        if "RequireMinSamples" not in str(d["fired"]):
            window_start = d["at"]


def test_a_killed_worker_is_replaced_and_its_counts_and_gauges_stay_right(served: Served) -> None:
    served_before = served.scrape().get(OK_V1, 0.0)
    victim = min(served.worker_pids())
    os.kill(victim, signal.SIGKILL)
    wait_for("uvicorn to start a new worker", lambda: len(served.worker_pids() - {victim}) == 2, timeout=120)
    wait_for("the new worker to answer", served._ready)
    revision = served.set_routing(single_table("iris", 1, warm=[2]))
    # the dead worker's last revision must not hold the minimum down
    wait_for("every live worker at the new revision", lambda: served.all_follow(revision))
    after = served.scrape().get(OK_V1, 0.0)
    assert after >= served_before  # what the killed worker served is still counted


def settled_rows(served: Served, quiet: float = 2.5, timeout: float = 60) -> int:
    """The request log's row count once no worker has rows left to flush: unchanged over more than
    two flush intervals (1 s) with no traffic."""
    deadline = time.monotonic() + timeout
    last = served.logged().height
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = served.logged().height
        if now == last:
            return now
        last = now
    raise AssertionError(f"the request log kept growing for {timeout} s without traffic")


def test_sigint_stops_every_worker_and_cleans_up(served: Served) -> None:
    before = settled_rows(served)  # earlier tests' last requests may still sit in a worker's queue
    answers = infer(served.url, 40)
    metrics_dirs = list(served.tmp.glob("shipyard-metrics-*"))
    assert len(metrics_dirs) == 1 and any(metrics_dirs[0].iterdir())  # the workers' Prometheus files
    assert served.stop() == 0, served.log_text()
    assert served.logged().height == before + len(answers)  # flushed on the way out
    assert not list(served.tmp.glob("shipyard-metrics-*"))
    assert "Traceback" not in served.log_text(), served.log_text()


@pytest.mark.parametrize("multiproc", [False, True], ids=["in-memory", "PROMETHEUS_MULTIPROC_DIR"])
def test_a_single_worker_counts_with_or_without_the_multiprocess_folder(tmp_path: Path, multiproc: bool) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text(CONFIG)
    folder = tmp_path / "prometheus"
    folder.mkdir()
    gateway = Served(root, workers=1, env={"PROMETHEUS_MULTIPROC_DIR": str(folder)} if multiproc else None)
    try:
        register_iris(gateway.ws, tmp_path, strengths=(1.0,))
        gateway.start()
        answers = infer(gateway.url, 30)
        samples = gateway.scrape()
        ok = samples[OK_V1]
        assert ok == len(answers)
        assert any(folder.iterdir()) is multiproc  # the user's folder is used only when they set it
        assert gateway.stop() == 0, gateway.log_text()
    finally:
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.stop()
        gateway.ws.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_address_is_printed_only_once_the_gateway_answers(tmp_path: Path, workers: int) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text(CONFIG)
    gateway = Served(root, workers=workers)
    try:
        register_iris(gateway.ws, tmp_path, strengths=(1.0,))
        gateway.start()  # returns once /ready answers; the line may come a moment later
        wait_for("the address line", lambda: f"gateway on http://127.0.0.1:{gateway.port}" in gateway.log_text())
        assert gateway.log_text().count("gateway on http://") == 1
        # the line is printed by the same process only after a request to this address succeeded:
        # stop the server, start it again, and at the moment the line appears it must answer
        assert gateway.stop() == 0, gateway.log_text()
        gateway.output.unlink()
        gateway.start_only()
        wait_for("the address line", lambda: "gateway on http://" in gateway.log_text(), timeout=120)
        assert httpx.get(f"{gateway.url}/v2/health/live", timeout=5).json() == {"live": True}
        assert gateway.stop() == 0, gateway.log_text()
    finally:
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.stop()
        gateway.ws.close()


@pytest.mark.postgres
def test_two_workers_over_postgresql(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHIPYARD_STORE", pg_url)  # the test's own Workspace opens the same database
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text(CONFIG)
    gateway = Served(root, env={"SHIPYARD_STORE": pg_url})
    try:
        register_iris(gateway.ws, tmp_path)
        gateway.start()
        sent = gateway.until_both_workers_answer()
        assert gateway.scrape()[OK_V1] == sent
        owner = wait_for("a worker to take the controller lease", gateway.lease_holder)
        assert int(owner.split(":")[1]) in gateway.worker_pids()
        revision = gateway.set_routing(single_table("iris", 2, warm=[1]))
        wait_for("both workers to follow the new champion", lambda: gateway.all_follow(revision))
        assert {v for _, v in infer(gateway.url, 48)} == {"2"}
        assert gateway.stop() == 0, gateway.log_text()
    finally:
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.stop()
        gateway.ws.close()
