"""Acceptance: MLflow's own client registers a model version and moves aliases on ``shipyard server``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.server.live import live_server

SCRIPT = '''
import json
import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

client = MlflowClient()
mlflow.set_experiment("penguins")
with mlflow.start_run(run_name="train") as run:
    mlflow.log_metric("accuracy", 0.97)
client.create_registered_model("penguins", tags={"team": "birds"}, description="species classifier")
v1 = client.create_model_version("penguins", "s3://bucket/penguins/1", run_id=run.info.run_id, description="first")
v2 = client.create_model_version("penguins", "s3://bucket/penguins/2", run_id=run.info.run_id)
client.set_registered_model_alias("penguins", "challenger", v2.version)
by_alias = client.get_model_version_by_alias("penguins", "challenger")
errors = {}
for alias in ("v3", "champion"):
    try:
        client.set_registered_model_alias("penguins", alias, v1.version)
    except MlflowException as exc:
        errors[alias] = [exc.error_code, exc.message, exc.get_http_status_code()]
client.update_model_version("penguins", v1.version, description="first, reviewed")
client.update_registered_model("penguins", description="penguin species")
model = client.get_registered_model("penguins")
found = client.search_model_versions("name='penguins'")
models = client.search_registered_models(filter_string="name LIKE 'pen%'")
client.delete_registered_model_alias("penguins", "challenger")
try:
    client.get_model_version_by_alias("penguins", "challenger")
    gone = False
except MlflowException as exc:
    gone = exc.error_code
print(json.dumps({
    "versions": [v1.version, v2.version], "status": v1.status, "run_id": run.info.run_id,
    "by_alias": [by_alias.version, by_alias.source], "errors": errors,
    "description": client.get_model_version("penguins", v1.version).description,
    "model": [model.name, model.description, model.tags, dict(model.aliases)],
    "found": sorted(v.version for v in found), "models": [m.name for m in models], "gone": gone,
}))
'''


@pytest.mark.slow
def test_mlflow_client_registers_a_version_and_sets_an_alias(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    work = tmp_path / "client"
    work.mkdir()
    (work / "register.py").write_text(SCRIPT)
    with live_server(root) as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "GIT_PYTHON_REFRESH": "quiet"}
        proc = subprocess.run([sys.executable, "register.py"], cwd=work, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["versions"] == ["1", "2"] and out["status"] == "READY"
    assert out["by_alias"] == ["2", "s3://bucket/penguins/2"]
    assert out["errors"]["v3"][0] == "INVALID_PARAMETER_VALUE" and "looks like a version" in out["errors"]["v3"][1]
    # refused by policy, which the client fixes: a 4xx whose message says how to gate
    assert out["errors"]["champion"][0] == "PERMISSION_DENIED" and out["errors"]["champion"][2] == 403
    assert "no gate verdict" in out["errors"]["champion"][1] and "shipyard gate penguins@1" in out["errors"]["champion"][1]
    assert out["description"] == "first, reviewed"
    assert out["model"] == ["penguins", "penguin species", {"team": "birds"}, {"challenger": "2"}]
    assert out["found"] == ["1", "2"] and out["models"] == ["penguins"]
    assert out["gone"] == "RESOURCE_DOES_NOT_EXIST"

    shown = run_cli("models", "show", "penguins@2", "--json", cwd=root)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["run_id"] == out["run_id"] and record["flavor"] == "external" and record["aliases"] == []
    log = run_cli("audit", "log", "--kind", "model.alias", "--json", cwd=root)
    moves = [json.loads(e["payload"]) for e in json.loads(log.stdout)]
    assert [m["alias"] for m in moves] == ["challenger"]
    assert run_cli("audit", "verify", cwd=root).returncode == 0
