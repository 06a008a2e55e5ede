"""Issue 14's "done when" for MLflow models: an unchanged MLflow 3 training script against ``shipyard server``.

The script logs scikit-learn models with ``mlflow.sklearn.log_model(name="model")`` (skops, and
MLflow's default serialization), registers them with ``mlflow.register_model`` (``models:/m-...``
and ``runs:/...``) and loads them back with ``mlflow.pyfunc.load_model``. The versions it
registers are first-class: ``shipyard gate`` judges them on the project's evaluation set, the
first is deployed as champion and the second is canaried by ``shipyard serve``'s gateway and
promoted while real HTTP traffic flows. Real processes only: server, client, CLI and gateway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from tests.conftest import EXAMPLE, run_cli, shipyard_bin
from tests.e2e.gateway_live import free_port
from tests.server.live import live_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]

CONFIG = """
model:
  name: penguins
  path: model/
  eval: data/eval.csv
  target: species
  features: [bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g]
gates:
  - metric: accuracy
    min: 0.85
  - metric: accuracy
    vs: champion
    max_drop: 0.05
deploy:
  strategy: canary
  steps: [50, 100]
  interval: 1s
  min_samples: 20
  rollback_when: {error_rate: "> 0.5"}
  flush_interval: 0.2s
  poll_interval: 0.2s
"""

# What a team's training script already looks like; nothing in it knows about Shipyard.
SCRIPT = '''
import json, sys
import mlflow
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

train = pd.read_csv(sys.argv[1])
X, y = train[%(features)r], train["species"]
mlflow.set_experiment("penguins")
infos = []
for C, fmt in ((1.0, "skops"), (0.5, None)):
    with mlflow.start_run() as run:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000)).fit(X, y)
        mlflow.log_param("C", C)
        mlflow.log_metric("accuracy", float((model.predict(X) == y).mean()))
        kwargs = {"serialization_format": fmt} if fmt else {}
        info = mlflow.sklearn.log_model(model, name="model", signature=infer_signature(X, model.predict(X)),
                                        input_example=X.head(3), **kwargs)
        infos.append((run.info.run_id, info.model_uri))
v1 = mlflow.register_model(infos[0][1], "penguins")                     # models:/m-...
v2 = mlflow.register_model(f"runs:/{infos[1][0]}/model", "penguins")    # runs:/ as in MLflow 2 scripts
loaded = mlflow.pyfunc.load_model(f"models:/penguins/{v1.version}")
sklearn_model = mlflow.sklearn.load_model(f"models:/penguins/{v2.version}")
try:
    MlflowClient().set_registered_model_alias("penguins", "champion", v1.version)
    refused = None
except MlflowException as exc:
    refused = [exc.error_code, exc.get_http_status_code(), exc.message]
print(json.dumps({
    "versions": [v1.version, v2.version], "sources": [v1.source, v2.source],
    "run_ids": [v1.run_id, v2.run_id], "runs": [r for r, _ in infos],
    "pyfunc": [str(p) for p in loaded.predict(X.head(5))],
    "sklearn": [str(p) for p in sklearn_model.predict(X.head(5))],
    "truth": list(y.head(5)), "refused": refused,
}))
'''


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc.stdout


def project(root: Path) -> pd.DataFrame:
    """A project with an evaluation set and gates; returns the training frame."""
    data = pd.read_csv(EXAMPLE / "data" / "raw.csv").dropna(subset=[*FEATURES, "species"])
    train = data.sample(frac=0.7, random_state=0)
    (root / "data").mkdir(parents=True)
    train.to_csv(root / "data" / "train.csv", index=False)
    data.drop(train.index).to_csv(root / "data" / "eval.csv", index=False)
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n" + CONFIG)
    return train


def run_training_script(root: Path, work: Path) -> dict:  # type: ignore[type-arg]
    work.mkdir()
    (work / "train.py").write_text(SCRIPT % {"features": FEATURES})
    with live_server(root) as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "GIT_PYTHON_REFRESH": "quiet"}
        proc = subprocess.run([sys.executable, "train.py", str(root / "data" / "train.csv")], cwd=work, env=env,
                              capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def champion(root: Path) -> int:
    return int(json.loads(ok(run_cli("models", "show", "penguins@champion", "--json", cwd=root)))["version"])


def canary_until_settled(root: Path, url: str, frame: pd.DataFrame, timeout: float = 300) -> list[str]:
    """Send traffic to the gateway until the rollout of v2 ends; the versions that answered."""
    rows = frame[FEATURES].to_dict("records")
    served: list[str] = []
    deadline = time.time() + timeout
    with httpx.Client(base_url=url, timeout=60) as client:
        while time.time() < deadline:
            for i in range(0, 40, 10):
                r = client.post("/invocations", json={"dataframe_records": rows[i:i + 10]})
                assert r.status_code == 200, r.text
                served.append(r.headers["x-shipyard-version"])
            shown = json.loads(ok(run_cli("rollout", "status", "penguins", "--json", cwd=root)))
            state = shown[0]["state"] if isinstance(shown, list) else shown["state"]
            if state in ("promoted", "rolled_back", "aborted"):
                assert state == "promoted", shown
                return served
    raise AssertionError("the canary of penguins@2 did not settle")


def test_an_unchanged_mlflow_script_registers_versions_shipyard_gates_canaries_and_serves(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    train = project(root)
    out = run_training_script(root, tmp_path / "client")
    assert out["versions"] == ["1", "2"]
    assert out["sources"][0].startswith("models:/m-") and out["sources"][1].startswith("models:/m-")
    assert out["run_ids"] == out["runs"]                       # linked to the runs that logged the models
    assert out["pyfunc"] == out["truth"] and out["sklearn"] == out["truth"]
    assert out["refused"][:2] == ["PERMISSION_DENIED", 403] and "shipyard gate penguins@1" in out["refused"][2]

    for version in (1, 2):
        shown = json.loads(ok(run_cli("models", "show", f"penguins@{version}", "--json", cwd=root)))
        assert shown["flavor"] == "sklearn" and shown["run_id"] == out["runs"][version - 1]
        assert [c["name"] for c in shown["signature"]["inputs"]] == FEATURES
    ok(run_cli("gate", "penguins@1", cwd=root, timeout=300))
    ok(run_cli("deploy", "penguins@1", "--json", cwd=root))
    assert champion(root) == 1

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (root / "serve.log").open("wb") as log:
        serve = subprocess.Popen([shipyard_bin(), "serve", "--port", str(port)], cwd=root, stdout=log,
                                 stderr=subprocess.STDOUT, env={**os.environ, "CI": "true"})
    try:
        deadline = time.time() + 120
        while not _ready(url):
            assert time.time() < deadline and serve.poll() is None, (root / "serve.log").read_text()[-3000:]
            time.sleep(0.3)
        ok(run_cli("gate", "penguins@2", cwd=root, timeout=300))   # judged against the champion too
        ok(run_cli("deploy", "penguins@2", "--strategy", "canary", "--json", cwd=root))
        served = canary_until_settled(root, url, train)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    assert "2" in served and champion(root) == 2


def _ready(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/ready", timeout=5).json().get("ready"))
    except (httpx.HTTPError, ValueError):
        return False
