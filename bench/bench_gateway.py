"""Gateway throughput and latency vs a plain FastAPI app and ``mlflow models serve``.

Same model everywhere: LogisticRegression(max_iter=500) fitted on iris with named columns (fitted
deterministically in each venv with the same scikit-learn). Same body everywhere: MLflow's
``dataframe_split`` with 1 or 100 rows. Each server runs with one uvicorn worker pinned to core 0
(``taskset -c 0``); ``wrk`` runs pinned to core 1 (``-t1 -c C -d D --latency``). The sides alternate
within each cell, so machine load hits them alike.

- **shipyard**: the real gateway request path (routing table lookup, strategy, OIP/MLflow parsing,
  column check, predict + top-class score, Prometheus metrics, request log to Parquet off the path).
  The model is loaded from a skops file by a bench-only loader (``SkopsFileLoader``) rather than from
  a registry, which does not change the request path: like ``shipyard.models.LoadedModel`` it offers
  ``predict_array`` (the matrix fast path, names checked once by ``array_estimator``).
- **shipyard+batch**: the same with micro-batching on.
- **fastapi**: FastAPI + pydantic body, ``async def``, DataFrame + ``model.predict``, orjson-free.
- **mlflow**: ``mlflow models serve --env-manager local`` (mlflow 3.17.2 from bench/peers/mlflow.txt).

Run: ``python -m bench gateway`` (``GATEWAY_BENCH_SECONDS`` per run, default 5).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.harness import REPO, WORK, peer_bin

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.9, 5.6, 1.8]]
TRAIN = """
import pandas as pd
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
data = load_iris(as_frame=True)
x = data.data.set_axis({features!r}, axis=1)
y = pd.Series(data.target_names[data.target], name="species")
model = LogisticRegression(max_iter=500).fit(x, y)
"""


# --- the apps (imported by uvicorn in the server process) --------------------------------------

class SkopsFileLoader:
    """Bench-only loader: one skops file for every (name, version)."""

    def __init__(self, path: str) -> None:
        import skops.io as sio

        self.model = sio.load(path, trusted=sio.get_untrusted_types(file=path))

    def load(self, name: str, version: int) -> Any:
        from shipyard.models.flavors.sklearn import array_estimator

        model = self.model
        # what shipyard.models.LoadedModel does for an all-double signature (predict_array)
        matrix = array_estimator(model, FEATURES)
        assert matrix is not None, "the bench model should take matrices, as a registry-loaded one does"

        class Loaded:
            classes = model.classes_
            signature = {"inputs": [{"name": f, "type": "double"} for f in FEATURES]}

            @staticmethod
            def predict(frame: Any) -> Any:
                return model.predict(frame)

            @staticmethod
            def predict_proba(frame: Any) -> Any:
                return model.predict_proba(frame)

            @staticmethod
            def predict_array(array: Any) -> Any:
                return matrix.predict(array)

            @staticmethod
            def predict_proba_array(array: Any) -> Any:
                return matrix.predict_proba(array)

        return Loaded()


def gateway_factory() -> Any:
    from shipyard.serving.app import Gateway, GatewaySettings, create_app
    from shipyard.serving.follower import Follower, StaticSource
    from shipyard.serving.requestlog import RequestLog
    from shipyard.serving.routing import single_table

    log_dir = Path(os.environ["GW_LOG_DIR"])
    gateway = Gateway(Follower(StaticSource({"iris": single_table("iris", 1)}),
                               SkopsFileLoader(os.environ["GW_MODEL"]), poll_interval=1.0),
                      RequestLog(log_dir / "requests", log_dir / "feedback", flush_interval=1.0),
                      GatewaySettings(batching=os.environ.get("GW_BATCHING") == "1", max_batch_size=128,
                                      max_latency_ms=2.0))
    return create_app(gateway)


def fastapi_factory() -> Any:
    import pandas as pd
    import skops.io as sio
    from fastapi import FastAPI
    from pydantic import BaseModel

    path = os.environ["GW_MODEL"]
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))

    class Split(BaseModel):
        columns: list[str]
        data: list[list[float]]

    class Body(BaseModel):
        dataframe_split: Split

    app = FastAPI()

    async def invocations(body: Body) -> dict[str, Any]:
        frame = pd.DataFrame(body.dataframe_split.data, columns=body.dataframe_split.columns)
        return {"predictions": model.predict(frame).tolist()}

    invocations.__annotations__ = {"body": Body, "return": dict}  # real classes, not strings
    app.post("/invocations")(invocations)
    return app


# --- the runner --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {url}")
        try:
            if httpx.post(url, content=_body(1), headers={"content-type": "application/json"}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"server at {url} did not answer within {timeout} s")


def _body(rows: int) -> bytes:
    data = [ROWS[i % len(ROWS)] for i in range(rows)]
    return json.dumps({"dataframe_split": {"columns": FEATURES, "data": data}}).encode()


def _pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


def _wrk(url: str, body_file: Path, conc: int, seconds: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from wrk; errors (non-2xx) abort the bench."""
    script = body_file.with_suffix(".lua")
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*all")\nf:close()\n')
    out = subprocess.run([*_pin(1), "wrk", "-t1", f"-c{conc}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return rps, pct("50"), pct("99")


def _mlflow_model(work: Path) -> tuple[str, Path] | None:
    """The peer's mlflow binary and an MLflow-format model of the same fit, or None (said why)."""
    try:
        mlflow = peer_bin("mlflow")
    except Exception as exc:
        print(f"<!-- mlflow peer unavailable: {exc} -->")
        return None
    python = str(Path(mlflow).with_name("python"))
    target = work / "mlflow-model"
    if not target.exists():
        code = TRAIN.format(features=FEATURES) + f"import mlflow.sklearn\nmlflow.sklearn.save_model(model, {str(target)!r})\n"
        subprocess.run([python, "-c", code], check=True, capture_output=True)
    return mlflow, target


def run(n: int) -> None:
    seconds = int(os.environ.get("GATEWAY_BENCH_SECONDS", "5"))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    work = WORK / "gateway"
    work.mkdir(parents=True, exist_ok=True)
    model_path = work / "iris.skops"
    code = TRAIN.format(features=FEATURES) + f"import skops.io as sio\nsio.dump(model, {str(model_path)!r})\n"
    subprocess.run([sys.executable, "-c", code], check=True)
    logs = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    env = {**os.environ, "GW_MODEL": str(model_path), "GW_LOG_DIR": str(logs), "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    uvicorn = str(Path(sys.executable).with_name("uvicorn"))
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}

    def start(name: str, cmd: list[str], url: str, extra: dict[str, str] | None = None) -> None:
        proc = subprocess.Popen([*_pin(0), *cmd], cwd=REPO, env={**env, **(extra or {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        servers[name] = (proc, url)
        _wait(url, proc)

    common = ["--host", "127.0.0.1", "--workers", "1", "--log-level", "warning", "--no-access-log"]
    try:
        port = _free_port()
        start("shipyard", [uvicorn, "bench.bench_gateway:gateway_factory", "--factory", "--port", str(port), *common],
              f"http://127.0.0.1:{port}/invocations")
        port = _free_port()
        start("shipyard+batch", [uvicorn, "bench.bench_gateway:gateway_factory", "--factory", "--port", str(port),
                                 *common], f"http://127.0.0.1:{port}/invocations", {"GW_BATCHING": "1"})
        port = _free_port()
        start("fastapi", [uvicorn, "bench.bench_gateway:fastapi_factory", "--factory", "--port", str(port), *common],
              f"http://127.0.0.1:{port}/invocations")
        peer = _mlflow_model(work)
        if peer is not None:
            port = _free_port()
            start("mlflow", [peer[0], "models", "serve", "-m", str(peer[1]), "--env-manager", "local", "-h",
                             "127.0.0.1", "-p", str(port), "-w", "1"], f"http://127.0.0.1:{port}/invocations",
                  {"MLFLOW_TRACKING_URI": str(work / "mlruns"),
                   "PATH": f"{Path(peer[0]).parent}{os.pathsep}{os.environ.get('PATH', '')}"})
        results: dict[tuple[str, int, int], list[tuple[float, float, float]]] = {}
        for rows in (1, 100):
            body = work / f"body-{rows}.json"
            body.write_bytes(_body(rows))
            for conc in (1, 10, 64):
                for _ in range(max(1, n)):
                    for name, (_, url) in servers.items():
                        results.setdefault((name, rows, conc), []).append(_wrk(url, body, conc, seconds))
        print("\n| side | rows/request | concurrency | requests/s | p50 ms | p99 ms |\n|---|---|---|---|---|---|")
        for (name, rows, conc), samples in results.items():
            best = sorted(samples)[len(samples) // 2]
            print(f"| {name} | {rows} | {conc} | {best[0]:.0f} | {best[1]:.2f} | {best[2]:.2f} |", flush=True)
        print("\n| cell | shipyard / fastapi | shipyard+batch / fastapi | shipyard / mlflow | p99 shipyard vs mlflow |"
              "\n|---|---|---|---|---|")
        for rows in (1, 100):
            for conc in (1, 10, 64):
                def med(name: str, rows: int = rows, conc: int = conc) -> tuple[float, float, float] | None:
                    s = results.get((name, rows, conc))
                    return sorted(s)[len(s) // 2] if s else None

                ours, batch, fast, ml = med("shipyard"), med("shipyard+batch"), med("fastapi"), med("mlflow")
                vs_ml = f"{ours[0] / ml[0]:.2f}x" if ours and ml else "n/a"
                p99 = f"{ours[2]:.1f} / {ml[2]:.1f} ms" if ours and ml else "n/a"
                print(f"| {rows} row(s), c={conc} | {ours[0] / fast[0]:.2f}x | {batch[0] / fast[0]:.2f}x | {vs_ml} "
                      f"| {p99} |", flush=True)
        written = sum(1 for _ in (logs / "requests").rglob("part-*.parquet"))
        print(f"\n<!-- request log: {written} Parquet files written by the gateways during the run -->")
    finally:
        for proc, _ in servers.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        shutil.rmtree(logs, ignore_errors=True)
