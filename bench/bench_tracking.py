"""Tracking vs MLflow 3.17.2 (bench/peers/mlflow.txt), both sides alternating in one run.

In process (each side's own API on its default SQLite store): ``log_metric`` (2000 calls, ours
includes the final flush), ``log_metrics`` batches (10 x 1000 values), runs (100 x start, 2 params,
1 metric, end) and search over 10,000 runs with a filter and an order. Over REST, MLflow's own
client against ``shipyard server`` and ``mlflow server`` (both uvicorn on 127.0.0.1): median
latency of ``log_metric`` calls and ``log_batch`` (10 x 1000 values). Each sample is one worker
process (bench/tracking_worker.py) timing itself, so interpreter start-up is excluded both ways.
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

from bench.harness import BENCH, WORK, compare, ours_bin, peer_env

WORKER = str(BENCH / "tracking_worker.py")


def _worker(python: str, side: str, task: str, work: Path, uri: str = "") -> float:
    env = {**os.environ, "PYTHONPATH": "", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}
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


def run(n: int) -> None:
    """All rows; ``BENCH_TRACKING_ONLY=runs,rest`` limits them (log_metric, log_batch, runs, search, rest)."""
    only = set(filter(None, os.environ.get("BENCH_TRACKING_ONLY", "").split(",")))
    root = WORK / "tracking"
    shutil.rmtree(root, ignore_errors=True)
    ours_py, peer_py = sys.executable, str(peer_env("mlflow") / "bin" / "python")
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

    if only and "rest" not in only:
        return
    ours_port, peer_port = _free_port(), _free_port()
    rest_dir = _project(root / "rest-ours")
    ours_server = subprocess.Popen([ours_bin(), "server", "--port", str(ours_port)], cwd=rest_dir,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peer_server = subprocess.Popen(
        [str(peer_env("mlflow") / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(peer_port),
         "--backend-store-uri", f"sqlite:///{root}/mlflow-server.db", "--artifacts-destination", str(root / "mlartifacts")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait(f"http://127.0.0.1:{ours_port}/health", ours_server)
        _wait(f"http://127.0.0.1:{peer_port}/health", peer_server)
        for task, label in (("rest_log_metric", "REST log_metric, per call (MLflow client)"),
                            ("rest_log_batch", "REST 10 x log_batch(1000) (MLflow client)")):
            compare(label, lambda t=task: _worker(peer_py, "client", t, root, f"http://127.0.0.1:{ours_port}"),
                    lambda t=task: _worker(peer_py, "client", t, root, f"http://127.0.0.1:{peer_port}"),
                    "mlflow server 3.17.2", n=n)
    finally:
        for proc in (ours_server, peer_server):
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
    print(json.dumps({"note": "ratio = MLflow median / Shipyard median; both sides alternate"}))
