"""``shipyard run`` registers the model it rebuilt, once per model content, through the real binary."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import run_cli
from tests.pipeline.helpers import py, write_params

TRAIN = """
import yaml
from sklearn.tree import DecisionTreeClassifier
from shipyard.models import save_model
depth = yaml.safe_load(open('params.yaml'))['train']['depth']
rows = [[float(i % 7), float(i % 5)] for i in range(60)]
labels = [int(a > 3) + int(b > 2) for a, b in rows]
save_model(DecisionTreeClassifier(max_depth=depth, random_state=0).fit(rows, labels), 'model', 'sklearn')
print('trained depth', depth)
"""


def make_project(root: Path, **model: object) -> Path:
    """One stage, train (params train.depth), writing model/model.skops; a model section naming it."""
    root.mkdir(parents=True, exist_ok=True)
    write_params(root, {"train": {"depth": 2}})
    config = {
        "pipeline": {"stages": {"train": {"cmd": py(TRAIN), "params": ["train.depth"], "outs": ["model/"]}}},
        "model": {"name": "tree", "path": "model/", **model},
    }
    (root / "shipyard.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return root


def ok(proc: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def versions(root: Path) -> list[int]:
    return [v["version"] for v in json.loads(ok(run_cli("models", "list", "--json", cwd=root)).stdout)]


def stage_run(root: Path, run_id: str) -> tuple[str | None, str | None]:
    """(name, parent run id) of a recorded run."""
    from shipyard.store import runs
    from shipyard.workspace import Workspace

    ws = Workspace.discover(root)
    try:
        with ws.store.read() as session:
            run = runs.get_run(session, run_id)
            return run.name, run.parent_run_id
    finally:
        ws.close()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_run_registers_once_per_model_content(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    first = ok(run_cli("run", "--json", cwd=root))
    summary = json.loads(first.stdout)
    line = re.search(r"registered tree@1 from stage train \(run ([0-9a-f]{32})\)", first.stderr)
    assert line, first.stderr
    registration = summary["registration"]
    assert registration == {"ref": "tree@1", "name": "tree", "version": 1, "created": True, "stage": "train",
                            "run_id": line.group(1)}
    shown = json.loads(ok(run_cli("models", "show", "tree@1", "--json", cwd=root)).stdout)
    assert shown["run_id"] == line.group(1)
    assert stage_run(root, line.group(1)) == ("train", summary["run_id"])  # the stage's run, not the pipeline's

    noop = ok(run_cli("run", cwd=root))
    assert "nothing ran" in noop.stdout and "registered" not in noop.stdout and "unchanged" not in noop.stdout

    write_params(root, {"train": {"depth": 4}})
    changed = ok(run_cli("run", cwd=root))
    assert "registered tree@2 from stage train (run " in changed.stdout, changed.stdout

    write_params(root, {"train": {"depth": 2}})
    back = ok(run_cli("run", cwd=root))
    assert "Stage 'train' restored from the run cache" in back.stdout
    assert "model unchanged: already tree@1" in back.stdout, back.stdout
    assert versions(root) == [1, 2]

    # what the retrainer runs after the pipeline: it gets the version that holds the model
    again = json.loads(ok(run_cli("models", "register", "tree", "--json", cwd=root)).stdout)
    assert (again["version"], again["created"]) == (1, False)
    forced = json.loads(ok(run_cli("models", "register", "tree", "--new", "--json", cwd=root)).stdout)
    assert (forced["version"], forced["created"]) == (3, True)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_manual_mode_and_no_register_leave_the_registry_alone(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj")
    skipped = ok(run_cli("run", "--no-register", "--json", cwd=root))
    assert json.loads(skipped.stdout)["registration"] is None
    assert "Running stage 'train'" in skipped.stderr and "registered" not in skipped.stderr
    assert versions(root) == []

    make_project(root, register="manual")
    write_params(root, {"train": {"depth": 3}})
    manual = ok(run_cli("run", cwd=root))
    assert "Running stage 'train'" in manual.stdout and "registered" not in manual.stdout
    assert versions(root) == []
    by_hand = ok(run_cli("models", "register", cwd=root))
    assert "registered tree@1" in by_hand.stdout

    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text().replace("register: manual",
                                                                                     "register: sometimes"))
    bad = ok(run_cli("run", "--force", cwd=root), 2)  # refused before anything runs
    assert "shipyard.yaml:" in bad.stderr and "model.register: Input should be 'auto' or 'manual'" in bad.stderr
    assert "Running stage" not in bad.stdout


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_registration_failure_is_an_error_and_the_pipeline_results_are_kept(tmp_path: Path) -> None:
    root = make_project(tmp_path / "proj", flavor="onnx")  # the stage writes .skops: no .onnx file to register
    failed = ok(run_cli("run", "--json", cwd=root), 2)
    summary = json.loads(failed.stdout)
    assert summary["ran"] == ["train"]
    assert "holds no .onnx file" in summary["registration"]["error"]
    assert f"the pipeline succeeded (pipeline run {summary['run_id']}) and its results are kept" in failed.stderr
    assert "registering the model failed" in failed.stderr and "holds no .onnx file" in failed.stderr
    assert "shipyard models register" in failed.stderr  # the hint says how to finish by hand
    assert (root / "model" / "model.skops").is_file()
    status = ok(run_cli("status", cwd=root))
    assert "Everything is up to date" in status.stdout
    assert versions(root) == []
