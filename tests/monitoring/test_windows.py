"""Tumbling windows over the request log files."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shipyard.monitoring.windows import count_windows, logged_models, read_log, time_windows
from tests.monitoring.logs import traffic, write_log

START = 1_700_000_400.0  # a multiple of 60 s? no: windows align to the epoch anyway


def test_reads_only_rows_after_the_cursor(tmp_path: Path) -> None:
    write_log(tmp_path, traffic(100, seed=1, start=START, spacing=1.0))
    frame = read_log(tmp_path, "penguins", since=START + 50)
    assert frame.height == 50 and frame["t"].is_sorted()
    assert logged_models(tmp_path) == ["penguins"]
    assert read_log(tmp_path, "other").height == 0


def test_time_windows_align_and_only_closed_ones_count(tmp_path: Path) -> None:
    frame = traffic(300, seed=1, start=START, spacing=1.0).with_columns(
        (pl.col("ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("t"))
    windows = time_windows(frame, size_s=60, cursor=None, now=START + 200, min_rows=1)
    assert [w.start % 60 for w in windows] == [0.0] * len(windows)
    assert all(w.end <= START + 200 for w in windows)
    assert sum(w.frame.height for w in windows) == sum(1 for t in frame["t"] if t < (START + 200) // 60 * 60)


def test_quiet_windows_merge_into_one_empty_window() -> None:
    a = traffic(60, seed=1, start=START, spacing=1.0)
    b = traffic(60, seed=2, start=START + 600, spacing=1.0)
    frame = pl.concat([a, b]).with_columns((pl.col("ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("t"))
    windows = time_windows(frame, size_s=60, cursor=START // 60 * 60 + 120, now=START + 1000, min_rows=30)
    kinds = [(w.end - w.start, w.frame.height) for w in windows]
    assert kinds[0][0] >= 360 and kinds[0][1] == 0  # one empty window over the quiet gap


def test_count_windows_keep_the_tail_for_later() -> None:
    frame = traffic(250, seed=1, start=START, spacing=1.0).with_columns(
        (pl.col("ts").dt.epoch("us").cast(pl.Float64) / 1e6).alias("t"))
    windows = count_windows(frame, rows=100, cursor=None)
    assert [w.frame.height for w in windows] == [100, 100]
    rest = count_windows(frame, rows=100, cursor=windows[-1].end)
    assert rest == []
