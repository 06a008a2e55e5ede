from pathlib import Path

from shipyard.config import load_config
from tests.conftest import run_cli


def test_deploy_approval_is_a_config_key(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("deploy: {approval: required}\n")
    assert load_config(tmp_path / "shipyard.yaml").deploy.approval == "required"
    (tmp_path / "shipyard.yaml").write_text("deploy: {approval: maybe}\n")
    result = run_cli("rollout", "approve", "1", cwd=tmp_path)
    assert result.returncode == 2 and "shipyard.yaml:1:" in result.stderr and "deploy.approval" in result.stderr


def test_rollout_approve_names_a_missing_trigger(tmp_path: Path) -> None:
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\ndeploy: {approval: required}\n")
    result = run_cli("rollout", "approve", "99", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no trigger #99" in result.stderr and "shipyard triggers history" in result.stderr
