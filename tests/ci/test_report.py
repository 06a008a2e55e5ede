"""Report rendering (Markdown, HTML, JSON) and the plots, from plain values."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shipyard.ci import plots
from shipyard.ci.report import (
    MINUS,
    DataChange,
    GateRow,
    MetricRow,
    ParamChange,
    PlotRef,
    Report,
    StageRow,
    ValidationRow,
    higher_is_better,
    load,
    to_markdown,
    write,
)


def sample() -> Report:
    return Report(
        project="penguins", commit="a" * 40, branch="more-trees", base_ref="main", base_commit="b" * 40,
        pr_number=7, candidate="penguin-species@4", champion="penguin-species@3", passed=False,
        gates=[GateRow("accuracy >= 0.9", True, 0.97, 0.9, "0.970 >= 0.900"),
               GateRow("f1_macro vs champion", False, -0.02, -0.01, "dropped 0.020 (more than 0.010)")],
        metrics=[MetricRow("accuracy", 0.97, base=0.98, champion=0.96),
                 MetricRow("log_loss", 0.20, base=0.15, champion=0.25, higher_is_better=False)],
        params=[ParamChange("train.n_estimators", 100, 300), ParamChange("train.new", None, "x")],
        data=[DataChange("data/raw.csv", "xxh128:1", "xxh128:2", 344, 340, ["extra"], [], ["year: int → str"]),
              DataChange("data/schema.yaml", "xxh128:3", "xxh128:3")],
        validation=[ValidationRow("data/raw.csv", True)],
        stages=[StageRow("prepare", "cached", 0.01), StageRow("train", "ran", 2.5, "params train.n_estimators changed")],
        plots=[PlotRef("Confusion matrix", "plots/confusion_matrix.png")],
        notes=["base revision 'main' is not in this clone"],
    )


def test_markdown_has_every_section_and_bolds_what_got_worse() -> None:
    md = to_markdown(sample())
    assert md.startswith("## ❌ Shipyard: penguin-species@4 failed 1 of 2 gates")
    for heading in ("### Gates", "### Metrics", "### Params changed", "### Data changed", "### Data validation",
                    "### Pipeline", "### Plots"):
        assert heading in md
    # accuracy fell against main (bold), rose against the champion (plain)
    assert "| accuracy | 0.97 | main `bbbbbbb` | " not in md
    accuracy = next(line for line in md.splitlines() if line.startswith("| accuracy"))
    assert f"**{MINUS}0.01**" in accuracy and "+0.01" in accuracy and "**+0.01**" not in accuracy
    loss = next(line for line in md.splitlines() if line.startswith("| log_loss"))
    assert "**+0.05**" in loss and f"{MINUS}0.05" in loss  # lower is better: a rise is worse
    assert "1 of 2 stages ran, 1 came from the cache" in md
    assert "| `train.n_estimators` | 100 | 300 |" in md and "(absent)" in md
    assert "344 → 340 (-4)" in md and "+extra" in md
    assert "data/schema.yaml" not in md.split("### Data changed")[1].split("###")[0]
    assert "![Confusion matrix](plots/confusion_matrix.png)" in md
    assert "> ⚠️ base revision 'main' is not in this clone" in md
    listed = to_markdown(sample(), images="list")
    assert "![" not in listed and "plots/confusion_matrix.png" in listed
    hosted = to_markdown(sample(), image_base="https://artifacts.example/r/")
    assert "](https://artifacts.example/r/plots/confusion_matrix.png)" in hosted


def test_files_round_trip_and_html_inlines_images(tmp_path: Path) -> None:
    report = sample()
    rng = np.random.default_rng(0)
    y = rng.choice(["a", "b"], 50)
    plots.confusion_matrix(plots.Predictions("candidate", y, y), tmp_path / "plots" / "confusion_matrix.png")
    paths = write(report, tmp_path)
    html = paths["html"].read_text()
    assert "data:image/png;base64," in html and "plots/confusion_matrix.png" not in html
    data = json.loads(paths["json"].read_text())
    assert data["ok"] is False and data["metrics"][0]["delta_base"] == pytest.approx(-0.01)
    again = load(tmp_path)
    assert to_markdown(again) == to_markdown(report)


def test_metric_direction() -> None:
    assert higher_is_better("accuracy") and higher_is_better("f1_macro") and higher_is_better("roc_auc")
    assert not higher_is_better("val_loss") and not higher_is_better("latency_p99_ms")
    assert not higher_is_better("rmse")


def test_plots_are_real_pngs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    classes = ("Adelie", "Chinstrap", "Gentoo")
    y = rng.choice(classes, 200)
    proba = rng.dirichlet([1, 1, 1], 200)
    proba[np.arange(200), [classes.index(c) for c in y]] += 1.0
    proba /= proba.sum(axis=1, keepdims=True)
    pred = np.array(classes)[proba.argmax(axis=1)]
    groups = {"sex": rng.choice(["female", "male"], 200)}
    cand = plots.Predictions("candidate", y, pred, proba, classes, groups)
    champ = plots.Predictions("champion", y, np.where(rng.random(200) < 0.8, y, "Gentoo"), proba[::-1].copy(), classes, groups)
    made = [
        plots.confusion_matrix(cand, tmp_path / "cm.png", champ),
        plots.roc(cand, tmp_path / "roc.png", champ),
        plots.calibration(cand, tmp_path / "cal.png", champ),
        plots.fairness(cand, tmp_path / "fair.png", champ),
        plots.metric_curves({"loss": {"candidate": [(0, 1.0), (1, 0.5), (2, 0.3)], "main": [(0, 1.0), (2, 0.4)]}},
                            tmp_path / "curves.png"),
    ]
    for path in made:
        assert path is not None and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000


def test_roc_and_calibration_math() -> None:
    y = np.array([0, 0, 1, 1])
    _fpr, _tpr, auc = plots.roc_points(y.astype(bool), np.array([0.1, 0.4, 0.35, 0.8]))
    assert auc == pytest.approx(0.75)
    perfect = plots.roc_points(y.astype(bool), np.array([0.1, 0.2, 0.8, 0.9]))[2]
    assert perfect == pytest.approx(1.0)
    _conf, _acc, count, ece = plots.calibration_bins(np.array([1, 1, 0, 0]), np.array([1, 1, 1, 1]),
                                                   np.array([0.95, 0.95, 0.95, 0.95]))
    assert count.sum() == 4 and ece == pytest.approx(0.45)
    matrix = plots.confusion(np.array(["a", "b", "b"]), np.array(["a", "a", "b"]), ["a", "b"])
    assert matrix.tolist() == [[1, 0], [1, 1]]
    assert plots.metric_curves({"acc": {"c": [(0, 1.0)]}}, Path("/nonexistent/x.png")) is None
