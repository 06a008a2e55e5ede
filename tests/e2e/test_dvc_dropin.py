"""DVC's get-started project (examples/dvc-get-started) unchanged under ``shipyard run``, with the real
``dvc`` and ``dvclive``: the same bytes as ``dvc repro``, dvc.lock and git refs left alone, the
dvclive metrics in ``metrics show``/``metrics diff`` and in the report, ``init`` adopting dvc.yaml."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dvc-get-started"
BIN = Path(sys.executable).parent
# The stages' `python` must be this interpreter; DVC must not phone home from a test.
ENV = {"PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}
OUTPUTS = ("data/prepared", "data/features", "model.pkl", "eval")
POSTS = "600"  # small enough for seconds, big enough for a real ROC


def _sh(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(list(args), cwd=cwd, env={**os.environ, **ENV}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
    return result


def _shipyard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, cwd=cwd, env=ENV, timeout=300)
    assert result.returncode == 0, f"shipyard {' '.join(args)}: {result.stdout}\n{result.stderr}"
    return result


def _project(where: Path) -> Path:
    """A fresh git + DVC repo holding the example and its generated posts, committed."""
    shutil.copytree(EXAMPLE, where)
    _sh(sys.executable, "src/generate_data.py", POSTS, cwd=where)
    _sh("git", "init", "-q", "-b", "main", cwd=where)
    _sh("git", "config", "user.email", "t@example.com", cwd=where)
    _sh("git", "config", "user.name", "t", cwd=where)
    _sh(str(BIN / "dvc"), "init", "-q", cwd=where)
    _sh("git", "add", "-A", cwd=where)
    _sh("git", "commit", "-q", "-m", "get-started", cwd=where)
    return where


def _files(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for out in OUTPUTS:
        path = root / out
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file():
                found[file.relative_to(root).as_posix()] = file.read_bytes()
    return found


def _refs(root: Path) -> str:
    return _sh("git", "for-each-ref", cwd=root).stdout


def _flat(doc: dict, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _set_param(root: Path, section: str, key: str, value: object) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params[section][key] = value
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_same_bytes_and_metrics_as_dvc_repro(tmp_path):
    theirs = _project(tmp_path / "dvc")
    ours = _project(tmp_path / "shipyard")
    _sh(str(BIN / "dvc"), "repro", cwd=theirs)
    init = _shipyard("init", cwd=ours)
    assert "adopted dvc.yaml" in init.stdout
    assert not (ours / "shipyard.yaml").exists()  # nothing that would hide dvc.yaml
    run = _shipyard("run", cwd=ours)
    assert "Running stage 'evaluate'" in run.stdout and "Stage 'evaluate' done" in run.stdout
    expected = _files(theirs)
    assert set(expected) >= {"model.pkl", "eval/metrics.json", "eval/plots/sklearn/roc/test.json",
                             "eval/plots/images/importance.png"}
    got = _files(ours)
    assert sorted(got) == sorted(expected)
    assert [name for name in expected if got[name] != expected[name]] == []
    shown = json.loads(_shipyard("metrics", "show", "--json", cwd=ours).stdout)["metrics"]
    dvc_metrics = _flat(json.loads((theirs / "eval" / "metrics.json").read_text()))
    assert {k: shown.get(k) for k in dvc_metrics} == dvc_metrics
    assert "refs/exps" not in _refs(ours)
    assert not (ours / "dvc.lock").exists()  # shipyard keeps its own lock; dvclive saved no experiment
    status = _sh("git", "status", "--porcelain", "--ignored=no", cwd=ours).stdout
    assert ".shipyard" not in status  # git-ignored from the first command on


@pytest.mark.slow
def test_committed_dvc_lock_and_refs_untouched_and_metrics_diff(tmp_path):
    root = _project(tmp_path / "p")
    _sh(str(BIN / "dvc"), "repro", cwd=root)
    _sh("git", "add", "-A", cwd=root)
    _sh("git", "commit", "-q", "-m", "dvc repro", cwd=root)
    lock, refs = (root / "dvc.lock").read_bytes(), _refs(root)
    _shipyard("run", cwd=root)  # no init: .shipyard/ must be ignored anyway
    _set_param(root, "train", "n_est", 80)
    second = _shipyard("run", cwd=root)
    assert "Running stage 'train'" in second.stdout and "Stage 'evaluate' done" in second.stdout
    assert (root / "dvc.lock").read_bytes() == lock
    assert _refs(root) == refs and "refs/exps" not in _refs(root)
    assert _sh("git", "status", "--porcelain", "--", ".shipyard", "dvc.lock", cwd=root).stdout == ""
    diff = json.loads(_shipyard("metrics", "diff", "--json", cwd=root).stdout)
    rows = {r["key"]: r for r in diff["rows"]}
    assert rows["roc_auc.test"]["old"] != rows["roc_auc.test"]["new"]
    assert rows["roc_auc.test"]["new"] == _flat(json.loads((root / "eval" / "metrics.json").read_text()))["roc_auc.test"]
    report = _shipyard("report", "--json", cwd=root)  # no shipyard.yaml at all
    data = json.loads(report.stdout)
    metrics = {m["name"]: m for m in data["metrics"]}
    assert metrics["roc_auc.test"]["value"] == rows["roc_auc.test"]["new"]
    titles = [p["title"] for p in data["plots"]]
    assert "ROC (dvc.yaml plots)" in titles and "Confusion-Matrix (dvc.yaml plots)" in titles
    assert any("importance.png" in t for t in titles)
    ci = run_cli("ci", "--trust", "--json", cwd=root, env=ENV, timeout=300)  # pickle model: needs --trust
    assert ci.returncode == 0, ci.stdout + ci.stderr
    outcome = json.loads(ci.stdout)
    assert outcome["candidate"] == "stackoverflow-model@1"
    assert "roc_auc.test" in {m["name"] for m in outcome["report"]["metrics"]}
