"""Tracking vs MLflow 3.17.2, both sides alternating in one run.

MLflow comes from the peer venv (bench/peers/mlflow.txt) when it is installed, else from this venv
(mlflow 3.17.2 is a Shipyard dev dependency), so the REST rows use one and the same client.

In process (each side's own API on its default SQLite store): ``log_metric`` (2000 calls, ours
includes the final flush), ``log_metrics`` batches (10 x 1000 values), runs (100 x start, 2 params,
1 metric, end) and search over 10,000 runs with a filter and an order. Over REST, MLflow's own
client against ``shipyard server`` and ``mlflow server`` (both uvicorn on 127.0.0.1): median
latency of ``log_metric`` calls and ``log_batch`` (10 x 1000 values); the same two against
``shipyard server`` with auth on (the client sends the first admin's token) and ``--no-auth``
(``rest_auth``). Each sample is one worker process (bench/tracking_worker.py) timing itself, so
interpreter start-up is excluded both ways.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench.harness import BENCH, PEERS, WORK, compare, ours_bin, peer_env

WORKER = str(BENCH / "tracking_worker.py")


def _worker(python: str, side: str, task: str, work: Path, uri: str = "", extra: dict[str, str] | None = None) -> float:
    env = {**os.environ, "PYTHONPATH": "", "MLFLOW_ENABLE_ASYNC_LOGGING": "false", **(extra or {})}
    env.pop("SHIPYARD_TRACKING_URI", None)
    proc = subprocess.run([python, WORKER, side, task, str(work), *([uri] if uri else [])],
                          capture_output=True, text=True, env=env, timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"{side} {task} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return float(proc.stdout.strip().splitlines()[-1])


def _project(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    return path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited early: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not answer in {timeout} s")


def mlflow_env() -> tuple[str, str]:
    """(python, mlflow binary) of MLflow 3.17.2: the peer venv when it is installed, else this venv's
    own copy (mlflow 3.17.2 is a dev dependency of Shipyard, so both sides use the same client)."""
    if (PEERS / "mlflow" / ".installed").exists() or os.environ.get("BENCH_MLFLOW_PEER_VENV"):
        venv = peer_env("mlflow")
        return str(venv / "bin" / "python"), str(venv / "bin" / "mlflow")
    return sys.executable, str(Path(sys.executable).with_name("mlflow"))


class Servers:
    """``shipyard server`` and ``mlflow server`` (both uvicorn on 127.0.0.1, SQLite) side by side."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ours = self.peer = ""

    def __enter__(self) -> Servers:
        ours_port, peer_port = _free_port(), _free_port()
        rest_dir = _project(self.root / "rest-ours")
        self.procs.append(subprocess.Popen([ours_bin(), "server", "--port", str(ours_port), "--no-auth"], cwd=rest_dir,
                                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        peer_dir = self.root / "rest-mlflow"
        peer_dir.mkdir(parents=True, exist_ok=True)
        self.procs.append(subprocess.Popen(
            [mlflow_env()[1], "server", "--host", "127.0.0.1", "--port", str(peer_port),
             "--backend-store-uri", f"sqlite:///{peer_dir}/mlflow-server.db",
             "--artifacts-destination", str(peer_dir / "mlartifacts")],
            cwd=peer_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        self.ours, self.peer = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{peer_port}"
        try:
            _wait(f"{self.ours}/health", self.procs[0])
            _wait(f"{self.peer}/health", self.procs[1])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        _stop(self.procs)


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Terminate each server, killing one that has not exited within 20 s."""
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


class AuthServers:
    """Two ``shipyard server`` processes on their own projects: auth on (its default; the first admin
    token it prints is what the client sends) and ``--no-auth``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.on = self.off = self.token = ""

    def __enter__(self) -> AuthServers:
        on_port, off_port = _free_port(), _free_port()
        on = subprocess.Popen([ours_bin(), "server", "--port", str(on_port), "--no-monitor"],
                              cwd=_project(self.root / "rest-auth-on"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.procs.append(on)
        self.procs.append(subprocess.Popen([ours_bin(), "server", "--port", str(off_port), "--no-monitor", "--no-auth"],
                                           cwd=_project(self.root / "rest-auth-off"), stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL))
        self.on, self.off = f"http://127.0.0.1:{on_port}", f"http://127.0.0.1:{off_port}"
        try:
            assert on.stdout is not None
            for raw in on.stdout:  # the token is printed before the server listens
                line = raw.decode().strip()
                if line.startswith("shp_"):
                    self.token = line
                if line.startswith("shipyard server on"):
                    break
            if not self.token:
                raise RuntimeError("shipyard server printed no first admin token")
            _wait(f"{self.on}/health", on)
            _wait(f"{self.off}/health", self.procs[1])
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        _stop(self.procs)


def _rest_auth(root: Path, client_py: str, n: int) -> None:
    """REST latency of the MLflow client against shipyard server with auth on (Bearer) vs --no-auth."""
    with AuthServers(root) as servers:
        bearer = {"MLFLOW_TRACKING_TOKEN": servers.token}
        for task, label in (("rest_log_metric", "REST log_metric per call, auth on (token) vs --no-auth"),
                            ("rest_log_batch", "REST 10 x log_batch(1000), auth on (token) vs --no-auth")):
            compare(label, lambda t=task: _worker(client_py, "client", t, root, servers.on, bearer),
                    lambda t=task: _worker(client_py, "client", t, root, servers.off),
                    "shipyard server --no-auth", n=n)


def run(n: int) -> None:
    """All rows; ``BENCH_TRACKING_ONLY=runs,rest`` limits them (log_metric, log_batch, runs, search, rest,
    rest_auth)."""
    only = set(filter(None, os.environ.get("BENCH_TRACKING_ONLY", "").split(",")))
    root = WORK / "tracking"
    shutil.rmtree(root, ignore_errors=True)
    ours_py, peer_py = sys.executable, mlflow_env()[0]
    ours_dir, peer_dir = _project(root / "ours"), root / "mlflow"
    peer_dir.mkdir(parents=True)
    # first opens (schema creation) happen here, outside any timing
    if not only or "search" in only:
        _worker(ours_py, "ours", "seed", ours_dir)
        _worker(peer_py, "mlflow", "seed", peer_dir)

    for task, label in (("log_metric", "in-process log_metric x2000 (+flush)"),
                        ("log_batch", "in-process 10 x 1000-value batches"),
                        ("runs", "100 runs (start, 2 params, 1 metric, end)"),
                        ("search", "search 10k runs: filter + order_by, 1000 rows")):
        if only and task not in only:
            continue
        compare(label, lambda t=task: _worker(ours_py, "ours", t, ours_dir),
                lambda t=task: _worker(peer_py, "mlflow", t, peer_dir), "mlflow 3.17.2", n=n)

    client_py = mlflow_env()[0]
    if not only or "rest_auth" in only:
        _rest_auth(root, client_py, n)
    if only and "rest" not in only:
        return
    with Servers(root) as servers:
        for task, label in (("rest_log_metric", "REST log_metric, per call (MLflow client)"),
                            ("rest_log_batch", "REST 10 x log_batch(1000) (MLflow client)")):
            compare(label, lambda t=task: _worker(client_py, "client", t, root, servers.ours),
                    lambda t=task: _worker(client_py, "client", t, root, servers.peer),
                    "mlflow server 3.17.2", n=n)
    print(json.dumps({"note": "ratio = MLflow median / Shipyard median; both sides alternate"}))
