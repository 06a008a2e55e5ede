"""Window analysis over a real request log written by the gateway's writer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.data.requestlog import RequestReader, read_labels
from shipyard.data.stats import sample_psi
from shipyard.rollout import analysis
from shipyard.serving.requestlog import FeedbackEntry, LogEntry, RequestLog


def entry(rid: str, version: int, route: str, label: str | None, ts: float, status: str = "ok",
          latency: float = 1.0) -> LogEntry:
    frame = pd.DataFrame({"x": [1.0]})
    preds = None if label is None else np.asarray([label])
    return LogEntry(rid, ts, "iris", version, route, status, latency, None if status == "ok" else "boom", frame,
                    preds, None, True)


def write(tmp: Path, entries: list[LogEntry], feedback: list[FeedbackEntry] = ()) -> RequestLog:  # type: ignore[assignment]
    log = RequestLog(tmp / "requests", tmp / "feedback")
    for e in entries:
        log.append(e)
    log.append_feedback(list(feedback))
    log.flush()
    return log


def requests(tmp: Path, since: float, until: float) -> object:
    return RequestReader(tmp / "requests").read("iris", since, until, columns=analysis.COLUMNS)


def test_error_rate_latency_and_psi(tmp_path: Path) -> None:
    now = time.time()
    rows = []
    for i in range(200):
        rows.append(entry(f"c{i}", 1, "primary", ["a", "b"][i % 2], now, latency=1.0))
    for i in range(120):
        failed = i % 10 == 0
        rows.append(entry(f"k{i}", 2, "canary", None if failed else "a", now, status="error" if failed else "ok",
                          latency=5.0))
        if failed:  # the champion answered for the failed candidate
            rows.append(entry(f"k{i}", 1, "primary", "b", now))
    write(tmp_path, rows)
    frame = requests(tmp_path, now - 60, now + 60)
    m = analysis.analyse(frame, None, candidate=2, champion=1)
    assert m["candidate_n"] == 120 and m["candidate_errors"] == 12 and m["error_rate"] == pytest.approx(0.1)
    assert m["champion_n"] == 200  # fallback answers are not champion traffic
    assert m["latency_p99_ms"] == pytest.approx(5.0) and m["latency_p99_ratio"] == pytest.approx(5.0)
    assert m["prediction_psi"] > 1.0  # all "a" against half/half


def test_same_distribution_has_small_psi_and_too_few_has_none(tmp_path: Path) -> None:
    now = time.time()
    rows = [entry(f"c{i}", 1, "primary", ["a", "b", "c"][i % 3], now) for i in range(300)]
    rows += [entry(f"k{i}", 2, "canary", ["a", "b", "c"][i % 3], now) for i in range(150)]
    write(tmp_path, rows)
    frame = requests(tmp_path, now - 60, now + 60)
    assert analysis.analyse(frame, None, 2, 1)["prediction_psi"] < 0.01
    few = frame.head(300 + 50)
    assert analysis.analyse(few, None, 2, 1)["prediction_psi"] is None


def test_shadow_disagreement_and_accuracy_from_feedback(tmp_path: Path) -> None:
    now = time.time()
    rows, labels = [], []
    for i in range(40):
        rows.append(entry(f"r{i}", 1, "primary", "a", now))
        rows.append(entry(f"r{i}", 2, "shadow", "a" if i % 4 else "b", now))
        labels.append(FeedbackEntry(f"r{i}", now, "a" if i % 2 else "b"))
    write(tmp_path, rows, labels)
    frame = requests(tmp_path, now - 60, now + 60)
    fb = read_labels(tmp_path / "feedback", now - 60)
    m = analysis.analyse(frame, fb, candidate=2, champion=1)
    assert m["shadow_n"] == 40 and m["shadow_disagreement"] == pytest.approx(0.25)
    assert m["labels_n"] == 40 and m["champion_labels_n"] == 40
    assert m["champion_accuracy"] == pytest.approx(0.5)
    assert m["accuracy"] == pytest.approx(0.75)  # right on odd rows and on rows divisible by 4
    assert m["accuracy_drop"] == pytest.approx(-0.25)


def test_window_bounds_and_empty_log(tmp_path: Path) -> None:
    now = time.time()
    write(tmp_path, [entry("old", 2, "canary", "a", now - 3600), entry("new", 2, "canary", "a", now)])
    frame = requests(tmp_path, now - 60, now + 60)
    assert frame["request_id"].to_list() == ["new"]
    empty = RequestReader(tmp_path / "nothing").read("iris", now - 60, now, columns=analysis.COLUMNS)
    m = analysis.analyse(empty, None, 2, 1)
    assert m["candidate_n"] == 0 and m["error_rate"] is None and m["prediction_psi"] is None


def test_numeric_psi_uses_champion_deciles() -> None:
    rng = np.random.default_rng(0)
    same = sample_psi(rng.normal(size=2000), rng.normal(size=2000))
    shifted = sample_psi(rng.normal(2, 1, size=2000), rng.normal(size=2000))
    assert same is not None and shifted is not None and same < 0.05 < 1.0 < shifted


@pytest.mark.parametrize("kind", ["continuous", "discrete", "labels"])
def test_the_rollout_psi_is_the_drift_reports_psi(kind: str) -> None:
    """One PSI: the candidate-vs-champion PSI of a rollout equals the PSI a drift report computes
    for the same two samples (the rollout used to bin at [lo, hi) deciles of its own)."""
    import polars as pl

    from shipyard.data.profile import profile_frame
    from shipyard.data.stats import column_statistics

    rng = np.random.default_rng(1)
    champion, candidate = {
        "continuous": (rng.normal(size=1001), rng.normal(0.3, 1, size=700)),
        "discrete": (rng.integers(0, 5, size=1000).astype(float), rng.integers(1, 6, size=700).astype(float)),
        "labels": (rng.choice(["a", "b", "c"], size=1000), rng.choice(["a", "b"], size=700)),
    }[kind]
    reference = profile_frame(pl.DataFrame({"p": champion})).columns["p"]
    report = column_statistics(reference, pl.Series("p", candidate))["psi"]
    assert sample_psi(candidate, champion) == pytest.approx(report, rel=1e-12)
