"""Acceptance: MLflow's own client (pinned mlflow-skinny) against a real ``shipyard server``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.server.live import live_server

TRAIN = '''
import mlflow, numpy as np
from mlflow import MlflowClient

mlflow.set_experiment("penguins")
with mlflow.start_run(run_name="forest") as run:
    mlflow.log_params({"n_estimators": 100, "max_depth": 6})
    for step in range(30):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    mlflow.log_metrics({"accuracy": 0.97, "f1_macro": 0.95})
    mlflow.set_tags({"team": "birds", "stage": "train"})
    with open("model.txt", "w") as handle:
        handle.write("a model")
    mlflow.log_artifact("model.txt", artifact_path="model")
    mlflow.log_input(mlflow.data.from_numpy(np.arange(12).reshape(6, 2), source="data/train.npy", name="train"),
                     context="training")
with mlflow.start_run(run_name="linear"):
    mlflow.log_params({"n_estimators": 1, "max_depth": 1})
    mlflow.log_metrics({"accuracy": 0.81, "f1_macro": 0.8})

client = MlflowClient()
exp = mlflow.get_experiment_by_name("penguins")
found = client.search_runs([exp.experiment_id], "metrics.accuracy > 0.9 and params.max_depth = '6'",
                           order_by=["metrics.accuracy DESC"])
both = client.search_runs([exp.experiment_id], "", order_by=["metrics.accuracy ASC"])
history = client.get_metric_history(run.info.run_id, "loss")
files = client.list_artifacts(run.info.run_id, "model")
local = client.download_artifacts(run.info.run_id, "model/model.txt", ".")
print(json.dumps({
    "run_id": run.info.run_id,
    "found": [r.info.run_id for r in found],
    "order": [r.info.run_name for r in both],
    "history": [(m.step, m.value) for m in history],
    "files": [f.path for f in files],
    "downloaded": open(local).read(),
    "status": client.get_run(run.info.run_id).info.status,
}))
'''


@pytest.mark.slow
def test_unchanged_mlflow_script_against_shipyard_server(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    work = tmp_path / "client"
    work.mkdir()
    (work / "train.py").write_text("import json\n" + TRAIN)
    with live_server(root) as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "GIT_PYTHON_REFRESH": "quiet"}
        proc = subprocess.run([sys.executable, "train.py"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    run_id = out["run_id"]
    assert out["found"] == [run_id]
    assert out["order"] == ["linear", "forest"]
    assert out["history"] == [[i, pytest.approx(1.0 / (i + 1))] for i in range(30)]
    assert out["files"] == ["model/model.txt"] and out["downloaded"] == "a model"
    assert out["status"] == "FINISHED"

    shown = run_cli("runs", "show", run_id, "--json", cwd=root)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["name"] == "forest" and record["experiment"] == "penguins" and record["status"] == "FINISHED"
    assert record["params"] == {"n_estimators": "100", "max_depth": "6"}
    assert record["metrics"]["accuracy"] == 0.97 and record["metrics"]["loss"] == pytest.approx(1 / 30)
    assert record["tags"]["team"] == "birds"
    assert [a["path"] for a in record["artifacts"]] == ["model/model.txt"]
    assert record["inputs"][0]["name"] == "train" and record["inputs"][0]["context"] == "training"
    listed = run_cli("runs", "list", "--filter", "metrics.accuracy < 0.9 or tags.team = 'birds'",
                     "--order-by", "metrics.accuracy DESC", "--json", cwd=root)
    assert [r["name"] for r in json.loads(listed.stdout)] == ["forest", "linear"]


LOG_MODEL = '''
import json, math, mlflow, numpy as np
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

rng = np.random.default_rng(0)
X = rng.random((60, 3))
y = (X[:, 0] > 0.5).astype(int)
model = LogisticRegression().fit(X, y)
with mlflow.start_run() as run:  # no experiment set: MLflow's default experiment "0"
    mlflow.log_params({"C": 1.0})
    mlflow.log_metric("loss", float("nan"), step=0)
    mlflow.log_metric("loss", float("inf"), step=1)
    info = mlflow.sklearn.log_model(model, name="model", input_example=X[:2])
by_id = mlflow.sklearn.load_model(info.model_uri)
by_run = mlflow.sklearn.load_model(f"runs:/{run.info.run_id}/model")
client = MlflowClient()
logged = client.get_logged_model(info.model_id)
found = client.search_logged_models(experiment_ids=[run.info.experiment_id], filter_string="name = 'model'")
history = client.get_metric_history(run.info.run_id, "loss")
print(json.dumps({
    "model_id": info.model_id, "uri": info.model_uri, "run_id": run.info.run_id,
    "same_by_id": bool((by_id.predict(X) == model.predict(X)).all()),
    "same_by_run": bool((by_run.predict(X) == model.predict(X)).all()),
    "status": str(logged.status), "source_run_id": logged.source_run_id, "found": [m.model_id for m in found],
    "history": ["nan" if math.isnan(m.value) else m.value for m in history],
    "model_metrics": sorted((m.key, m.step) for m in logged.metrics),
    "outputs": [o.model_id for o in client.get_run(run.info.run_id).outputs.model_outputs],
}))
'''


@pytest.mark.slow
def test_mlflow3_log_model_and_load_model_round_trip(tmp_path: Path) -> None:
    """``mlflow.sklearn.log_model`` goes through the logged-models API; both URIs load it back."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    work = tmp_path / "client"
    work.mkdir()
    (work / "train.py").write_text(LOG_MODEL)
    with live_server(root) as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "GIT_PYTHON_REFRESH": "quiet"}
        proc = subprocess.run([sys.executable, "train.py"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["uri"] == f"models:/{out['model_id']}" and out["same_by_id"] and out["same_by_run"]
    assert out["status"] == "READY" and out["source_run_id"] == out["run_id"] and out["found"] == [out["model_id"]]
    assert out["history"] == ["nan", 1.7976931348623157e308]  # log_model re-logs step 0: stored once
    assert out["model_metrics"] == [["loss", 0]] and out["outputs"] == [out["model_id"]]

    from shipyard.project import Project
    from shipyard.tracking.logged_models import download_logged_model, get_logged_model
    from shipyard.workspace import Workspace

    ws = Workspace(Project(root))
    try:
        logged = get_logged_model(ws, out["model_id"])
        assert logged.name == "model" and logged.status == "READY"
        files = download_logged_model(ws, out["model_id"], tmp_path / "dl")
        assert (files / "MLmodel").is_file() and "sklearn" in (files / "MLmodel").read_text()
    finally:
        ws.close()
