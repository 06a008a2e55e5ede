"""The gates: section of shipyard.yaml: each mistake is an error with its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.config import load_config
from shipyard.errors import ConfigError


def _load(tmp_path: Path, gates: str):  # type: ignore[no-untyped-def]
    path = tmp_path / "shipyard.yaml"
    path.write_text("model: {name: p, path: model/}\ngates:\n" + gates)
    return load_config(path)


def test_valid_gates(tmp_path: Path) -> None:
    cfg = _load(tmp_path, "  - {metric: accuracy, min: 0.9}\n  - {metric: f1_macro, vs: champion, max_drop: 0.01}\n"
                          "  - {fairness: demographic_parity_difference, group: sex, max: 0.1}\n"
                          "  - {latency_p50_ms: 5, latency_p99_ms: 20}\n  - {replay: r.parquet, max_disagreement: 0.02}\n")
    assert [g.kind for g in cfg.gates] == ["metric", "metric", "fairness", "latency", "replay"]
    assert cfg.gates[1].label() == "f1_macro vs champion (max_drop 0.01)"


@pytest.mark.parametrize(("gates", "message"), [
    ("  - {metrik: accuracy, min: 0.9}\n", r"shipyard.yaml:3:6: gates.0.metrik: unknown key \(did you mean 'metric'\?\)"),
    ("  - {metric: accuracy}\n", r"shipyard.yaml:3:5: gates.0: metric gate accuracy: give min and/or max"),
    ("  - {metric: f1, vs: champion}\n", r"gates.0: metric gate f1 vs champion: give max_drop or min_gain"),
    ("  - {metric: f1, vs: champion, max_drop: 0.1, min: 0.5}\n", "write the threshold .* as two gates"),
    ("  - {fairness: demographic_parity_difference, max: 0.1}\n", "give group"),
    ("  - {fairness: dpd, group: sex, max: 0.1}\n", r"gates.0.fairness: Input should be"),
    ("  - {latency_p99_ms: 20, group: sex}\n", "group does not apply to a latency gate"),
    ("  - {max_size_mb: 10, metric: accuracy}\n", "this one has metric and max_size_mb"),
    ("  - {}\n", "a gate needs one of: metric, fairness"),
    ("  - {metric: accuracy, vs: champion, max_drop: 0.1, confidence: 1.5}\n", r"gates.0.confidence"),
    ("  - {replay: r.parquet}\n", "give max_disagreement"),
    ("  - {max_size_mb: big}\n", r"shipyard.yaml:3:19: gates.0.max_size_mb: expected a number, got the string 'big'"),
])
def test_bad_gate_entries(tmp_path: Path, gates: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, gates)
