"""Sweeps and stage environments, side by side with the peers in one run.

- Trial overhead: the same 10-trial search (2 at once) of a tiny two-stage pipeline, per trial:
  ``shipyard sweep``; Optuna alone with an MLflow callback running the same scripts; and DVC's
  queue (``dvc exp run --queue -S ...`` then ``dvc queue start -j 2``).
- Stage environment build, cold and warm: ``shipyard run`` of a stage with its own environment
  (empty environment cache, then the same lock again) against ``uv venv && uv pip install`` by hand.

Example: ``.venv/bin/python -m bench sweep --n 3``
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import yaml

from bench.harness import WORK, compare, ours_bin

TRIALS, JOBS = 10, 2
PREPARE = "import json\njson.dump(list(range(100)), open('data.json', 'w'))\n"
TRAIN = textwrap.dedent("""
    import json, yaml
    p = yaml.safe_load(open("params.yaml"))["train"]
    json.dump({"score": -(p["x"] - 3.0) ** 2}, open("metrics.json", "w"))
""")
STAGES = {"prepare": {"cmd": "python prepare.py", "deps": ["prepare.py"], "outs": ["data.json"]},
          "train": {"cmd": "python train.py", "deps": ["train.py", "data.json"], "params": ["train"],
                    "metrics": [{"metrics.json": {"cache": False}}]}}
VALUES = [round(0.5 + 0.5 * i, 2) for i in range(TRIALS)]


def _env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "CI": "true"}


def _project(kind: str) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"sweep-{kind}-", dir=WORK))
    (root / "prepare.py").write_text(PREPARE)
    (root / "train.py").write_text(TRAIN)
    (root / "params.yaml").write_text("train:\n  x: 0.0\n")
    name = "dvc.yaml" if kind == "dvc" else "shipyard.yaml"
    stages = {"stages": STAGES} if kind == "dvc" else {"pipeline": {"stages": STAGES}}
    (root / name).write_text(yaml.safe_dump(stages, sort_keys=False))
    return root


def _ours() -> float:
    root = _project("ours")
    started = time.perf_counter()
    subprocess.run([ours_bin(), "sweep", "train", "-p", "train.x=[" + ",".join(map(str, VALUES)) + "]",
                    "--sampler", "grid", "--metric", "score", "--trials", str(TRIALS), "--jobs", str(JOBS)],
                   cwd=root, env=_env(), check=True, capture_output=True)
    took = time.perf_counter() - started
    shutil.rmtree(root, ignore_errors=True)
    return took / TRIALS


_OPTUNA = textwrap.dedent("""
    import json, os, shutil, subprocess, sys, tempfile
    import mlflow, optuna, yaml
    root, values = sys.argv[1], json.loads(sys.argv[2])
    mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial):
        x = trial.suggest_categorical("train.x", values)
        folder = tempfile.mkdtemp(dir=root)
        for name in ("prepare.py", "train.py"):
            shutil.copy(os.path.join(root, name), folder)
        yaml.safe_dump({"train": {"x": x}}, open(os.path.join(folder, "params.yaml"), "w"))
        subprocess.run([sys.executable, "prepare.py"], cwd=folder, check=True)
        subprocess.run([sys.executable, "train.py"], cwd=folder, check=True)
        return json.load(open(os.path.join(folder, "metrics.json")))["score"]

    def log_to_mlflow(study, trial):  # what optuna-integration's MLflowCallback records per trial
        with mlflow.start_run(run_name=str(trial.number)):
            mlflow.log_params(trial.params)
            mlflow.log_metric("score", trial.value)

    study = optuna.create_study(direction="maximize", storage=f"sqlite:///{root}/optuna.db",
                                sampler=optuna.samplers.GridSampler({"train.x": values}))
    study.optimize(objective, n_trials=len(values), n_jobs=2, callbacks=[log_to_mlflow])
""")


def _optuna_mlflow() -> float:
    root = _project("optuna")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", _OPTUNA, str(root), json.dumps(VALUES)], cwd=root, env=_env(), check=True,
                   capture_output=True)
    took = time.perf_counter() - started
    shutil.rmtree(root, ignore_errors=True)
    return took / TRIALS


def _dvc_queue() -> float:
    root = _project("dvc")
    dvc = str(Path(sys.executable).with_name("dvc"))
    env = _env()
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=root, env=env, check=True, capture_output=True)
    started = time.perf_counter()
    for value in VALUES:
        subprocess.run([dvc, "exp", "run", "--queue", "-S", f"train.x={value}"], cwd=root, env=env, check=True,
                       capture_output=True)
    subprocess.run([dvc, "queue", "start", "-j", str(JOBS)], cwd=root, env=env, check=True, capture_output=True)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        status = subprocess.run([dvc, "queue", "status"], cwd=root, env=env, capture_output=True, text=True).stdout
        if status.count("Success") + status.count("Failed") >= TRIALS and "Running" not in status:
            break
        time.sleep(0.5)
    took = time.perf_counter() - started
    subprocess.run([dvc, "queue", "stop", "--kill"], cwd=root, env=env, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)
    return took / TRIALS


REQUIREMENTS = "six==1.16.0\ntomli==2.2.1\npackaging==24.2\n"


def _env_project() -> Path:
    root = Path(tempfile.mkdtemp(prefix="envs-", dir=WORK))
    (root / "requirements.txt").write_text(REQUIREMENTS)
    stages = {"probe": {"cmd": "python -c 'import six, tomli, packaging'", "always_changed": True,
                        "environment": {"requirements": "requirements.txt"}}}
    (root / "shipyard.yaml").write_text(yaml.safe_dump({"pipeline": {"stages": stages}}))
    return root


def _ours_env(cache: Path, root: Path) -> float:
    started = time.perf_counter()
    subprocess.run([ours_bin(), "run"], cwd=root, env={**_env(), "SHIPYARD_ENV_CACHE": str(cache)}, check=True,
                   capture_output=True)
    return time.perf_counter() - started


def _by_hand(root: Path) -> float:
    from shipyard.pipeline.envs import uv_command

    uv = uv_command()
    folder = Path(tempfile.mkdtemp(prefix="byhand-", dir=WORK)) / "venv"
    started = time.perf_counter()
    subprocess.run([*uv, "venv", "--quiet", str(folder)], check=True, capture_output=True)
    subprocess.run([*uv, "pip", "install", "--quiet", "--python", str(folder / "bin" / "python"), "-r",
                    str(root / "requirements.txt")], check=True, capture_output=True)
    subprocess.run([str(folder / "bin" / "python"), "-c", "import six, tomli, packaging"], check=True)
    took = time.perf_counter() - started
    shutil.rmtree(folder.parent, ignore_errors=True)
    return took


def run(n: int) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    compare(f"sweep: seconds per trial, {TRIALS} trials, {JOBS} at once", _ours, _optuna_mlflow,
            "optuna + mlflow callback", n=n, warmup=0)
    compare(f"sweep: seconds per trial, {TRIALS} trials, {JOBS} at once", _ours, _dvc_queue,
            "dvc exp run --queue + dvc queue start -j 2", n=max(1, n // 2), warmup=0)
    root = _env_project()

    def cold() -> float:
        cache = Path(tempfile.mkdtemp(prefix="envcache-", dir=WORK))
        shutil.rmtree(root / ".shipyard", ignore_errors=True)  # the resolution too
        took = _ours_env(cache, root)
        shutil.rmtree(cache, ignore_errors=True)
        return took

    compare("stage environment, cold (resolve, build, run)", cold, lambda: _by_hand(root), "uv venv && uv pip install",
            n=n, warmup=1)
    warm_cache = Path(tempfile.mkdtemp(prefix="envcache-", dir=WORK))
    _ours_env(warm_cache, root)
    compare("stage environment, warm (same lock again)", lambda: _ours_env(warm_cache, root), lambda: _by_hand(root),
            "uv venv && uv pip install", n=n, warmup=1)
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(warm_cache, ignore_errors=True)
