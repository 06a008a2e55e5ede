"""Drift: right verdicts on the benchmark's shifts, thresholds, categorical, constant, renderers."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from shipyard.data.drift import band, compare, compare_profiles
from shipyard.data.profile import profile_frame
from shipyard.data.stats import benjamini_hochberg, jensen_shannon, kolmogorov_sf, psi
from shipyard.errors import InputError

N = 50_000


def pair(n: int = N) -> tuple[pl.DataFrame, pl.DataFrame]:
    rng = np.random.default_rng(1)
    ref = rng.normal(0, 1, size=(n, 6))
    cur = rng.normal(0, 1, size=(n, 6))
    cur[:, 0:2] += 0.5
    cur[:, 2:4] += 0.02
    cols = [f"f{i}" for i in range(6)]
    return pl.DataFrame(ref, schema=cols), pl.DataFrame(cur, schema=cols)


@pytest.fixture(scope="module")
def reference() -> tuple:
    ref, cur = pair()
    return profile_frame(ref, calibrate=True), cur


def test_real_shifts_drift_and_tiny_ones_do_not(reference) -> None:
    prof, cur = reference
    report = compare(prof, cur)
    verdicts = {c.name: c.verdict for c in report.columns}
    assert verdicts == {"f0": "DRIFT", "f1": "DRIFT", "f2": "NO", "f3": "NO", "f4": "NO", "f5": "NO"}
    f0 = next(c for c in report.columns if c.name == "f0")
    assert f0.statistic == "wasserstein" and f0.value == pytest.approx(0.5, abs=0.03)
    assert set(f0.statistics) == {"wasserstein", "psi", "jensen_shannon", "null_rate"}
    assert report.drift_share == pytest.approx(2 / 6)
    assert report.drifted == ["f0", "f1"]
    assert f0.p_adjusted is not None and f0.p_adjusted < 1e-6  # KS on a capped sample


def test_threshold_modes(reference) -> None:
    prof, cur = reference
    calibrated = compare(prof, cur, thresholds="calibrated", multivariate=False)
    # NannyML's mean + 3 sigma alone is tight at this size: even the 0.02 sd shifts cross it
    assert {c.name for c in calibrated.columns if c.verdict == "DRIFT"} >= {"f0", "f1"}
    t = next(c for c in calibrated.columns if c.name == "f2").threshold
    assert t < 0.1
    auto = compare(prof, cur, thresholds="auto", multivariate=False)
    assert all(c.threshold >= 0.1 for c in auto.columns)
    with pytest.raises(InputError, match="thresholds mode"):
        compare(prof, cur, thresholds="pvalue")


def test_bands() -> None:
    assert band(0.2, 0.1) == "DRIFT" and band(0.06, 0.1) == "POSSIBLE" and band(0.01, 0.1) == "NO"
    assert band(None, 0.1) == "NO"


def test_categorical_and_discrete_columns() -> None:
    rng = np.random.default_rng(2)
    ref = pl.DataFrame({"c": rng.choice(["a", "b", "c"], 20_000, p=[0.6, 0.3, 0.1]),
                        "k": rng.integers(0, 3, 20_000)})
    same = pl.DataFrame({"c": rng.choice(["a", "b", "c"], 20_000, p=[0.6, 0.3, 0.1]),
                         "k": rng.integers(0, 3, 20_000)})
    moved = pl.DataFrame({"c": rng.choice(["a", "b", "new"], 20_000, p=[0.2, 0.3, 0.5]),
                          "k": rng.integers(2, 5, 20_000)})
    prof = profile_frame(ref)
    quiet = compare(prof, same)
    assert [c.verdict for c in quiet.columns] == ["NO", "NO"]
    loud = compare(prof, moved)
    assert [(c.name, c.kind, c.statistic, c.verdict) for c in loud.columns] == [
        ("c", "categorical", "jensen_shannon", "DRIFT"), ("k", "discrete", "jensen_shannon", "DRIFT")]
    assert loud.columns[0].test == "chi_square" and loud.columns[0].p_adjusted < 1e-6


def test_zero_variance_reference_column_warns_and_still_judges() -> None:
    ref = pl.DataFrame({"flat": [1.0] * 1000, "x": np.arange(1000.0)})
    prof = profile_frame(ref)
    same = compare(prof, ref)
    flat = same.columns[0]
    assert flat.kind == "constant" and flat.verdict == "NO" and "wasserstein" not in flat.statistics
    assert any("'flat'" in w and "0 variance" in w for w in same.warnings)
    changed = compare(prof, pl.DataFrame({"flat": [1.0] * 500 + [2.0] * 500, "x": np.arange(1000.0)}))
    assert changed.columns[0].verdict == "DRIFT"


def test_missing_and_extra_columns_are_reported(reference) -> None:
    prof, cur = reference
    report = compare(prof, cur.drop("f5").with_columns(pl.lit(1).alias("new")), multivariate=False)
    assert any("'f5'" in w and "missing" in w for w in report.warnings)
    assert any("not in the reference" in w and "new" in w for w in report.warnings)
    with pytest.raises(InputError, match="no rows"):
        compare(prof, cur.head(0))


@pytest.mark.slow
def test_multivariate_pca_and_domain_classifier(reference) -> None:
    pytest.importorskip("sklearn")
    prof, cur = reference
    report = compare(prof, cur, multivariate="all")
    methods = {m["method"]: m for m in report.multivariate}
    assert methods["domain_classifier"]["verdict"] in ("POSSIBLE", "DRIFT")
    assert methods["domain_classifier"]["value"] > 0.58
    assert methods["pca_reconstruction"]["value"] > 0
    ref, _ = pair(5000)
    quiet = compare(profile_frame(ref, seed=3), pair(5000)[0], multivariate="all")
    assert {m["method"]: m["verdict"] for m in quiet.multivariate}["domain_classifier"] == "NO"


def test_renderers(reference) -> None:
    prof, cur = reference
    report = compare(prof, cur)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["drifted_columns"] == ["f0", "f1"] and data["columns"][0]["verdict"] == "DRIFT"
    md = report.to_markdown()
    assert "| f0 | numeric | wasserstein |" in md and "DRIFT" in md
    html = report.to_html()
    assert html.startswith("<!doctype html>") and "<td>f0</td>" in html


def test_compare_profiles_for_diff() -> None:
    ref, cur = pair(20_000)
    out = {c.name: c.verdict for c in compare_profiles(profile_frame(ref), profile_frame(cur))}
    assert out["f0"] == "DRIFT" and out["f5"] == "NO"


def test_statistics_helpers() -> None:
    p = np.array([0.5, 0.5])
    assert jensen_shannon(p, p) == 0 and psi(p, p) == 0
    assert jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(np.sqrt(np.log(2)))
    assert kolmogorov_sf(0.0, 100) == 1.0 and kolmogorov_sf(0.5, 100) < 1e-10
    adj = benjamini_hochberg([0.01, 0.04, 0.03, float("nan")])
    assert adj[0] == pytest.approx(0.03) and adj[1] == pytest.approx(0.04) and np.isnan(adj[3])


def test_type_changes_empty_columns_and_null_rate_are_drift_not_silence() -> None:
    ref = pl.DataFrame({"x": np.arange(1000.0), "c": ["a", "b"] * 500, "m": np.arange(1000.0)})
    prof = profile_frame(ref)
    cur = pl.DataFrame({"x": ["oops"] * 10, "c": pl.Series([None] * 10, dtype=pl.String),
                        "m": [1.0, None, None, 4.0, None, 6.0, None, 8.0, None, 999.0]})
    report = compare(prof, cur, multivariate=False)
    by = {c.name: c for c in report.columns}
    assert by["x"].verdict == "DRIFT" and "no usable current value" in (by["x"].note or "")
    assert by["c"].verdict == "DRIFT" and "10 of 10 null" in (by["c"].note or "")
    assert by["m"].statistics["null_rate"]["value"] == pytest.approx(0.5) and by["m"].verdict == "DRIFT"
    assert any("numeric in the reference but String now" in w for w in report.warnings)
