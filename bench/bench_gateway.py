"""Gateway throughput and latency vs a plain FastAPI app and ``mlflow models serve``, several scenarios.

Each server runs with one uvicorn worker pinned to core 0 (``taskset -c 0``); ``wrk`` runs pinned to
core 1 (``-t1 -c C -d D --latency``). The sides alternate within each cell, so machine load hits
them alike. ``GATEWAY_BENCH_SCENARIOS`` picks scenarios (default: all of them).

- **oip**: Open Inference Protocol v2 with tritonclient's own request: the body and
  ``Inference-Header-Content-Length`` header ``tritonclient.http`` builds for ``infer`` (one FP64
  tensor per feature in binary, output ``predict``), replayed by wrk against the gateway
  (``/v2/models/iris/versions/1/infer``) and a plain FastAPI app speaking OIP v2 with the binary
  extension; ``mlflow models serve`` gets the same rows as ``dataframe_split`` (it does not speak
  OIP). A short run with the real ``tritonclient.http`` client (threads, one client each) gives
  the throughput and p99 a Triton user sees. Model: LogisticRegression on iris.
- **forest**: the penguins example's model (``examples/penguins``: StandardScaler + OneHotEncoder +
  RandomForestClassifier(100 trees, depth 6), ~10 ms a predict), one-row ``dataframe_split``
  bodies with the example's six features, at c=1/10/64: the gateway with micro-batching (the
  default), without, and ``mlflow models serve``.
- **iris**: MLflow ``dataframe_split`` with 1 or 100 rows of iris to ``/invocations``: the gateway
  (batching on, the default, and off), FastAPI + pydantic + DataFrame, and mlflow.
- **auth**: the iris gateway with ``serve.auth: token`` (the enforcement point, a Bearer token
  checked against the in-memory token table) against the same gateway without auth, with
  micro-batching (the default) and without, each side in several server processes (two identical
  processes can differ by ~5 % for their whole life), started side by side; each server gets an
  unrecorded 1 s warm-up at each concurrency and is measured alone (the others stopped); each round
  runs every process once, in a rotating order, and the ratios are the median (and range) of the
  rounds' ratios of the sides' means, with each process's p99 and CPU per request (psutil); target:
  within 5 % in throughput and p99. ``GATEWAY_BENCH_AUTH_CONTROL=1`` runs the A/A control (auth off
  on both sides, the client still sends the token): its ratios are the bench's own noise.
- **auth-switch**: the same comparison inside each server process: the enforcement point is put
  on and taken off the request path by a signal between runs (bench only), and every round measures
  each process both ways back to back, in an alternating order. The two sides share the process's
  hash seed, memory layout, imports and warm-up, so the process-to-process spread of **auth** does
  not enter the ratios. Each run also reports the rows per model call its batcher made. Its p99 is
  shown two ways: the median of the pairs' ratios of a run's p99, and the pooled p99 (the p99 of all
  the requests of a side in the cell, from every run's latency distribution, with a bootstrap
  interval): at c=64 a 2-s run's p99 rests on its ~60 slowest requests, so one stall sets it.
  ``GATEWAY_BENCH_AUTH_CONTROL=1`` is its A/A control too; ``GATEWAY_BENCH_CONCURRENCY`` (e.g.
  ``64``) picks its concurrencies (default 1, 10, 64).
- **floor**: no gateway at all: a bare ASGI app that spins ~300 µs a request (the gateway's own
  CPU without batching) in the same uvicorn worker, at c=64, runs back to back and after idle, with
  wrk and then h2load, each run with its p99 and slowest request: what uvicorn, the kernel and the
  client alone do to a p99 here.
- **auth-asgi**: token auth's CPU a request in the gateway's ASGI app alone, called in the bench's
  process on one core (no sockets, uvicorn or client): auth on, auth off with the token still sent,
  and auth off, alternating.

The gateway is the real request path (routing table lookup, strategy, parsing, column check,
predict + top-class score, Prometheus metrics, request log to Parquet off the path). Models are
loaded from skops files by a bench-only loader (``SkopsFileLoader``), which does not change the
request path: like ``shipyard.models.LoadedModel`` it offers ``predict_array`` for all-double inputs.
mlflow is ``bench/peers/mlflow.txt``'s venv when built, else the same mlflow 3.17.2 of our dev venv.

Run: ``python -m bench gateway`` (``GATEWAY_BENCH_SECONDS`` per run, default 5). The client is wrk;
``GATEWAY_BENCH_CLIENT=h2load`` (``apt-get install nghttp2-client``) measures each run after one
second of warm-up on connections already open, from every request's own latency: wrk's runs at c=64
often start with a stall of the stack, not ours, that sets their p99 (the **floor** scenario).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.harness import PEERS, REPO, WORK, peer_bin

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
# The penguins example's model, as examples/penguins/src/train.py fits it with its params.yaml.
PENGUIN_TYPES = {"bill_length_mm": "double", "bill_depth_mm": "double", "flipper_length_mm": "double",
                 "body_mass_g": "double", "island": "string", "sex": "string"}
PENGUIN_ROW = [39.1, 18.7, 181.0, 3750.0, "Torgersen", "male"]
TRAIN_FOREST = """
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
raw = pd.read_csv({csv!r}).dropna()
features = {features!r}
categorical = ["island", "sex"]
numeric = [f for f in features if f not in categorical]
model = Pipeline([
    ("features", ColumnTransformer([("numeric", StandardScaler(), numeric),
                                    ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical)])),
    ("classifier", RandomForestClassifier(n_estimators=100, max_depth=6, random_state=42)),
]).fit(raw[features], raw["species"])
"""


# --- the apps (imported by uvicorn in the server process) --------------------------------------

class SkopsFileLoader:
    """Bench-only loader: one skops file for every (name, version), with typed input columns."""

    def __init__(self, path: str, types: dict[str, str]) -> None:
        import skops.io as sio

        self.model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        self.types = types

    def load(self, name: str, version: int) -> Any:
        from shipyard.models.flavors.sklearn import array_estimator

        model, types = self.model, self.types
        # what shipyard.models.LoadedModel does for an all-double signature (predict_array)
        matrix = array_estimator(model, list(types)) if set(types.values()) == {"double"} else None

        class Loaded:
            classes = model.classes_
            signature = {"inputs": [{"name": f, "type": t} for f, t in types.items()]}

            @staticmethod
            def predict(frame: Any) -> Any:
                return model.predict(frame)

            @staticmethod
            def predict_proba(frame: Any) -> Any:
                return model.predict_proba(frame)

        if matrix is None:
            return Loaded()

        class LoadedMatrix(Loaded):
            @staticmethod
            def predict_array(array: Any) -> Any:
                return matrix.predict(array)

            @staticmethod
            def predict_proba_array(array: Any) -> Any:
                return matrix.predict_proba(array)

        return LoadedMatrix()


def gateway_factory() -> Any:
    from shipyard.serving.app import Gateway, GatewaySettings, create_app
    from shipyard.serving.follower import Follower, StaticSource
    from shipyard.serving.requestlog import RequestLog
    from shipyard.serving.routing import single_table

    log_dir = Path(os.environ["GW_LOG_DIR"]) / str(os.getpid())
    name = os.environ.get("GW_NAME", "iris")
    types = json.loads(os.environ.get("GW_TYPES") or json.dumps(dict.fromkeys(FEATURES, "double")))
    # batching stays at the product default unless the bench turns it off
    batching = {"batching": False} if os.environ.get("GW_BATCHING") == "0" else {}
    gateway = Gateway(Follower(StaticSource({name: single_table(name, 1)}),
                               SkopsFileLoader(os.environ["GW_MODEL"], types), poll_interval=1.0),
                      RequestLog(log_dir / "requests", log_dir / "feedback", flush_interval=1.0),
                      GatewaySettings(**batching))
    app = create_app(gateway)
    if os.environ.get("GW_AUTH_STATE"):  # the auth scenario: serve.auth: token, as shipyard serve installs it
        from shipyard.server.security import secure_gateway
        from shipyard.store import open_store

        secure_gateway(app, open_store(Path(os.environ["GW_AUTH_STATE"])), AUTH_PROJECT)
        if os.environ.get("GW_AUTH_SWITCH"):
            _switchable(app)
    return app


def _enforcement_point(app: Any) -> tuple[Any, Any]:
    """Build ``app``'s middleware stack now (as Starlette does at the first request) and return the
    layer in front of the enforcement point and the enforcement point itself."""
    from shipyard.server.security import AuthMiddleware

    app.middleware_stack = app.build_middleware_stack()
    outer = app.middleware_stack
    while not isinstance(outer.app, AuthMiddleware):
        outer = outer.app
    return outer, outer.app


def _switchable(app: Any) -> None:
    """The auth-switch scenario: SIGUSR1 puts the enforcement point on the request path, SIGUSR2
    takes it off it (the app behind it then answers without credentials), so one process is
    measured both ways. Bench only: the product has no such switch."""
    outer, enforcement = _enforcement_point(app)
    signal.signal(signal.SIGUSR1, lambda *_: setattr(outer, "app", enforcement))
    signal.signal(signal.SIGUSR2, lambda *_: setattr(outer, "app", enforcement.app))


def floor_factory() -> Any:
    """The floor scenario's app: a bare ASGI app that reads the body and spins ``GW_FLOOR_SPIN_US``
    (300) µs of CPU, about the gateway's own a request without batching, then answers one fixed
    prediction: uvicorn, the kernel and wrk with nothing of ours."""
    spin = float(os.environ.get("GW_FLOOR_SPIN_US", "300")) / 1e6
    answer = b'{"predictions": ["setosa"]}'

    async def app(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
        if scope["type"] != "http":  # lifespan: nothing to start (uvicorn goes on without it)
            return
        await receive()
        until = time.perf_counter() + spin
        while time.perf_counter() < until:
            pass
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": answer})

    return app


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


def fastapi_oip_factory() -> Any:
    """The Triton-protocol baseline: plain FastAPI speaking OIP v2 with the binary tensor extension
    (what a team writes by hand): JSON header, FP64 inputs from the binary tail, DataFrame, predict,
    JSON outputs."""
    import numpy as np
    import orjson
    import pandas as pd
    import skops.io as sio
    from fastapi import FastAPI, Request, Response

    path = os.environ["GW_MODEL"]
    model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    app = FastAPI()

    async def infer(name: str, version: str, request: Request) -> Response:
        body = await request.body()
        size = int(request.headers.get("inference-header-content-length") or len(body))
        head = orjson.loads(body[:size])
        columns, offset = {}, size
        for tensor in head["inputs"]:
            n = (tensor.get("parameters") or {}).get("binary_data_size")
            if n is None:
                columns[tensor["name"]] = tensor["data"]
            else:
                columns[tensor["name"]] = np.frombuffer(body[offset:offset + n], dtype="<f8")
                offset += n
        preds = model.predict(pd.DataFrame(columns))
        out = {"model_name": name, "model_version": version, "outputs": [
            {"name": "predict", "datatype": "BYTES", "shape": [len(preds)], "data": preds.tolist()}]}
        return Response(orjson.dumps(out), media_type="application/json")

    infer.__annotations__ = {"name": str, "version": str, "request": Request, "return": Response}
    app.post("/v2/models/{name}/versions/{version}/infer")(infer)
    return app


# --- the runner --------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, proc: subprocess.Popen[bytes], body: bytes, headers: dict[str, str], timeout: float = 180) -> None:
    import httpx

    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {url}")
        try:
            answer = httpx.post(url, content=body, headers=headers, timeout=5)
            if answer.status_code == 200:
                return
            raise RuntimeError(f"{url} answered {answer.status_code}: {answer.text[:500]}")
        except httpx.HTTPError:
            pass
        time.sleep(0.3)  # a server still starting: nothing to wait on but its socket
    raise RuntimeError(f"server at {url} did not answer within {timeout} s")


def _split_body(columns: list[str], rows: list[list[Any]]) -> bytes:
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}}).encode()


def _triton_body(rows: list[list[float]]) -> tuple[bytes, int]:
    """Exactly what tritonclient.http sends for ``infer`` with binary inputs and output ``predict``."""
    import numpy as np
    import tritonclient.http as triton
    from tritonclient.http._utils import _get_inference_request

    array = np.asarray(rows, dtype=np.float64)
    inputs = []
    for i, name in enumerate(FEATURES):
        tensor = triton.InferInput(name, [len(rows)], "FP64")
        tensor.set_data_from_numpy(array[:, i].copy())
        inputs.append(tensor)
    body, size = _get_inference_request(inputs=inputs, request_id="", outputs=[triton.InferRequestedOutput("predict")],
                                        sequence_id=0, sequence_start=False, sequence_end=False, priority=0,
                                        timeout=None, custom_parameters=None)
    return body, size


def _pin(core: int) -> list[str]:
    return ["taskset", "-c", str(core)] if shutil.which("taskset") and (os.cpu_count() or 1) > 1 else []


# a run's latency distribution, as wrk's quantiles (%): every 0.1 up to 99.9, then every 0.001 to 99.999
QUANTILES = [i / 10 for i in range(1, 1000)] + [round(99.9 + i / 1000, 3) for i in range(1, 100)]
# the share of a run's requests each quantile stands for (up to it from the one before), then the slowest's
QUANTILE_SHARES = tuple((b - a) / 100 for a, b in zip([0.0, *QUANTILES], [*QUANTILES, 100.0], strict=True))


@dataclass(frozen=True)
class Latencies:
    """One run's latency distribution: its request count, the µs at each of ``QUANTILES``, and the
    slowest request's µs."""

    requests: int
    us: tuple[int, ...]
    slowest: int

    def masses(self) -> list[tuple[int, float]]:
        """(µs, requests) points: each quantile stands for the requests up to it from the one
        before, and the slowest request for those above the last quantile (``QUANTILE_SHARES``)."""
        return [(us, self.requests * share) for us, share in zip((*self.us, self.slowest), QUANTILE_SHARES,
                                                                   strict=True)]


def _wrk_run(url: str, body_file: Path, headers: dict[str, str], conc: int,
             seconds: int) -> tuple[tuple[float, float, float], Latencies]:
    """(requests/s, p50 ms, p99 ms) and the run's latency distribution (``Latencies``), from wrk;
    errors (non-2xx) abort the bench."""
    script = body_file.with_suffix(".lua")
    dump = body_file.with_suffix(".latencies")
    lines = ['wrk.method = "POST"', *(f'wrk.headers["{k}"] = "{v}"' for k, v in headers.items()),
             f'local f = io.open("{body_file}", "rb")', 'wrk.body = f:read("*all")', "f:close()",
             "done = function(summary, latency, requests)", f'  local out = io.open("{dump}", "w")',
             '  out:write(summary.requests, "\\n", latency.max, "\\n")',
             f'  for _, p in ipairs({{{", ".join(f"{q:g}" for q in QUANTILES)}}}) do '
             'out:write(latency:percentile(p), "\\n") end', "  out:close()", "end"]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run([*_pin(1), "wrk", "-t1", f"-c{conc}", f"-d{seconds}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"non-2xx answers from {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        value, unit = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    requests, slowest, *us = (int(float(x)) for x in dump.read_text().split())
    return (rps, pct("50"), pct("99")), Latencies(requests, tuple(us), slowest)


WARM_UP_S = 1  # h2load (whole seconds: it refuses "1.0"): connections made and first requests sent before the measured window


def _h2load_run(url: str, body_file: Path, headers: dict[str, str], conc: int,
                seconds: int) -> tuple[tuple[float, float, float], Latencies]:
    """As ``_wrk_run``, from h2load (HTTP/1.1, ``conc`` connections on one thread) with
    ``WARM_UP_S`` of warm-up: the window measures connections already open, and the latencies are
    every measured request's own (its log), not a histogram's."""
    import numpy as np

    log = body_file.with_suffix(".h2load.log")
    log.unlink(missing_ok=True)
    cmd = [*_pin(1), "h2load", "--h1", "-t1", f"-c{conc}", "-m1", f"-D{seconds}", f"--warm-up-time={WARM_UP_S}",
           "-d", str(body_file), *(part for k, v in headers.items() for part in ("-H", f"{k.lower()}: {v}")),
           f"--log-file={log}", url]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rows = [line.split("\t") for line in log.read_text().splitlines() if line]
    # a request the end of the window cut short is logged without a status (below 100): left out
    if not rows or any(int(row[1]) >= 100 and row[1] != "200" for row in rows):
        raise RuntimeError(f"h2load: no answers or non-200 answers from {url}:\n{out}")
    rows = [row for row in rows if row[1] == "200"]
    us = np.asarray([int(row[2]) for row in rows], dtype=np.float64)
    at = np.percentile(us, QUANTILES)
    return ((len(rows) / seconds, float(np.percentile(us, 50)) / 1000, float(np.percentile(us, 99)) / 1000),
            Latencies(len(rows), tuple(int(x) for x in at), int(us.max())))


def _client() -> str:
    """The load client ``GATEWAY_BENCH_CLIENT`` names: ``wrk`` (the default) or ``h2load``."""
    client = os.environ.get("GATEWAY_BENCH_CLIENT", "wrk")
    if client not in ("wrk", "h2load"):
        raise SystemExit(f"GATEWAY_BENCH_CLIENT={client!r}: the clients are wrk and h2load")
    if client == "h2load" and shutil.which("h2load") is None:
        raise SystemExit("GATEWAY_BENCH_CLIENT=h2load: h2load is not installed (apt-get install -y nghttp2-client)")
    return client


def _load_run(url: str, body_file: Path, headers: dict[str, str], conc: int,
              seconds: int) -> tuple[tuple[float, float, float], Latencies]:
    """One measured run with ``_client()``."""
    return (_h2load_run if _client() == "h2load" else _wrk_run)(url, body_file, headers, conc, seconds)


def _wrk(url: str, body_file: Path, headers: dict[str, str], conc: int, seconds: int) -> tuple[float, float, float]:
    """(requests/s, p50 ms, p99 ms) from wrk (``_wrk_run``)."""
    return _wrk_run(url, body_file, headers, conc, seconds)[0]


def _pooled_percentile(runs: list[Latencies], p: float) -> float:
    """The ``p`` % latency (ms) of all the requests of ``runs`` together, as if one long run: a run's
    p99 at c=64 rests on its ~60 slowest requests, which one stall can set."""
    import numpy as np

    us = np.concatenate([np.asarray(run.us, dtype=np.float64) for run in runs])
    mass = np.concatenate([np.asarray([m for _, m in run.masses()]) for run in runs])
    order = np.argsort(us, kind="stable")
    seen = np.cumsum(mass[order])
    at = min(int(np.searchsorted(seen, seen[-1] * p / 100)), len(order) - 1)
    return float(us[order][at]) / 1000


def _pooled_ratio(on: list[Sample], off: list[Sample], p: float = 99.0) -> str:
    """``12.3 / 12.0 ms, 1.02x (0.99-1.05)``: the ``p`` % latency of all the requests of each side
    (``_pooled_percentile``), their ratio, and its 5-95 % bootstrap interval (resampling the pairs
    of runs, seeded, so a rerun on the same figures prints the same interval)."""
    import random

    pairs = [(a.latencies, b.latencies) for a, b in zip(on, off, strict=True)]
    if any(a is None or b is None for a, b in pairs):
        return "-"

    def ratio(chosen: list[tuple[Any, Any]]) -> float:
        return _pooled_percentile([a for a, _ in chosen], p) / _pooled_percentile([b for _, b in chosen], p)

    draw = random.Random(0)
    boot = sorted(ratio([draw.choice(pairs) for _ in pairs]) for _ in range(BOOTSTRAP_DRAWS))
    low, high = boot[BOOTSTRAP_DRAWS // 20], boot[BOOTSTRAP_DRAWS - 1 - BOOTSTRAP_DRAWS // 20]
    on_ms, off_ms = _pooled_percentile([a for a, _ in pairs], p), _pooled_percentile([b for _, b in pairs], p)
    return f"{on_ms:.1f} / {off_ms:.1f} ms, **{on_ms / off_ms:.3f}x** ({low:.2f}-{high:.2f})"


BOOTSTRAP_DRAWS = 400


def _mlflow_bin() -> str:
    """The peer venv's mlflow when built, else the dev venv's (the same mlflow 3.17.2)."""
    if (PEERS / "mlflow" / ".installed").exists():
        return peer_bin("mlflow")
    print("<!-- mlflow: bench/peers/mlflow venv not built; using the dev venv's mlflow 3.17.2 -->")
    return str(Path(sys.executable).with_name("mlflow"))


def _models(work: Path, mlflow: str) -> dict[str, tuple[Path, Path]]:
    """{scenario model: (skops file, MLflow model folder)}, each fitted the same way in both venvs."""
    csv = REPO / "examples" / "penguins" / "data" / "raw.csv"
    fits = {"iris": TRAIN.format(features=FEATURES),
            "forest": TRAIN_FOREST.format(csv=str(csv), features=list(PENGUIN_TYPES))}
    out = {}
    for name, code in fits.items():
        skops, folder = work / f"{name}.skops", work / f"{name}-mlflow"
        subprocess.run([sys.executable, "-c", code + f"import skops.io as sio\nsio.dump(model, {str(skops)!r})\n"],
                       check=True)
        if not (folder / "MLmodel").exists():
            shutil.rmtree(folder, ignore_errors=True)
            python = str(Path(mlflow).with_name("python"))
            # MLflow 3 saves with skops and asks to trust a forest's tree type explicitly
            save = (f"import mlflow.sklearn\nmlflow.sklearn.save_model(model, {str(folder)!r}, "
                    "skops_trusted_types=['sklearn.tree._tree.Tree'])\n")
            subprocess.run([python, "-c", code + save], check=True, capture_output=True)
        out[name] = (skops, folder)
    return out


class Servers:
    """The servers of one scenario, each one uvicorn worker pinned to core 0; stopped on exit."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, tuple[subprocess.Popen[bytes], str]] = {}

    def start(self, name: str, cmd: list[str], path: str, probe: tuple[bytes, dict[str, str]],
              extra: dict[str, str] | None = None) -> None:
        port = _free_port()
        cmd = [part.replace("{port}", str(port)) for part in cmd]
        proc = subprocess.Popen([*_pin(0), *cmd], cwd=REPO, env={**self.env, **(extra or {})},
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        url = f"http://127.0.0.1:{port}{path}"
        self.procs[name] = (proc, url)
        _wait(url, proc, *probe)

    def uvicorn(self, name: str, factory: str, path: str, probe: tuple[bytes, dict[str, str]],
                extra: dict[str, str] | None = None) -> None:
        uvicorn = str(Path(sys.executable).with_name("uvicorn"))
        self.start(name, [uvicorn, f"bench.bench_gateway:{factory}", "--factory", "--port", "{port}", "--host",
                          "127.0.0.1", "--workers", "1", "--log-level", "warning", "--no-access-log"],
                   path, probe, extra)

    def mlflow(self, mlflow: str, folder: Path, probe: tuple[bytes, dict[str, str]], work: Path) -> None:
        self.start("mlflow", [mlflow, "models", "serve", "-m", str(folder), "--env-manager", "local", "-h",
                              "127.0.0.1", "-p", "{port}", "-w", "1"], "/invocations", probe,
                   {"MLFLOW_TRACKING_URI": str(work / "mlruns"),
                    "PATH": f"{Path(mlflow).parent}{os.pathsep}{os.environ.get('PATH', '')}"})

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: Any) -> None:
        for proc, _ in self.procs.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)


Cell = tuple[float, float, float]
JSON = {"Content-Type": "application/json"}


@dataclass
class Sample:
    """One wrk run against one server: (requests/s, p50 ms, p99 ms) and the server's CPU
    microseconds per request over the run (user + system of all its threads)."""

    cell: Cell
    cpu_us: float
    latencies: Latencies | None = None  # the run's distribution (``_sample``; None in a mean of runs)


def _samples(servers: Servers, bodies: dict[str, tuple[Path, dict[str, str]]], n: int, seconds: int,
             concurrency: tuple[int, ...] = (1, 10, 64), warmup: bool = False,
             alone: bool = False) -> dict[tuple[str, int], list[Sample]]:
    """wrk on every server at every concurrency, n rounds; within a round the servers run one after
    another in an order that rotates from round to round, so the i-th samples of two servers were
    taken seconds apart (pairs that share the machine's state at that moment). ``warmup``: each
    server first gets one unrecorded 1 s run at each concurrency (its first requests at a new
    concurrency: the interpreter's specialisation, lazy imports, first-time caches). ``alone``: the
    other servers are stopped (SIGSTOP) while one is measured, so their timers (request-log flush,
    follower poll) do not wake on its core and preempt it: with a dozen servers on one core, that
    preemption, not the server, set the p99."""
    samples: dict[tuple[str, int], list[Sample]] = {}
    names = list(servers.procs)
    for conc in concurrency:
        if warmup:
            for name in names:
                with _alone(servers, name, alone):
                    _wrk(servers.procs[name][1], *bodies[name], conc, 1)
        for i in range(max(1, n)):
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                with _alone(servers, name, alone):
                    samples.setdefault((name, conc), []).append(_sample(servers, name, bodies, conc, seconds))
    return samples


def _sample(servers: Servers, name: str, bodies: dict[str, tuple[Path, dict[str, str]]], conc: int,
            seconds: int) -> Sample:
    import httpx

    proc, url = servers.procs[name]
    body, headers = bodies[name]
    # the server's first request after a pause, unmeasured: a token-auth server stopped for longer
    # than its token table's interval (``_alone``) reloads the table on it, which steady traffic
    # never waits for (it reloads ahead, on a background thread, every 24 s)
    httpx.post(url, content=body.read_bytes(), headers=headers, timeout=30)
    process = psutil.Process(proc.pid)
    before = [sum(process.cpu_times()[:2])]
    warm_up = None
    if _client() == "h2load":  # its window opens after its warm-up: so does the CPU's
        warm_up = threading.Timer(WARM_UP_S, lambda: before.__setitem__(0, sum(process.cpu_times()[:2])))
        warm_up.start()
    cell, latencies = _load_run(url, body, headers, conc, seconds)
    if warm_up is not None:
        warm_up.join()
    used = sum(process.cpu_times()[:2]) - before[0]
    return Sample(cell, 1e6 * used / (cell[0] * seconds), latencies)


@contextmanager
def _alone(servers: Servers, name: str, active: bool) -> Iterator[None]:
    """Within the block, only ``name``'s server runs (``active``: the others are stopped); after it, all run."""

    def signal_others(sig: int) -> None:
        for other, (proc, _) in servers.procs.items():
            if other != name:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, sig)

    if not active:
        yield
        return
    signal_others(signal.SIGSTOP)
    try:
        time.sleep(0.05)  # let a wake-up already under way on the core finish
        yield
    finally:
        signal_others(signal.SIGCONT)


def _cells(servers: Servers, bodies: dict[str, tuple[Path, dict[str, str]]], n: int, seconds: int,
           concurrency: tuple[int, ...] = (1, 10, 64)) -> dict[tuple[str, int], Cell]:
    """The median run (by throughput) of each server at each concurrency, from ``_samples``."""
    return {key: sorted(x.cell for x in runs)[len(runs) // 2]
            for key, runs in _samples(servers, bodies, n, seconds, concurrency).items()}


def _table(title: str, cells: dict[tuple[str, int], Cell], base: str, others: list[str]) -> None:
    print(f"\n**{title}**\n\n| side | concurrency | requests/s | p50 ms | p99 ms |\n|---|---|---|---|---|")
    for (name, conc), (rps, p50, p99) in cells.items():
        print(f"| {name} | {conc} | {rps:.0f} | {p50:.2f} | {p99:.2f} |")
    header = " | ".join(f"{base} / {o}" for o in others)
    print(f"\n| concurrency | {header} |\n|---|" + "---|" * len(others))
    for conc in sorted({c for _, c in cells}):
        ratios = [f"{cells[(base, conc)][0] / cells[(o, conc)][0]:.2f}x" if (o, conc) in cells else "n/a"
                  for o in others]
        print(f"| {conc} | " + " | ".join(ratios) + " |", flush=True)


def _triton_client_load(url: str, conc: int, seconds: float) -> Cell:
    """The real tritonclient.http ``infer`` from ``conc`` threads (one client each), pinned to core 1."""
    import numpy as np
    import tritonclient.http as triton

    host = url.split("//", 1)[1].split("/", 1)[0]
    array = np.asarray([ROWS[0]], dtype=np.float64)
    latencies: list[list[float]] = [[] for _ in range(conc)]
    deadline = time.perf_counter() + seconds

    def work(i: int) -> None:
        client = triton.InferenceServerClient(host, connection_timeout=30, network_timeout=30)
        inputs = []
        for j, name in enumerate(FEATURES):
            tensor = triton.InferInput(name, [1], "FP64")
            tensor.set_data_from_numpy(array[:, j].copy())
            inputs.append(tensor)
        outputs = [triton.InferRequestedOutput("predict")]
        while (start := time.perf_counter()) < deadline:
            client.infer("iris", inputs, model_version="1", outputs=outputs)
            latencies[i].append((time.perf_counter() - start) * 1000)
        client.close()

    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if before is not None and len(before) > 1:
        os.sched_setaffinity(0, {1})
    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(conc)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        if before is not None and len(before) > 1:
            os.sched_setaffinity(0, before)
    import numpy as np

    flat = np.asarray([x for lat in latencies for x in lat])
    return len(flat) / seconds, float(np.percentile(flat, 50)), float(np.percentile(flat, 99))


def _scenario_oip(env: dict[str, str], work: Path, models: dict[str, tuple[Path, Path]], mlflow: str, n: int,
                  seconds: int) -> None:
    triton_body, size = _triton_body([ROWS[0]])
    oip_file, split_file = work / "triton-body.bin", work / "split-1.json"
    oip_file.write_bytes(triton_body)
    split_file.write_bytes(_split_body(FEATURES, [ROWS[0]]))
    oip_headers = {"Inference-Header-Content-Length": str(size)}
    skops, folder = models["iris"]
    with Servers({**env, "GW_MODEL": str(skops)}) as servers:
        path = "/v2/models/iris/versions/1/infer"
        servers.uvicorn("shipyard", "gateway_factory", path, (triton_body, oip_headers))
        servers.uvicorn("fastapi-oip", "fastapi_oip_factory", path, (triton_body, oip_headers))
        servers.mlflow(mlflow, folder, (split_file.read_bytes(), JSON), work)
        bodies = {"shipyard": (oip_file, oip_headers), "fastapi-oip": (oip_file, oip_headers),
                  "mlflow": (split_file, JSON)}
        cells = _cells(servers, bodies, n, seconds)
        _table("OIP v2, tritonclient's request (1 row, binary FP64 inputs) replayed by wrk; mlflow: the same row "
               "as dataframe_split", cells, "shipyard", ["fastapi-oip", "mlflow"])
        print("\n**the real tritonclient.http client** (threads, one client each)\n\n"
              "| side | concurrency | requests/s | p50 ms | p99 ms |\n|---|---|---|---|---|")
        for conc in (1, 10):
            for name in ("shipyard", "fastapi-oip"):
                rps, p50, p99 = _triton_client_load(servers.procs[name][1], conc, seconds)
                print(f"| {name} | {conc} | {rps:.0f} | {p50:.2f} | {p99:.2f} |", flush=True)


def _scenario_forest(env: dict[str, str], work: Path, models: dict[str, tuple[Path, Path]], mlflow: str, n: int,
                     seconds: int) -> None:
    body = _split_body(list(PENGUIN_TYPES), [PENGUIN_ROW])
    body_file = work / "penguin-1.json"
    body_file.write_bytes(body)
    skops, folder = models["forest"]
    gw = {"GW_NAME": "penguins", "GW_TYPES": json.dumps(PENGUIN_TYPES)}
    with Servers({**env, "GW_MODEL": str(skops)}) as servers:
        servers.uvicorn("shipyard", "gateway_factory", "/invocations", (body, JSON), gw)
        servers.uvicorn("shipyard-no-batching", "gateway_factory", "/invocations", (body, JSON),
                        {**gw, "GW_BATCHING": "0"})
        servers.mlflow(mlflow, folder, (body, JSON), work)
        bodies = dict.fromkeys(servers.procs, (body_file, JSON))
        cells = _cells(servers, bodies, n, seconds)
    _table("penguins random forest (examples/penguins), 1-row dataframe_split; shipyard = batching on (default)",
           cells, "shipyard", ["shipyard-no-batching", "mlflow"])


def _scenario_iris(env: dict[str, str], work: Path, models: dict[str, tuple[Path, Path]], mlflow: str, n: int,
                   seconds: int) -> None:
    skops, folder = models["iris"]
    for rows in (1, 100):
        body = _split_body(FEATURES, [ROWS[i % len(ROWS)] for i in range(rows)])
        body_file = work / f"body-{rows}.json"
        body_file.write_bytes(body)
        with Servers({**env, "GW_MODEL": str(skops)}) as servers:
            servers.uvicorn("shipyard", "gateway_factory", "/invocations", (body, JSON))
            servers.uvicorn("shipyard-no-batching", "gateway_factory", "/invocations", (body, JSON),
                            {"GW_BATCHING": "0"})
            servers.uvicorn("fastapi", "fastapi_factory", "/invocations", (body, JSON))
            servers.mlflow(mlflow, folder, (body, JSON), work)
            cells = _cells(servers, dict.fromkeys(servers.procs, (body_file, JSON)), n, seconds)
        _table(f"iris LogisticRegression, dataframe_split with {rows} row(s)", cells, "shipyard",
               ["shipyard-no-batching", "fastapi", "mlflow"])


FLOOR_RUNS = 8  # runs of the floor scenario a schedule


def _scenario_floor(env: dict[str, str], work: Path, models: dict[str, tuple[Path, Path]], mlflow: str, n: int,
                    seconds: int) -> None:
    """The floor under every c=64 p99 here: ``floor_factory``'s bare app (no gateway, no auth, no
    request log) in one uvicorn worker, wrk at c=64, ``FLOOR_RUNS`` runs back to back and then
    as many after 5 s of idle each, every run with its p50, p99 and slowest request; then the same
    with h2load (``_h2load_run``: its window starts after a warm-up, on open connections) when it
    is installed. A run that starts with a stall of the stack (not ours) shows it here too, so a
    p99 at c=64 that one such run sets is the stack's, not the gateway's."""
    body = b"{}"
    body_file = work / "body-floor.json"
    body_file.write_bytes(body)
    with Servers(env) as servers:
        servers.uvicorn("floor", "floor_factory", "/", (body, JSON))
        url = servers.procs["floor"][1]
        _wrk(url, body_file, JSON, 64, 1)  # warm-up, unrecorded
        print(f"\n**The stack's floor at c=64: a bare ASGI app spinning "
              f"{os.environ.get('GW_FLOOR_SPIN_US', '300')} µs a request in one uvicorn worker** ({seconds} s runs; "
              f"load average {os.getloadavg()[0]:.1f})\n")
        print("| client | start | run | requests/s | p50 ms | p99 ms | slowest ms |\n|---|---|---|---|---|---|---|")
        runs = {"wrk": _wrk_run, "h2load": _h2load_run} if shutil.which("h2load") else {"wrk": _wrk_run}
        for client, run in runs.items():
            for pause, label in ((0.0, "back to back"), (5.0, "after 5 s idle")):
                for i in range(FLOOR_RUNS):
                    time.sleep(pause)  # the schedule itself: idle between runs, or none
                    (rps, p50, p99), latencies = run(url, body_file, JSON, 64, seconds)
                    print(f"| {client} | {label} | {i + 1} | {rps:.0f} | {p50:.1f} | {p99:.1f} "
                          f"| {latencies.slowest / 1000:.0f} |", flush=True)


AUTH_PROJECT = "bench"


def _auth_store(work: Path) -> tuple[Path, str]:
    """A fresh store with the project ``bench`` and a token with gateway:invoke on it (a viewer's)."""
    from shipyard.auth import credentials, service
    from shipyard.store import open_store

    state = work / "auth-state"
    shutil.rmtree(state, ignore_errors=True)
    store = open_store(state)
    try:
        service.create_project(store, AUTH_PROJECT, actor="bench")
        service.create_user(store, "app", actor="bench")
        service.grant(store, AUTH_PROJECT, "app", "viewer", actor="bench")
        token = credentials.create_token(store, "app", scopes=["gateway:invoke"], actor="bench")[0]
    finally:
        store.close()
    return state, token


def _auth_options() -> tuple[int, bool]:
    """The auth scenarios' settings: server processes a side, and whether this is the A/A control."""
    return (int(os.environ.get("GATEWAY_BENCH_AUTH_INSTANCES", AUTH_INSTANCES)),
            os.environ.get("GATEWAY_BENCH_AUTH_CONTROL") == "1")


def _auth_request(work: Path) -> tuple[bytes, Path, Path, dict[str, str]]:
    """What the auth scenarios send: the 1-row iris body (bytes, and a file for wrk), the fresh
    store that holds its token (``_auth_store``), and the headers with that token as a Bearer."""
    body = _split_body(FEATURES, [ROWS[0]])
    body_file = work / "body-auth.json"
    body_file.write_bytes(body)
    state, token = _auth_store(work)
    return body, body_file, state, {**JSON, "Authorization": f"Bearer {token}"}


AUTH_INSTANCES = 3  # server processes a side: one process's layout (hash seed, addresses) can bias it by ~5 %
AUTH_SIDES = {"token-auth": (True, True), "no-auth": (False, True),  # name: (serve.auth token?, micro-batching?)
              "token-auth, batching off": (True, False), "no-auth, batching off": (False, False)}


def _scenario_auth(env: dict[str, str], work: Path, models: dict[str, tuple[Path, Path]], mlflow: str, n: int,
                   seconds: int) -> None:
    """The same gateway with ``serve.auth: token`` (Bearer token, in-memory token table) and without,
    batching on (the default) and off. Each side runs in ``GATEWAY_BENCH_AUTH_INSTANCES`` server
    processes (3): two identical servers can differ by ~5 % for their whole life (a process's hash
    seed and memory layout), which one pair of processes would report as the cost of auth."""
    # the A/A control: the token-auth sides run without auth (the client still sends the token), so
    # every ratio measures the bench's own noise and bias, not auth
    instances, control = _auth_options()
    skops, _ = models["iris"]
    body, body_file, state, bearer = _auth_request(work)
    servers_of = {side: [f"{side} #{i + 1}" for i in range(instances)] for side in AUTH_SIDES}
    bodies = {name: (body_file, bearer if AUTH_SIDES[side][0] else JSON)
              for side, names in servers_of.items() for name in names}
    with Servers({**env, "GW_MODEL": str(skops)}) as servers:
        for i in range(instances):  # started side by side, so no side is all older or all newer
            for side, (auth, batching) in AUTH_SIDES.items():
                name = servers_of[side][i]
                extra = {}
                if auth and not control:
                    # a store of its own: a stopped server (``alone``) must not hold a lock another's reload waits on
                    own = work / f"auth-state-{i}-batching-{'on' if batching else 'off'}"
                    shutil.rmtree(own, ignore_errors=True)
                    shutil.copytree(state, own)
                    extra["GW_AUTH_STATE"] = str(own)
                servers.uvicorn(name, "gateway_factory", "/invocations", (body, bodies[name][1]),
                                {**extra, **({} if batching else {"GW_BATCHING": "0"})})
        samples = _samples(servers, bodies, n, seconds, warmup=True, alone=True)
    print(f"\n**iris LogisticRegression, 1-row dataframe_split: serve.auth token vs none"
          f"{' (A/A control: auth off on both sides)' if control else ''}** ({instances} server "
          f"processes a side, {max(1, n)} rounds of {seconds} s per process and concurrency, processes rotating "
          f"within each round; load average {os.getloadavg()[0]:.1f}). A round's ratio compares the means of the "
          "two sides' processes; shown: the median and range over the rounds, and each process's median "
          "requests/s.\n")
    print("| concurrency | pair | requests/s per process (median) | throughput ratio | p99 ms per process (median) "
          "| p99 ratio | CPU µs a request (median) | CPU ratio |\n|---|---|---|---|---|---|---|---|")
    for conc in sorted({c for _, c in samples}):
        for on, off in (("token-auth", "no-auth"), ("token-auth, batching off", "no-auth, batching off")):
            a = _pooled(samples, servers_of[on], conc)
            b = _pooled(samples, servers_of[off], conc)
            each = " / ".join(" ".join(f"{statistics.median(x.cell[0] for x in samples[(name, conc)]):.0f}" for name in servers_of[side])
                              for side in (on, off))
            p99s = " / ".join(" ".join(f"{statistics.median(x.cell[2] for x in samples[(name, conc)]):.1f}" for name in servers_of[side])
                              for side in (on, off))
            print(f"| {conc} | {on} / {off} | {each} | {_paired(a, b, lambda x: x.cell[0])} | {p99s} "
                  f"| {_paired(a, b, lambda x: x.cell[2])} | {statistics.median(x.cpu_us for x in a):.0f} / "
                  f"{statistics.median(x.cpu_us for x in b):.0f} | {_paired(a, b, lambda x: x.cpu_us)} |", flush=True)


def _pooled(samples: dict[tuple[str, int], list[Sample]], names: list[str], conc: int) -> list[Sample]:
    """Per round, the mean over ``names``' processes of their sample (throughput, latencies, CPU)."""
    rounds = zip(*(samples[(name, conc)] for name in names), strict=True)
    return [Sample(tuple(sum(x.cell[k] for x in group) / len(group) for k in range(3)),  # type: ignore[arg-type]
                   sum(x.cpu_us for x in group) / len(group)) for group in rounds]


def _paired(a: list[Sample], b: list[Sample], measure: Callable[[Sample], float]) -> str:
    """``1.02x (0.95-1.10)``: the median and range of measure(a[i]) / measure(b[i]) over the rounds."""
    return _ratios([measure(x) for x in a], [measure(y) for y in b])


def _ratios(a: list[float], b: list[float], digits: int = 2) -> str:
    """``1.020x (0.95-1.10)``: the median of a[i] / b[i], and their range to ``digits`` places."""
    ratios = sorted(x / y for x, y in zip(a, b, strict=True))
    return f"**{statistics.median(ratios):.3f}x** ({ratios[0]:.{digits}f}-{ratios[-1]:.{digits}f})"


def _switch(servers: Servers, name: str, on: bool, body: bytes) -> None:
    """Turn ``name``'s enforcement point on or off, and wait until a request without credentials
    shows it (401 with it, 200 without): the signal's handler runs at the process's next request."""
    import httpx

    proc, url = servers.procs[name]
    os.kill(proc.pid, signal.SIGUSR1 if on else signal.SIGUSR2)
    want = 401 if on else 200
    for _ in range(100):
        if httpx.post(url, content=body, headers=JSON, timeout=5).status_code == want:
            return
        time.sleep(0.01)
    raise RuntimeError(f"{name}: auth still {'off' if on else 'on'} after the signal")


def _batch_rows(url: str) -> tuple[float, float]:
    """The gateway's micro-batching counters from /metrics: (rows, model calls) so far."""
    import httpx

    text = httpx.get(url.replace("/invocations", "/metrics"), timeout=5).text
    total = [sum(float(v) for v in re.findall(rf"^shipyard_batch_rows_{k}{{[^}}]*}} (\S+)$", text, re.M))
             for k in ("sum", "count")]
    return total[0], total[1]


@dataclass
class SwitchRun:
    """One wrk run of the auth-switch scenario, with the rows per model call the batcher made in it."""

    sample: Sample
    rows_per_call: float


AUTH_SWITCH_MODES = {"batching on": {}, "batching off": {"GW_BATCHING": "0"}}


def _concurrency() -> tuple[int, ...]:
    """The auth-switch scenario's concurrencies: ``GATEWAY_BENCH_CONCURRENCY`` (e.g. ``64``), else 1, 10, 64."""
    return tuple(int(c) for c in os.environ.get("GATEWAY_BENCH_CONCURRENCY", "1,10,64").split(","))


def _switch_run(servers: Servers, name: str, on: bool, control: bool, body: bytes, body_file: Path,
                bearer: dict[str, str], conc: int, seconds: int) -> SwitchRun:
    """Switch ``name`` (in the control: off either way) and measure one run; the client sends the
    token when the side is "on", as a client of a no-auth gateway would not."""
    live = on and not control  # the enforcement point is on the path for this run
    url = servers.procs[name][1]
    _switch(servers, name, False, body)  # /metrics needs a token with auth on: read it with auth off
    before = _batch_rows(url)
    if live:
        _switch(servers, name, True, body)
    sample = _sample(servers, name, {name: (body_file, bearer if on else JSON)}, conc, seconds)
    if live:
        _switch(servers, name, False, body)
    after = _batch_rows(url)
    calls = after[1] - before[1]
    return SwitchRun(sample, (after[0] - before[0]) / calls if calls else 0.0)


def _scenario_auth_switch(env: dict[str, str], work: Path, models: dict[str, tuple[Path, Path]], mlflow: str,
                          n: int, seconds: int) -> None:
    """Token auth on vs off in the same server process: the enforcement point is switched onto and
    off the request path between wrk runs (``_switchable``), so the two sides share the process's
    hash seed, memory layout, imports and warm-up, and a ratio is auth's cost alone. Each round
    measures every process both ways back to back, in an order that alternates; a run also reports
    the rows per model call its batcher made (at c=64 with batching that sets the throughput: a run
    settles at a few rows or at ~20, on either side). ``GATEWAY_BENCH_AUTH_CONTROL=1``: the A/A
    control (auth off in both runs, the client still sends the token in the "on" one)."""
    instances, control = _auth_options()
    concurrency = _concurrency()
    skops, _ = models["iris"]
    body, body_file, state, bearer = _auth_request(work)
    names = {mode: [f"{mode} #{i + 1}" for i in range(instances)] for mode in AUTH_SWITCH_MODES}
    runs: dict[tuple[str, bool, int], list[SwitchRun]] = {}
    with Servers({**env, "GW_MODEL": str(skops)}) as servers:
        for i in range(instances):
            for mode, extra in AUTH_SWITCH_MODES.items():
                own = work / f"auth-switch-state-{i}-{mode.replace(' ', '-')}"
                shutil.rmtree(own, ignore_errors=True)
                shutil.copytree(state, own)
                servers.uvicorn(names[mode][i], "gateway_factory", "/invocations", (body, bearer),
                                {**extra, "GW_AUTH_STATE": str(own), "GW_AUTH_SWITCH": "1"})
        every = [name for mode in AUTH_SWITCH_MODES for name in names[mode]]
        for conc in concurrency:
            for name in every:  # warm-up, unrecorded: both ways at this concurrency
                with _alone(servers, name, True):
                    for on in (True, False):
                        _switch(servers, name, on and not control, body)
                        _wrk(servers.procs[name][1], body_file, bearer if on else JSON, conc, 1)
            for r in range(max(1, n)):
                shift = r % len(every)
                for k, name in enumerate(every[shift:] + every[:shift]):
                    with _alone(servers, name, True):
                        for on in ((True, False) if (r + k) % 2 == 0 else (False, True)):
                            runs.setdefault((name, on, conc), []).append(
                                _switch_run(servers, name, on, control, body, body_file, bearer, conc, seconds))
    _switch_table(runs, names, instances, n, seconds, control, concurrency)


def _switch_table(runs: dict[tuple[str, bool, int], list[SwitchRun]], names: dict[str, list[str]], instances: int,
                  n: int, seconds: int, control: bool,
                  concurrency: tuple[int, ...]) -> None:
    print(f"\n**iris LogisticRegression, 1-row dataframe_split: serve.auth token on vs off in the same process"
          f"{' (A/A control: auth off in both runs)' if control else ''}** ({instances} server processes a mode, "
          f"{max(1, n)} rounds of {seconds} s per process, side and concurrency; load average "
          f"{os.getloadavg()[0]:.1f}). A ratio pairs a process's run with auth on with its run with auth off in "
          "the same round; shown: the median and range over processes and rounds, each process's median "
          "requests/s and p99, and the median rows per model call, on / off. The pooled p99 is the p99 of all "
          "the requests of a side in the cell (every run's latency distribution together, as one long run), "
          "with its ratio's 5-95 % bootstrap interval over the pairs.\n")
    print("| concurrency | mode | requests/s per process, on / off | throughput ratio | p99 ms per process, on / off "
          "| p99 ratio | pooled p99, on / off, ratio | CPU µs a request, on / off | CPU ratio "
          "| rows per model call, on / off |\n|---|---|---|---|---|---|---|---|---|---|")
    for conc in concurrency:
        for mode, procs in names.items():
            on = [x.sample for name in procs for x in runs[(name, True, conc)]]
            off = [x.sample for name in procs for x in runs[(name, False, conc)]]

            def each(k: int, fmt: str, procs: list[str] = procs, conc: int = conc) -> str:
                return " / ".join(" ".join(format(statistics.median(x.sample.cell[k] for x in runs[(name, side, conc)]),
                                                  fmt) for name in procs) for side in (True, False))

            rows = " / ".join(f"{statistics.median(x.rows_per_call for name in procs for x in runs[(name, side, conc)]):.1f}"
                              for side in (True, False)) if mode == "batching on" else "-"
            print(f"| {conc} | {mode} | {each(0, '.0f')} | {_paired(on, off, lambda x: x.cell[0])} | {each(2, '.1f')} "
                  f"| {_paired(on, off, lambda x: x.cell[2])} | {_pooled_ratio(on, off)} | {statistics.median(x.cpu_us for x in on):.0f} / "
                  f"{statistics.median(x.cpu_us for x in off):.0f} | {_paired(on, off, lambda x: x.cpu_us)} | {rows} |",
                  flush=True)
    print()
    for conc in (c for c in concurrency if c > 1):
        print(_by_regime(runs, names["batching on"], conc), flush=True)


LARGE_BATCH_ROWS = 12  # at c=64 a run settles at ~5 or ~21 rows per model call: this splits the two


def _by_regime(runs: dict[tuple[str, bool, int], list[SwitchRun]], procs: list[str], conc: int) -> str:
    """The batching-on ratios at ``conc`` over the pairs whose two runs settled at the same batch size
    regime (both below ``LARGE_BATCH_ROWS`` rows per model call, or both at or above it): a run's
    regime moves its throughput by ~25 % on either side, so a pair of mixed regimes measures which
    regime each run drew, not auth."""
    pairs = [(a, b) for name in procs for a, b in zip(runs[(name, True, conc)], runs[(name, False, conc)], strict=True)]
    parts, kept = [], 0
    for label, large in (("small batches", False), ("large batches", True)):
        same = [(a.sample, b.sample) for a, b in pairs
                if (a.rows_per_call >= LARGE_BATCH_ROWS) == large and (b.rows_per_call >= LARGE_BATCH_ROWS) == large]
        kept += len(same)
        if same:
            on, off = [a for a, _ in same], [b for _, b in same]
            parts.append(f"{label} ({len(same)} pairs): throughput {_paired(on, off, lambda x: x.cell[0])}, "
                         f"p99 {_paired(on, off, lambda x: x.cell[2])}, pooled p99 {_pooled_ratio(on, off)}")
    return (f"- c={conc}, batching on, pairs by the batcher's regime (rows per model call below or from "
            f"{LARGE_BATCH_ROWS}): {'; '.join(parts) or 'none'}; {len(pairs) - kept} pairs of mixed regimes left out.")


ASGI_REQUESTS = 20_000  # a run of the auth-asgi scenario: ~1.5 s, over a request-log flush or two


def _asgi_cpu_us(loop: Any, app: Any, scope: dict[str, Any], body: bytes, conc: int, total: int) -> float:
    """CPU µs a request (this process, all threads) for ``total`` requests sent straight to the ASGI
    ``app`` by ``conc`` concurrent callers, each awaiting its answer before sending the next."""
    import asyncio

    async def one() -> None:
        done = False

        async def receive() -> dict[str, Any]:
            nonlocal done
            if not done:
                done = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect while the answer is sent
            return {"type": "http.disconnect"}

        status: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])

        await app({**scope, "headers": list(scope["headers"]), "state": {}}, receive, send)
        if status != [200]:
            raise RuntimeError(f"the gateway answered {status}")

    async def caller(n: int) -> None:
        for _ in range(n):
            await one()

    async def run() -> float:
        start = time.process_time()
        await asyncio.gather(*(caller(total // conc) for _ in range(conc)))
        return 1e6 * (time.process_time() - start) / (total // conc * conc)

    return loop.run_until_complete(run())


def _scenario_auth_asgi(env: dict[str, str], work: Path, models: dict[str, tuple[Path, Path]], mlflow: str,
                        n: int, seconds: int) -> None:
    """Token auth's CPU cost a request without the server: the gateway's ASGI app (the same one
    ``gateway_factory`` builds) called directly in this process, pinned to one core, with its
    enforcement point on and off the path in alternating runs, and off with the token still sent
    (the header's own cost to Starlette and the gateway). No sockets, no uvicorn and no client
    share the core, so a ratio repeats to about 1 % without batching and a few per cent with it
    (the batcher's regimes); it is the app's share of a request's CPU, not
    the server's, which adds uvicorn and the kernel (the auth-switch scenario)."""
    import asyncio

    import uvloop

    skops, _ = models["iris"]
    body, _, state, bearer = _auth_request(work)
    headers = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode())]
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "server": ("127.0.0.1", 8000), "client": ("127.0.0.1", 50000), "scheme": "http", "method": "POST",
             "root_path": "", "path": "/invocations", "raw_path": b"/invocations", "query_string": b"",
             "headers": headers}
    token_scope = {**scope, "headers": [*headers, (b"authorization", bearer["Authorization"].encode())]}
    affinity = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {0})
    loop = uvloop.new_event_loop()  # as uvicorn runs the gateway
    asyncio.set_event_loop(loop)
    print(f"\n**Token auth's CPU a request in the gateway's ASGI app, without the server** (iris, 1-row "
          f"dataframe_split; {max(1, n)} rounds of {ASGI_REQUESTS:,} requests a side, core 0). Shown: the median and "
          "range over the rounds.\n")
    print("| concurrency | mode | CPU µs a request: auth on / token sent, auth off / no token | auth on / no token "
          "| token sent, auth off / no token |\n|---|---|---|---|---|")
    try:
        for mode, extra in AUTH_SWITCH_MODES.items():
            # gateway_factory reads its settings from the environment, as in a server process
            settings = {"GW_LOG_DIR": env["GW_LOG_DIR"], "GW_MODEL": str(skops), "GW_AUTH_STATE": str(state), **extra}
            saved = {k: os.environ.get(k) for k in (*settings, "GW_BATCHING")}
            os.environ.update(settings)
            try:
                _asgi_mode(loop, mode, scope, token_scope, body, n)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
    finally:
        loop.close()
        asyncio.set_event_loop(None)
        os.sched_setaffinity(0, affinity)


def _asgi_mode(loop: Any, mode: str, scope: dict[str, Any], token_scope: dict[str, Any], body: bytes, n: int) -> None:
    """One mode of the auth-asgi scenario: its app, lifespan, and the table's rows."""
    import asyncio

    app = gateway_factory()
    outer, enforcement = _enforcement_point(app)
    ready: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def lifespan_receive() -> dict[str, Any]:
        return await events.get()

    async def lifespan_send(message: dict[str, Any]) -> None:
        await ready.put(message)

    lifespan = loop.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                     lifespan_receive, lifespan_send))
    loop.run_until_complete(events.put({"type": "lifespan.startup"}))
    loop.run_until_complete(ready.get())
    sides = {"on": (enforcement, token_scope), "token": (enforcement.app, token_scope), "off": (enforcement.app, scope)}
    try:
        for conc in (1, 10, 64):
            cpu: dict[str, list[float]] = {side: [] for side in sides}
            for r in range(max(1, n) + 1):  # the first round warms up and is dropped
                for side in (list(sides) if r % 2 == 0 else list(reversed(sides))):
                    outer.app, side_scope = sides[side]
                    cpu[side].append(_asgi_cpu_us(loop, app, side_scope, body, conc, ASGI_REQUESTS))
            on, token, off = (runs[1:] for runs in cpu.values())

            print(f"| {conc} | {mode} | {statistics.median(on):.1f} / {statistics.median(token):.1f} / "
                  f"{statistics.median(off):.1f} | {_ratios(on, off, 3)} | {_ratios(token, off, 3)} |", flush=True)
    finally:
        loop.run_until_complete(events.put({"type": "lifespan.shutdown"}))
        loop.run_until_complete(lifespan)


SCENARIOS = {"oip": _scenario_oip, "forest": _scenario_forest, "iris": _scenario_iris, "auth": _scenario_auth,
             "auth-switch": _scenario_auth_switch, "auth-asgi": _scenario_auth_asgi, "floor": _scenario_floor}


def run(n: int) -> None:
    seconds = int(os.environ.get("GATEWAY_BENCH_SECONDS", "5"))
    chosen = os.environ.get("GATEWAY_BENCH_SCENARIOS", ",".join(SCENARIOS)).split(",")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    work = WORK / "gateway"
    work.mkdir(parents=True, exist_ok=True)
    mlflow = _mlflow_bin()
    models = _models(work, mlflow)
    logs = Path(tempfile.mkdtemp(prefix="gw-bench-"))
    env = {**os.environ, "GW_LOG_DIR": str(logs), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "PYTHONWARNINGS": "ignore"}
    try:
        for name in chosen:
            SCENARIOS[name.strip()](env, work, models, mlflow, n, seconds)
        written = sum(1 for _ in logs.rglob("part-*.parquet"))
        print(f"\n<!-- request log: {written} Parquet files written by the gateways during the run -->")
    finally:
        shutil.rmtree(logs, ignore_errors=True)
