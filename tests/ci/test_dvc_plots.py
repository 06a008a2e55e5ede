"""dvc.yaml's data plots in the report: reading DVC/dvclive plot files and drawing them."""

from __future__ import annotations

import json

from shipyard.ci.collect import plot_records
from shipyard.ci.plots import data_plot


def test_plot_records_reads_dvclive_json_csv_tsv_and_refuses_nothing(tmp_path):
    (tmp_path / "roc.json").write_text(json.dumps({"roc": [{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": 1}]}))
    (tmp_path / "plain.json").write_text(json.dumps([{"step": 0, "loss": 2}]))
    (tmp_path / "m.csv").write_text("step,acc\n0,0.5\n1,0.7\n")
    (tmp_path / "m.tsv").write_text("step\tacc\n0\t0.5\n")
    (tmp_path / "bad.json").write_text("{not json")
    assert plot_records(tmp_path / "roc.json") == [{"fpr": 0, "tpr": 0}, {"fpr": 1, "tpr": 1}]
    assert plot_records(tmp_path / "plain.json") == [{"step": 0, "loss": 2}]
    assert plot_records(tmp_path / "m.csv") == [{"step": "0", "acc": "0.5"}, {"step": "1", "acc": "0.7"}]
    assert plot_records(tmp_path / "m.tsv") == [{"step": "0", "acc": "0.5"}]
    assert plot_records(tmp_path / "bad.json") == [] and plot_records(tmp_path / "missing.json") == []


def test_data_plot_draws_lines_and_confusion_counts(tmp_path):
    rows = {"roc/test.json": [{"fpr": 0, "tpr": 0}, {"fpr": 0.5, "tpr": 0.9}, {"fpr": 1, "tpr": 1}]}
    path = data_plot("ROC", "simple", rows, "fpr", {"roc/test.json": ("tpr",)}, tmp_path / "roc.png")
    assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pairs = {"cm/test.json": [{"actual": 0, "predicted": 0}, {"actual": 1, "predicted": 0}]}
    cm = data_plot("CM", "confusion", pairs, "actual", {"cm/test.json": ("predicted",)}, tmp_path / "cm.png")
    assert cm is not None and cm.stat().st_size > 0
    assert data_plot("empty", "linear", {"x.json": [{"a": "n/a"}]}, "a", {"x.json": ("a",)}, tmp_path / "e.png") is None
    assert not (tmp_path / "e.png").exists()
