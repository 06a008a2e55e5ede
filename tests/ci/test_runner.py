"""The report step of `shipyard ci` on a real git project: params, data and metrics against the base."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.ci.report import MINUS
from shipyard.ci.runner import CIOptions, run_ci, validation_targets
from shipyard.config import load_config
from shipyard.errors import UsageError
from shipyard.project import Project
from shipyard.workspace import Workspace
from tests.ci.gitproject import git, make_project


@pytest.fixture
def ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Workspace:
    root = make_project(tmp_path / "proj")
    monkeypatch.chdir(root)
    monkeypatch.delenv("SHIPYARD_STORE", raising=False)
    monkeypatch.delenv("SHIPYARD_OBJECTS", raising=False)
    workspace = Workspace(Project(root))
    yield workspace
    workspace.close()


def test_report_against_main(ws: Workspace) -> None:
    outcome = run_ci(ws, {}, CIOptions(base="main", steps=("report",)))
    report = outcome.report
    assert report.branch == "more-trees" and report.base_ref == "main" and report.base_commit
    assert [(p.key, p.base, p.current) for p in report.params] == [("train.n_estimators", 100, 300)]
    raw = next(d for d in report.data if d.path == "data/raw.csv")
    assert (raw.status, raw.base_rows, raw.rows, raw.columns_added) == ("changed", 3, 4, ["c"])
    metrics = {m.name: m for m in report.metrics}
    assert metrics["accuracy"].base == 0.95 and metrics["accuracy"].value == 0.93
    assert metrics["accuracy"].worse(metrics["accuracy"].base)
    assert not metrics["log_loss"].worse(metrics["log_loss"].base)  # lower is better, it fell
    md = outcome.files["md"].read_text()
    assert f"**{MINUS}0.02**" in md and "| `train.n_estimators` | 100 | 300 |" in md
    assert "3 → 4 (+1)" in md
    data = json.loads(outcome.files["json"].read_text())
    assert data["base_ref"] == "main" and outcome.exit_code == 0
    assert not (outcome.files["md"].parent / "candidate").exists()


def test_shallow_clone_reports_without_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    origin = make_project(tmp_path / "origin")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--depth", "1", "--branch", "more-trees", f"file://{origin}", str(clone))
    assert git(clone, "rev-parse", "--is-shallow-repository") == "true"
    monkeypatch.chdir(clone)
    workspace = Workspace(Project(clone))
    try:
        outcome = run_ci(workspace, {"GITHUB_ACTIONS": "true", "GITHUB_BASE_REF": "main",
                                     "GITHUB_REF": "refs/pull/3/merge", "GITHUB_HEAD_REF": "more-trees"},
                         CIOptions(steps=("report",)))
    finally:
        workspace.close()
    report = outcome.report
    assert report.base_commit is None and report.params == [] and report.data == []
    assert any("shallow clone" in n and "fetch-depth: 0" in n for n in report.notes), report.notes
    assert {m.name for m in report.metrics} == {"accuracy", "log_loss"}
    assert all(m.base is None for m in report.metrics)
    md = outcome.files["md"].read_text()
    assert "no comparison with the base branch" in md and "(not available)" in md


def test_no_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "plain"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline: {stages: {}}\n")
    monkeypatch.chdir(root)
    workspace = Workspace(Project(root))
    with pytest.raises(UsageError, match="not inside a git repository"):
        run_ci(workspace, {}, CIOptions(steps=("report",)))
    assert not (root / "shipyard-report").exists(), "nothing is written on a usage error"


def test_unknown_step(ws: Workspace) -> None:
    with pytest.raises(UsageError, match="unknown step 'deploy'"):
        run_ci(ws, {}, CIOptions(steps=("deploy",)))


def test_validation_targets_pair_data_with_schema(ws: Workspace) -> None:
    root = ws.project.root
    (root / "data" / "schema.yaml").write_text("columns: {}\n")
    config = load_config(root / "shipyard.yaml")
    assert validation_targets(root, config) == [("data/raw.csv", "data/schema.yaml")]


def test_failed_stage_fails_the_job_and_the_report_says_which(ws: Workspace) -> None:
    root = ws.project.root
    (root / "shipyard.yaml").write_text(
        "pipeline:\n  stages:\n"
        "    prepare:\n      cmd: python -c \"open('prepared.txt', 'w').write('ok')\"\n      outs: [prepared.txt]\n"
        "    train:\n      cmd: python -c \"import sys; sys.exit(3)\"\n      deps: [prepared.txt]\n")
    outcome = run_ci(ws, {}, CIOptions(base="main", steps=("run", "report")))
    stages = {s.name: s.status for s in outcome.report.stages}
    assert stages == {"prepare": "ran", "train": "failed"}
    assert outcome.exit_code == 1 and not outcome.report.ok
    md = outcome.files["md"].read_text()
    assert "✖ failed" in md and "did not finish" not in md


def test_invalid_data_stops_before_the_pipeline(ws: Workspace) -> None:
    root = ws.project.root
    (root / "data" / "schema.yaml").write_text("columns:\n  a: {dtype: int, nullable: false, min: 0, max: 2}\n")
    outcome = run_ci(ws, {}, CIOptions(base="main", steps=("validate", "run", "report")))
    report = outcome.report
    assert [(v.dataset, v.passed) for v in report.validation] == [("data/raw.csv", False)]
    assert report.validation[0].failures and report.stages == []
    assert outcome.exit_code == 1
    assert "data validation failed" in outcome.files["md"].read_text()


def test_uncommitted_changes_are_pointed_out(ws: Workspace) -> None:
    (ws.project.root / "params.yaml").write_text("train:\n  n_estimators: 500\n  max_depth: 6\n")
    report = run_ci(ws, {}, CIOptions(base="main", steps=("report",))).report
    assert any("uncommitted changes" in n for n in report.notes)
    assert [(p.key, p.current) for p in report.params] == [("train.n_estimators", 500)]
