"""The one reader of the request log, over parts written by the gateway's real writer."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.data.requestlog import (
    RequestReader,
    logged_models,
    read_labels,
    read_requests,
    request_parts,
)
from shipyard.monitoring import metrics
from shipyard.monitoring.windows import read_feedback, read_log
from shipyard.rollout import analysis
from shipyard.serving.requestlog import FeedbackEntry, LogEntry, RequestLog


def entry(rid: str, ts: float, prediction: str = "a", route: str = "canary", version: int = 2,
          features: dict[str, list[float]] | None = None) -> LogEntry:
    frame = pd.DataFrame(features or {"x": [1.0]})
    return LogEntry(rid, ts, "iris", version, route, "ok", 1.0, None, frame, np.asarray([prediction]), None, True)


def test_a_corrected_label_wins_whatever_the_order_of_the_part_files(tmp_path: Path) -> None:
    """A request's label is the one posted last (by ts), not the one in the part file listed last:
    part names carry a random uuid. The same label posted twice counts once."""
    now = time.time()
    log = RequestLog(tmp_path / "requests", tmp_path / "feedback")
    for i in range(30):
        log.append(entry(f"r{i}", now))
    log.flush()
    log.append_feedback([FeedbackEntry(f"r{i}", now + 1, "b") for i in range(30)])  # wrong first...
    log.append_feedback([FeedbackEntry(f"r{i}", now + 1, "b") for i in range(30)])  # ...posted twice
    log.flush()
    log.append_feedback([FeedbackEntry(f"r{i}", now + 2, "a") for i in range(30)])  # then corrected
    log.flush()
    parts = sorted((tmp_path / "feedback").rglob("part-*.parquet"), key=lambda p: p.stat().st_mtime_ns)
    assert len(parts) == 2
    parts[-1].rename(parts[-1].with_name("part-0-0.parquet"))  # the correction's file now sorts first

    labels = read_labels(tmp_path / "feedback")
    assert labels.height == 30 and set(labels["label"].to_list()) == {"a"}
    # the monitor's live accuracy and the rollout analysis read the same labels
    window = read_log(tmp_path / "requests", "iris")
    live = metrics.performance(window, read_feedback(tmp_path / "feedback"), task="classification")
    assert live["labelled"] == 30 and live["accuracy"] == 1.0
    requests = RequestReader(tmp_path / "requests").read("iris", now - 60, now + 60, columns=analysis.COLUMNS)
    m = analysis.analyse(requests, read_labels(tmp_path / "feedback", now - 60), candidate=2, champion=None)
    assert m["labels_n"] == 30 and m["accuracy"] == 1.0


def test_a_label_list_with_repeats_is_counted_once_by_the_monitor() -> None:
    import polars as pl

    window = pl.DataFrame({"request_id": ["r1", "r2"], "status": ["ok", "ok"], "prediction": ["a", "a"]})
    labels = pl.DataFrame({"request_id": ["r1", "r1", "r2"], "ts": [2, 1, 1], "label": ["a", "b", "b"]})
    live = metrics.performance(window, labels, task="classification")
    assert live["labelled"] == 2 and live["accuracy"] == 0.5  # r1's latest label (ts 2) is "a"


def test_time_window_is_half_open_and_only_its_hours_are_listed(tmp_path: Path) -> None:
    hour = 3600 * 500_000  # an hour boundary
    log = RequestLog(tmp_path, tmp_path / "feedback")
    for i, ts in enumerate([hour - 10, hour, hour + 10, hour + 3600]):
        log.append(entry(f"r{i}", ts))
    log.flush()
    assert len(request_parts(tmp_path, "iris")) == 3
    assert len(request_parts(tmp_path, "iris", since=hour, until=hour + 3600)) == 1  # pruned by hour partition
    frame = read_requests(tmp_path, "iris", since=hour, until=hour + 3600)
    assert frame["request_id"].to_list() == ["r1", "r2"]  # ts == until belongs to the next window
    assert logged_models(tmp_path) == ["iris"] and read_requests(tmp_path, "other").height == 0


def test_parts_with_different_features_are_one_frame(tmp_path: Path) -> None:
    now = time.time()
    log = RequestLog(tmp_path, tmp_path / "feedback")
    log.append(entry("r1", now, features={"x": [1.0]}))
    log.flush()
    log.append(entry("r2", now + 1, features={"y": [2.0]}))
    log.flush()
    frame = read_requests(tmp_path, "iris")
    assert frame["request_id"].to_list() == ["r1", "r2"]
    assert frame["feature.x"].to_list() == [1.0, None] and frame["feature.y"].to_list() == [None, 2.0]


def test_a_cached_reader_sees_new_parts_and_forgets_old_ones(tmp_path: Path) -> None:
    now = time.time()
    log = RequestLog(tmp_path, tmp_path / "feedback")
    reader = RequestReader(tmp_path, cache=True)
    log.append(entry("r1", now))
    log.flush()
    assert reader.read("iris", now - 1, now + 60)["request_id"].to_list() == ["r1"]
    log.append(entry("r2", now + 1))
    log.flush()
    assert reader.read("iris", now - 1, now + 60)["request_id"].to_list() == ["r1", "r2"]
    assert reader.read("iris", now + 7200, now + 7300).height == 0


@pytest.mark.parametrize("missing", ["nothing", "nothing/deeper"])
def test_no_log_is_no_rows(tmp_path: Path, missing: str) -> None:
    assert read_requests(tmp_path / missing, "iris").height == 0
    assert read_labels(tmp_path / missing).height == 0
    assert RequestReader(tmp_path / missing).read("iris", columns=analysis.COLUMNS).columns == analysis.COLUMNS
