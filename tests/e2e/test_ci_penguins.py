"""The CI story end to end on examples/penguins, with real processes, git clones and a shared cache.

main: `shipyard ci` runs the whole pipeline, registers penguin-species@1, which becomes champion;
`shipyard push` shares objects and run-cache entries. A fresh clone pulls them, a branch makes the
model smaller (a param change), and `shipyard ci` there restores `prepare` from the run cache, runs
`train` and `evaluate`, gates the candidate against the champion (it fails: exit 1), and writes a
report with the deltas, the changed params and the plots.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import EXAMPLE, run_cli

CONFIG = """\
pipeline:
  stages:
    prepare:
      cmd: python src/prepare.py
      deps: [src/prepare.py, data/raw.csv]
      params: [prepare]
      outs: [data/prepared/]
    train:
      cmd: python src/train.py
      deps: [src/train.py, data/prepared/]
      params: [train]
      outs: [model/]
    evaluate:
      cmd: python src/evaluate.py
      deps: [src/evaluate.py, model/, data/prepared/]
      params: [train.features]
      metrics: [metrics.json]
      plots: [plots/]
model:
  name: penguin-species
  path: model/model.skops
  flavor: sklearn
  train: data/prepared/train.parquet
  eval: data/prepared/test.parquet
  target: species
  features: [bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, island, sex]
  groups: [sex]
gates:
  - {metric: accuracy, min: 0.90}
  - {metric: f1_macro, vs: champion, max_drop: 0.02}
  - {fairness: demographic_parity_difference, group: sex, max: 0.25}
"""
IGNORE = ("/.shipyard/\n/shipyard-report/\n/model/\n/data/prepared/\n/data/validation.json\n/plots/\n"
          "/metrics.json\n/shipyard.lock\n")


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", *args], cwd=cwd,
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.slow
def test_branch_changing_a_param(tmp_path: Path) -> None:
    origin = tmp_path / "origin"
    shutil.copytree(EXAMPLE, origin, ignore=shutil.ignore_patterns(".shipyard", "model", "plots", "prepared",
                                                                  "metrics.json", "shipyard-report"))
    config = (origin / "shipyard.yaml").read_text() if (origin / "shipyard.yaml").exists() else CONFIG
    if "\nmodel:" not in config:  # the example has no model/gates section yet: add ours to the scratch copy
        config += CONFIG[CONFIG.index("model:"):]
    (origin / "shipyard.yaml").write_text(config)
    stage_names = list(yaml.safe_load(config)["pipeline"]["stages"])
    (origin / ".gitignore").write_text(IGNORE)
    git(origin, "init", "-q", "-b", "main")
    git(origin, "add", "-A")
    git(origin, "commit", "-qm", "penguins")
    # Stages run `python` from PATH: the interpreter with Shipyard's ML extras, as in a CI job.
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"
    shared = {"SHIPYARD_STORE": f"sqlite:///{tmp_path / 'shared-store' / 'shipyard.db'}", "PATH": path}
    (tmp_path / "shared-store").mkdir()
    remote = tmp_path / "remote"

    main = run_cli("ci", "--json", cwd=origin, env=shared, timeout=600)
    assert main.returncode == 0, main.stdout[-3000:] + main.stderr[-3000:]
    outcome = json.loads(main.stdout)
    assert outcome["candidate"] == "penguin-species@1"
    assert [s["status"] for s in outcome["report"]["stages"]] == ["ran"] * len(stage_names)
    rerun = run_cli("ci", "--json", cwd=origin, env=shared, timeout=600)  # a re-run of the same job
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    again = json.loads(rerun.stdout)
    assert again["candidate"] == "penguin-species@1", "the same model on the same commit is not registered twice"
    assert {s["status"] for s in again["report"]["stages"]} == {"up-to-date"}
    alias = run_cli("models", "alias", "penguin-species", "champion", "1", cwd=origin, env=shared)
    assert alias.returncode == 0, alias.stderr
    assert run_cli("push", "--remote", str(remote), cwd=origin, env=shared).returncode == 0

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    pulled = run_cli("pull", "--remote", str(remote), cwd=clone, env=shared)
    assert pulled.returncode == 0 and "run-cache entries" in pulled.stdout, pulled.stderr
    git(clone, "checkout", "-q", "-b", "smaller-forest")
    params = (clone / "params.yaml").read_text()
    (clone / "params.yaml").write_text(params.replace("n_estimators: 100", "n_estimators: 3")
                                       .replace("max_depth: 6", "max_depth: 2"))
    git(clone, "commit", "-qam", "a smaller forest")

    env = {**shared, "GITHUB_ACTIONS": "true", "GITHUB_REF": "refs/pull/5/merge", "GITHUB_HEAD_REF": "smaller-forest",
           "GITHUB_BASE_REF": "main", "GITHUB_REPOSITORY": "acme/penguins", "GITHUB_SHA": git(clone, "rev-parse", "HEAD")}
    branch = run_cli("ci", "--json", cwd=clone, env=env, timeout=600)
    assert branch.returncode == 1, branch.stdout[-3000:] + branch.stderr[-3000:]
    report = json.loads(branch.stdout)["report"]
    stages = {s["name"]: s["status"] for s in report["stages"]}
    expected = {name: "cached" for name in stage_names} | {"train": "ran", "evaluate": "ran"}
    assert stages == expected, report["stages"]
    assert report["candidate"] == "penguin-species@2" and report["champion"] == "penguin-species@1"
    assert report["pr_number"] == 5 and report["branch"] == "smaller-forest"
    failed = [g["name"] for g in report["gates"] if g["passed"] is False]
    assert any("f1_macro" in name for name in failed), report["gates"]
    metrics = {m["name"]: m for m in report["metrics"]}
    assert metrics["accuracy"]["base"] is not None and metrics["accuracy"]["champion"] is not None
    assert {p["key"] for p in report["params"]} == {"train.n_estimators", "train.max_depth"}

    folder = clone / "shipyard-report"
    md = (folder / "report.md").read_text()
    assert "failed 1 of" in md and "| `train.n_estimators` | 100 | 3 |" in md
    n = len(stage_names)
    assert f"2 of {n} stages ran, {n - 2} came from the cache" in md
    for name in ("confusion_matrix.png", "roc.png", "calibration.png", "fairness.png"):
        png = folder / "plots" / name
        assert png.read_bytes()[:4] == b"\x89PNG", name
    assert not (folder / "candidate").exists(), "a failed candidate is never offered for deploy"
    assert (folder / "report.html").read_text().count("data:image/png;base64,") >= 4
