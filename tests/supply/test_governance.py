"""Column classifications follow the training data to the model version; a gate forbids them."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.supply.governance import classify_columns
from shipyard.supply.registration import describe
from tests.supply.test_signing import _project, _register, _train

pytestmark = pytest.mark.filterwarnings("ignore")


def test_pii_scan_and_declared_classes() -> None:
    import pandas as pd

    frame = pd.DataFrame({"email": [f"user{i}@example.com" for i in range(20)], "age": range(20),
                          "salary": [float(i) for i in range(20)]})
    assert classify_columns(frame) == {"pii": ["email"]}
    assert classify_columns(frame, {"confidential": ["salary", "not-a-column"]}) == {
        "confidential": ["salary"], "pii": ["email"]}


def test_models_show_and_the_gate_follow_the_classification(project: Any) -> None:
    from shipyard.config import load_config
    from shipyard.gates.runner import run_gate

    root = project.project.root
    _project(root, "{sbom: false, classified: {pii: [b]}}", "gates:\n  - {forbid_classified: pii}\n")
    _train(root, 1.0)
    version = _register(project)
    assert version.lineage["supply"]["classified"] == {"pii": ["b"]}
    assert ("trained on", "columns classified pii: b") in describe(version.lineage)
    verdict = run_gate(project.store, project.objects, "m@1", load_config(project.project.config_path), root,
                       record=False).verdict
    assert not verdict.passed and verdict.checks[0].reason == "features classified pii: b"
    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text().replace("pii: [b]", "pii: []"))
    version = _register(project)
    verdict = run_gate(project.store, project.objects, f"m@{version.version}", load_config(project.project.config_path),
                       root, record=False).verdict
    assert verdict.passed, verdict.to_dict()
