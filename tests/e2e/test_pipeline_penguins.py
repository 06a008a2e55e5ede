"""examples/penguins as a Shipyard pipeline, as the demo runs it: run, no-op, one param, switch back."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_penguins_pipeline_story(penguins: Path) -> None:
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    params = (penguins / "params.yaml").read_text()
    first = run_cli("run", cwd=penguins, env=env, timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    for stage in ("validate", "prepare", "train", "evaluate"):
        assert f"Running stage '{stage}'" in first.stdout
    assert "[evaluate] accuracy" in first.stdout
    assert (penguins / "metrics.json").exists() and (penguins / "shipyard.lock").exists()

    second = run_cli("run", cwd=penguins, env=env)
    assert "Everything is up to date (4 stages); nothing ran." in second.stdout, second.stdout

    (penguins / "params.yaml").write_text(params.replace("n_estimators: 100", "n_estimators: 20"))
    explain = run_cli("explain", "train", cwd=penguins, env=env)
    assert "params params.yaml:train: " in explain.stdout and '"n_estimators": 20' in explain.stdout
    changed = run_cli("run", cwd=penguins, env=env, timeout=600)
    assert changed.returncode == 0, changed.stdout + changed.stderr
    assert "Running stage 'train'" in changed.stdout and "Running stage 'evaluate'" in changed.stdout
    assert "Running stage 'prepare'" not in changed.stdout and "Running stage 'validate'" not in changed.stdout

    (penguins / "params.yaml").write_text(params)
    back = run_cli("run", cwd=penguins, env=env)
    assert back.returncode == 0, back.stdout + back.stderr
    assert "Running stage" not in back.stdout
    assert "Stage 'train' restored from the run cache" in back.stdout
    assert "Stage 'evaluate' restored from the run cache" in back.stdout
