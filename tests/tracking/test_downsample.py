"""Server-side downsampling of metric series: spikes survive, the limit holds, order is kept, NaN is a gap."""

from __future__ import annotations

import math

import pytest

from shipyard.tracking.downsample import downsample


def test_a_short_series_comes_back_whole_with_gaps_for_non_finite_values() -> None:
    xs, ys = downsample([0, 1, 2, 3], [1.0, math.nan, math.inf, 4.0], limit=10)
    assert xs == [0, 1, 2, 3]
    assert ys == [1.0, None, None, 4.0]


def test_a_one_point_spike_in_100k_points_survives_within_the_limit() -> None:
    n = 100_000
    ys = [math.sin(i / 500) for i in range(n)]
    ys[54_321] = 50.0
    ys[77_777] = -40.0
    xs, out = downsample(list(range(n)), ys, limit=1000)
    assert len(xs) == len(out) <= 1000
    assert 50.0 in out and -40.0 in out
    assert xs[out.index(50.0)] == 54_321
    assert xs == sorted(xs)  # order kept, no point twice
    assert len(set(xs)) == len(xs)
    assert max(out) == 50.0 and min(out) == -40.0  # the envelope is exact


def test_a_run_of_nan_stays_a_gap_and_finite_neighbours_are_kept() -> None:
    ys: list[float | None] = [float(i) for i in range(10_000)]
    for i in range(4_000, 6_000):
        ys[i] = math.nan
    ys[100] = None
    xs, out = downsample(list(range(10_000)), ys, limit=100)
    assert len(out) <= 100
    gaps = [x for x, y in zip(xs, out, strict=True) if y is None]
    assert gaps and all(4_000 <= x < 6_000 for x in gaps)
    assert out[0] == 0.0 and out[-1] == 9_999.0


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="must match"):
        downsample([1, 2], [1.0])
    with pytest.raises(ValueError, match="at least 2"):
        downsample([1, 2, 3], [1.0, 2.0, 3.0], limit=1)
