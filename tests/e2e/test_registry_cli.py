"""The registry and gates as a user drives them: the real ``shipyard`` binary on the penguins example."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import run_cli


def _train(root: Path, **train_params: object) -> None:
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"].update(train_params)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    for script in ("src/prepare.py", "src/train.py", "src/evaluate.py"):
        proc = subprocess.run([sys.executable, script], cwd=root, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]


def _log_run(root: Path) -> str:
    """What a pipeline run records: a run with the evaluate metrics and the model file as artifact."""
    from shipyard.hashing import hash_file
    from shipyard.store import runs
    from shipyard.workspace import Workspace

    ws = Workspace.discover(root)
    try:
        metrics = json.loads((root / "metrics.json").read_text())
        model = root / "model" / "model.skops"
        with ws.store.write() as s:
            exp = runs.experiment_by_name(s, "Default")
            run = runs.create_run(s, experiment_id=exp.id, name="train", git_commit="c0ffee")
            runs.log_metrics(s, run.id, [runs.MetricValue(k, float(v)) for k, v in metrics.items()])
            runs.log_artifacts(s, run.id, [("model/model.skops", hash_file(model), model.stat().st_size)])
            runs.finish_run(s, run.id)
        return run.id
    finally:
        ws.close()


def _ok(proc: subprocess.CompletedProcess[str], code: int = 0) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == code, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_register_gate_promote_and_refuse(penguins: Path) -> None:
    _train(penguins)
    run_id = _log_run(penguins)
    registered = json.loads(_ok(run_cli("models", "register", "--json", cwd=penguins)).stdout)
    assert registered["ref"] == "penguin-species@1" and registered["run_id"] == run_id
    assert [c["name"] for c in registered["signature"]["inputs"]][:2] == ["bill_length_mm", "bill_depth_mm"]
    assert registered["profile_oid"].startswith("xxh128:")

    from shipyard.registry import resolve
    from shipyard.workspace import Workspace

    ws = Workspace.discover(penguins)
    with ws.store.read() as s:
        profile = resolve(s, "penguin-species@1").reference_profile()
    ws.close()
    assert "bill_length_mm" in profile.to_dict()["columns"]

    refused = _ok(run_cli("models", "alias", "penguin-species", "champion", "1", cwd=penguins), 1)
    assert "has no gate verdict; refusing to make it champion" in refused.stderr
    first = _ok(run_cli("gate", "penguin-species@1", cwd=penguins))
    assert "No champion yet: compared with thresholds only." in first.stdout
    assert "PASSED (verdict stored)" in first.stdout
    _ok(run_cli("models", "alias", "penguin-species", "champion", "1", cwd=penguins))
    bad_alias = _ok(run_cli("models", "alias", "penguin-species", "v3", "1", cwd=penguins), 2)
    assert "looks like a version number" in bad_alias.stderr

    _train(penguins, features=["bill_depth_mm"], model="logistic_regression")
    _log_run(penguins)
    _ok(run_cli("models", "register", cwd=penguins))
    failed = _ok(run_cli("gate", "penguin-species@2", "--json", cwd=penguins), 1)
    verdict = json.loads(failed.stdout)
    assert verdict["champion"] == {"ref": "penguin-species@1", "version": 1} and verdict["passed"] is False
    comparison = next(c for c in verdict["checks"] if c["name"].startswith("f1_macro vs champion"))
    assert comparison["passed"] is False and comparison["details"]["ci_high"] < 0
    assert "failed" in failed.stderr and "f1_macro vs champion" in failed.stderr

    _ok(run_cli("models", "alias", "penguin-species", "champion", "2", cwd=penguins), 1)
    no_reason = _ok(run_cli("models", "alias", "penguin-species", "champion", "2", "--force", cwd=penguins), 2)
    assert "--force needs --reason" in no_reason.stderr
    _ok(run_cli("models", "alias", "penguin-species", "champion", "2", "--force", "--reason", "incident 42 rollback drill",
                cwd=penguins))
    log = json.loads(_ok(run_cli("audit", "log", "--kind", "model.alias", "--json", cwd=penguins)).stdout)
    newest = json.loads(log[0]["payload"])
    assert newest == {"alias": "champion", "version": 2, "previous": 1, "forced": True,
                      "reason": "incident 42 rollback drill"}
    _ok(run_cli("audit", "verify", cwd=penguins))

    listed = json.loads(_ok(run_cli("models", "list", "--json", cwd=penguins)).stdout)
    assert [(v["version"], v["aliases"], v["verdict"]["passed"]) for v in listed] == [(1, [], True), (2, ["champion"], False)]
    card = _ok(run_cli("models", "card", "penguin-species@1", cwd=penguins)).stdout
    for heading in ("# Model card: penguin-species@1", "## Data", "## Metrics", "### Fairness by sex", "## Signature"):
        assert heading in card
    tree = json.loads(_ok(run_cli("models", "lineage", "penguin-species@1", "--json", cwd=penguins)).stdout)
    assert tree["run"]["git_commit"] == "c0ffee" and tree["registered_from"]["train"]["path"] == "data/prepared/train.parquet"


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("touch pwned.txt",))


def test_malicious_pickle_and_bad_input(project) -> None:  # type: ignore[no-untyped-def]
    root = project.project.root
    (root / "evil").mkdir()
    (root / "evil" / "model.pkl").write_bytes(pickle.dumps(_Evil()))
    untrusted = _ok(run_cli("models", "register", "evil", "--path", "evil/", "--flavor", "pickle", cwd=root), 2)
    assert "runs code when loaded; refusing without trust" in untrusted.stderr
    trusted = _ok(run_cli("models", "register", "evil", "--path", "evil/", "--flavor", "pickle", "--trust", cwd=root), 2)
    assert "pickle imports posix.system" in trusted.stderr or "pickle imports os.system" in trusted.stderr
    assert not (root / "pwned.txt").exists()
    missing = _ok(run_cli("models", "show", "evil@1", cwd=root), 2)
    assert "model 'evil' is not registered" in missing.stderr
    (root / "fake").mkdir()
    (root / "fake" / "model.skops").write_text("not a model")
    fake = _ok(run_cli("models", "register", "fake", "--path", "fake/", cwd=root), 2)
    assert "is not a valid skops file" in fake.stderr
    escape = _ok(run_cli("models", "register", "x", "--path", "../outside", cwd=root), 2)
    assert "outside" in escape.stderr
    no_gates = _ok(run_cli("gate", "x@1", cwd=root), 2)
    assert "not registered" in no_gates.stderr


@pytest.mark.slow
def test_gate_naming_an_unlogged_metric(penguins: Path) -> None:
    _train(penguins)
    _log_run(penguins)
    _ok(run_cli("models", "register", cwd=penguins))
    config = (penguins / "shipyard.yaml").read_text().replace("  - {metric: accuracy, min: 0.90}",
                                                              "  - {metric: roc_auc, min: 0.90}")
    (penguins / "shipyard.yaml").write_text(config)
    proc = _ok(run_cli("gate", "penguin-species@1", cwd=penguins), 2)
    assert "names metric 'roc_auc', which was not logged for penguin-species@1" in proc.stderr
    shown = json.loads(_ok(run_cli("models", "show", "penguin-species@1", "--json", cwd=penguins)).stdout)
    assert shown["verdict"] is None  # nothing stored for a usage error
