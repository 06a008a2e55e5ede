"""Reference profiles: contents, JSON round trip, merging chunks, bounded size, bad input."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from shipyard.data.profile import (
    QUANTILES,
    CategoricalColumn,
    NumericColumn,
    Profile,
    profile_frame,
    profile_path,
)
from shipyard.errors import InputError


def frame(n: int, seed: int = 0, shift: float = 0.0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "x": rng.normal(10 + shift, 2, n),
        "k": rng.integers(0, 4, n),
        "c": rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2]),
    })


def test_numeric_and_categorical_summaries() -> None:
    df = frame(5000).with_columns(pl.when(pl.int_range(pl.len()) < 50).then(None).otherwise(pl.col("x")).alias("x"))
    prof = profile_frame(df)
    x = prof.columns["x"]
    assert isinstance(x, NumericColumn)
    assert x.count == 4950 and x.nulls == 50 and x.null_rate == pytest.approx(0.01)
    assert x.mean == pytest.approx(df["x"].mean()) and x.std == pytest.approx(df["x"].std())
    assert len(x.quantiles) == QUANTILES + 1 and x.quantiles[0] == x.min and x.quantiles[-1] == x.max
    assert x.quantile(0.5) == pytest.approx(df["x"].median(), rel=1e-3)
    k = prof.columns["k"]
    assert isinstance(k, NumericColumn) and k.values is not None and sum(k.values.values()) == 5000
    c = prof.columns["c"]
    assert isinstance(c, CategoricalColumn) and c.n_unique == 3 and next(iter(c.top)) == "a" and c.other == 0


def test_json_round_trip_is_exact_and_size_does_not_grow_with_rows() -> None:
    small = profile_frame(frame(3000), sample_rows=100)
    big = profile_frame(frame(300_000), sample_rows=100)
    again = Profile.from_json(big.to_json())
    assert again.to_dict() == json.loads(big.to_json())
    assert len(big.to_json()) < 1.2 * len(small.to_json())


def test_chunk_profiles_merge_to_the_whole() -> None:
    df = frame(40_000)
    whole = profile_frame(df)
    merged = profile_frame(df.slice(0, 10_000))
    for start in range(10_000, 40_000, 10_000):
        merged = merged.merge(profile_frame(df.slice(start, 10_000)))
    assert merged.rows == whole.rows
    mx, wx = merged.columns["x"], whole.columns["x"]
    assert isinstance(mx, NumericColumn) and isinstance(wx, NumericColumn)
    assert mx.mean == pytest.approx(wx.mean) and mx.std == pytest.approx(wx.std)
    assert (mx.min, mx.max) == (wx.min, wx.max)
    for p in (0.01, 0.1, 0.5, 0.9, 0.99):
        assert mx.quantile(p) == pytest.approx(wx.quantile(p), abs=0.02)
    assert merged.columns["k"].values == whole.columns["k"].values  # type: ignore[union-attr]
    assert merged.columns["c"].top == whole.columns["c"].top  # type: ignore[union-attr]
    assert len(next(iter(merged.sample.values()))) == len(next(iter(whole.sample.values())))


def test_profile_path_streams_and_calibrates(tmp_path) -> None:
    path = tmp_path / "d.parquet"
    frame(30_000).write_parquet(path)
    prof = profile_path(path, chunk_rows=5000, calibrate=True)
    assert prof.rows == 30_000
    assert set(prof.calibration["x"]) == {"wasserstein", "psi", "jensen_shannon"}
    mean, std = prof.calibration["x"]["wasserstein"]
    assert 0 < mean < 0.1 and std >= 0


def test_merge_refuses_different_columns() -> None:
    with pytest.raises(InputError, match="different columns"):
        profile_frame(frame(100)).merge(profile_frame(frame(100).drop("c")))


def test_lazy_and_nested_frames_are_refused() -> None:
    with pytest.raises(InputError, match="LazyFrame"):
        profile_frame(frame(10).lazy())  # type: ignore[arg-type]
    with pytest.raises(InputError, match="'tags' has the nested type"):
        profile_frame(pl.DataFrame({"tags": [[1, 2], [3]]}))


def test_constant_and_all_null_columns_warn() -> None:
    prof = profile_frame(pl.DataFrame({"one": [3.0] * 100, "none": pl.Series([None] * 100, dtype=pl.Float64)}))
    assert any("'one' is constant" in w for w in prof.warnings)
    assert any("'none' has no values" in w for w in prof.warnings)


def test_unknown_profile_format_is_refused() -> None:
    with pytest.raises(InputError, match="format"):
        Profile.from_dict({"format": 99, "rows": 0, "columns": {}})
