"""MLflow ``python_function`` models and MLflow-created versions' supply chain, with the real MLflow 3 client.

An unchanged MLflow script logs a custom ``PythonModel`` (with an artifact it reads in
``load_context``), a malicious one whose pickle reduces to ``os.system``, and a scikit-learn model,
against a real ``shipyard server`` whose project signs versions. Then, with the real CLI and
gateway: the pyfunc version is packaged whole (flavor ``mlflow_pyfunc``), untrusted, so the gate
and the gateway refuse it with a message saying how to trust it; ``shipyard models trust`` trusts
it; it is gated, deployed and answers MLflow's ``/invocations`` with the model's own predictions.
The malicious model is refused with the scanner's finding over the REST API, by ``models register
--trust`` and never runs. The scikit-learn version is scanned, has an SBOM and is signed, so a
``{signed: true}`` gate passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import run_cli, shipyard_bin
from tests.e2e.gateway_live import free_port
from tests.models.pyfunc_models import SIZER
from tests.server.live import live_server

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

CONFIG = """pipeline:
  stages: {}
model:
  name: sizer
  path: model/
  eval: data/eval.csv
  target: size
  features: [x]
gates:
  - {metric: accuracy, min: 0.9}
  - {metric: accuracy, vs: champion, max_drop: 0.1}
  - {signed: true}
supply:
  signing_key: sign.pem
"""

# A team's script: nothing in it knows about Shipyard.
SCRIPT = '''
import json, os, sys
import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature
from sklearn.linear_model import LogisticRegression

train = pd.read_csv(sys.argv[1])
canary = sys.argv[2]
X, y = train[["x"]], train["size"]


''' + SIZER + '''

class Evil(mlflow.pyfunc.PythonModel):
    def __reduce__(self):
        return (os.system, (f"touch {canary}",))

    def predict(self, context, model_input, params=None):
        return model_input


with open("labels.json", "w") as f:
    json.dump({"high": "big", "low": "small"}, f)
mlflow.set_experiment("sizer")
with mlflow.start_run():
    mlflow.log_metric("accuracy", float((Sizer(5.0).cut < X["x"]).eq(y == "big").mean()))
    signature = infer_signature(X, y)
    sizer = mlflow.pyfunc.log_model(name="sizer", python_model=Sizer(5.0), artifacts={"labels": "labels.json"},
                                    signature=signature)
    evil = mlflow.pyfunc.log_model(name="evil", python_model=Evil(), signature=signature)
    skl = mlflow.sklearn.log_model(LogisticRegression(C=10.0).fit(X, y), name="skl", signature=signature,
                                   serialization_format="skops")
if os.path.exists(canary):   # MLflow itself unpickled it (inferring its pip requirements): not our doing
    os.remove(canary)
v1 = mlflow.register_model(sizer.model_uri, "sizer")
try:
    mlflow.register_model(evil.model_uri, "evil")
    refused = None
except MlflowException as exc:
    refused = [exc.error_code, exc.get_http_status_code(), exc.message]
v2 = mlflow.register_model(skl.model_uri, "sizer")
loaded = mlflow.pyfunc.load_model(f"models:/sizer/{v1.version}")
mlflow.artifacts.download_artifacts(evil.model_uri, dst_path="evil-model")
print(json.dumps({"versions": [v1.version, v2.version], "refused": refused,
                  "pyfunc": [str(p) for p in loaded.predict(X.head(6))], "truth": list(y.head(6))}))
'''


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, f"{proc.args}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    return proc.stdout


def refused(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode not in (0, 3), f"{proc.args} should be refused as the user's mistake\n{proc.stdout}{proc.stderr}"
    return proc.stdout + proc.stderr


def _key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _project(root: Path) -> pd.DataFrame:
    """A project that signs its versions and gates on accuracy; returns the training frame."""
    rng = np.random.default_rng(7)
    x = np.round(rng.uniform(0, 10, 300), 3)
    frame = pd.DataFrame({"x": x, "size": np.where(x > 5.0, "big", "small")})
    (root / "data").mkdir(parents=True)
    frame.iloc[:200].to_csv(root / "data" / "train.csv", index=False)
    frame.iloc[200:].to_csv(root / "data" / "eval.csv", index=False)
    (root / "shipyard.yaml").write_text(CONFIG)
    _key(root / "sign.pem")
    return frame.iloc[:200]


def _run_script(root: Path, work: Path, canary: Path) -> dict:  # type: ignore[type-arg]
    work.mkdir()
    (work / "train.py").write_text(SCRIPT)
    with live_server(root) as url:
        env = {**os.environ, "MLFLOW_TRACKING_URI": url, "GIT_PYTHON_REFRESH": "quiet"}
        proc = subprocess.run([sys.executable, "train.py", str(root / "data" / "train.csv"), str(canary)], cwd=work,
                              env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _show(root: Path, ref: str) -> dict:  # type: ignore[type-arg]
    return json.loads(ok(run_cli("models", "show", ref, "--json", cwd=root)))


def test_mlflow_pyfunc_is_trusted_gated_served_a_malicious_one_never_loads_and_rest_versions_are_signed(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    train = _project(root)
    canary = tmp_path / "pwned"
    out = _run_script(root, tmp_path / "client", canary)
    assert out["versions"] == ["1", "2"]
    assert out["pyfunc"] == out["truth"]                       # mlflow.pyfunc.load_model("models:/...") round-trips

    # the malicious pickle: refused at creation with the scanner's finding, a 4xx, and it never ran
    code, status, message = out["refused"]
    assert code == "INVALID_PARAMETER_VALUE" and status == 400, out["refused"]
    assert "imports posix.system" in message and "trusted or not" in message
    # ... and with --trust on the command line too
    shutil.copytree(tmp_path / "client" / "evil-model", root / "evil-model")
    folder = next((root / "evil-model").rglob("MLmodel")).parent.relative_to(root)
    said = refused(run_cli("models", "register", "evil", "--path", str(folder), "--flavor", "mlflow", "--trust",
                           cwd=root))
    assert "imports posix.system" in said
    assert not canary.exists()

    # the pyfunc version: the whole folder, untrusted, with what registration recorded
    shown = _show(root, "sizer@1")
    assert shown["flavor"] == "mlflow_pyfunc" and not shown["trusted"]
    assert [c["name"] for c in shown["signature"]["inputs"]] == ["x"]
    supply = shown["lineage"]["supply"]
    assert supply["signature"]["key"] and supply["sbom"]["components"] > 10
    assert not supply["scan"]["clean"] and all("calls the result of another call" in f for f in supply["scan"]["findings"])

    # the scikit-learn version created over MLflow's API: scanned clean, SBOM, signed (gated below)
    skl = _show(root, "sizer@2")
    assert skl["flavor"] == "sklearn" and skl["lineage"]["supply"]["scan"]["clean"]
    assert skl["lineage"]["supply"]["signature"]["key"]
    text = ok(run_cli("models", "show", "sizer@2", cwd=root))
    assert "SBOM" in text and "CycloneDX" in text and "signed" in text

    # untrusted: the gate and the gateway refuse it and say how to trust it
    assert "shipyard models trust" in refused(run_cli("gate", "sizer@1", cwd=root, timeout=300))
    assert "shipyard models trust" in refused(run_cli("deploy", "sizer@1", "--force", "--reason", "probe", cwd=root))
    assert "has no version 9" in refused(run_cli("models", "trust", "sizer@9", cwd=root))

    trusted = json.loads(ok(run_cli("models", "trust", "sizer@1", "--reason", "our model", "--json", cwd=root,
                                    timeout=300)))
    assert trusted["trusted"] and trusted["changed"]
    ok(run_cli("gate", "sizer@1", cwd=root, timeout=300))   # trusted now: no --trust needed, as for the gateway
    ok(run_cli("deploy", "sizer@1", "--json", cwd=root))

    rows = train[["x"]].head(20)
    with _serving(root) as url:
        r = httpx.post(f"{url}/invocations", json={"dataframe_records": rows.to_dict("records")}, timeout=60)
        wrong = httpx.post(f"{url}/invocations", json={"dataframe_records": [{"y": 1.0}]}, timeout=60)
        mistyped = httpx.post(f"{url}/invocations", json={"dataframe_records": [{"x": [1, 2]}]}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["x-shipyard-version"] == "1"
    assert r.json()["predictions"] == list(train["size"].head(20))
    assert wrong.status_code == 422 and "missing feature 'x'" in wrong.text, wrong.text   # the client's mistake, named
    assert mistyped.status_code in (400, 422) and "x" in mistyped.text, mistyped.text
    assert not canary.exists()

    # the REST-created scikit-learn version against the pyfunc champion: both predict the evaluation
    # set (the champion through its PythonModel); the signed gate passes on the signed package
    verdict = ok(run_cli("gate", "sizer@2", cwd=root, timeout=300))   # the trusted champion loads without --trust
    assert "vs champion sizer@1" in verdict and "signed" in verdict, verdict


class _serving:
    """``shipyard serve`` on a free port in ``root`` until it is ready; stopped on exit."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def __enter__(self) -> str:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.log = (self.root / "serve.log").open("wb")
        self.proc = subprocess.Popen([shipyard_bin(), "serve", "--port", str(port)], cwd=self.root, stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "CI": "true"})
        deadline = time.time() + 120
        while not _ready(self.url):
            assert time.time() < deadline and self.proc.poll() is None, (self.root / "serve.log").read_text()[-3000:]
            time.sleep(0.3)
        return self.url

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.log.close()


def _ready(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/ready", timeout=5).json().get("ready"))
    except (httpx.HTTPError, ValueError):
        return False
