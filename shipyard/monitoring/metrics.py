"""The metrics of one window of the request log, flat and named as rules read them.

Inputs are the window's rows (contract 4: ``feature.<name>`` columns, ``prediction``, ``score``,
``status``, ``latency_ms``...), the served version's training reference profile and the feedback
labels joined by ``request_id``. Everything is computed against the stored profile, so the cost is
O(window) and the reference data is never re-read. Shadow rows are left out (they never answered a
caller). A window with fewer than ``min_rows`` answered requests has no verdict: only its traffic
metrics are kept, never a drift or accuracy figure.

Realized performance (``accuracy``, ``f1``, ``rmse``, ``mae``) needs labels; without them the
classifier's accuracy is *estimated* from its confidence (NannyML's CBPE idea: under calibrated
probabilities, the expected accuracy is the mean top-class probability), stored as
``estimated_accuracy`` with its standard error and ``estimate: "cbpe"`` so it is never mistaken for
a measurement.

Drift statistics of a window larger than ``drift_rows`` (default 25,000) are computed on a uniform
sample of that many rows: at that size the sampling error of the normed Wasserstein, PSI and
Jensen-Shannon distances is about 0.01, a tenth of their thresholds, and the cost stays flat as
traffic grows. Traffic, latency, quality and accuracy always use every row.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.data.requestlog import answered, features, latest_labels

if TYPE_CHECKING:
    import polars as pl

    from shipyard.data.profile import Profile

FEATURE_PREFIX = "feature."


def _round(value: float | None, digits: int = 6) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, digits) if math.isfinite(value) else None


def traffic(frame: pl.DataFrame) -> dict[str, Any]:
    """Requests, errors and latency of the window (every non-shadow row)."""
    n = frame.height
    out: dict[str, Any] = {"rows": n}
    if n == 0:
        return out
    errors = int((frame["status"] != "ok").sum()) if "status" in frame.columns else 0
    out["errors"] = errors
    out["error_rate"] = _round(errors / n)
    if "latency_ms" in frame.columns:
        lat = frame["latency_ms"].drop_nulls().to_numpy()
        if lat.size:
            p50, p95, p99 = np.quantile(lat, [0.5, 0.95, 0.99])
            out.update(latency_mean_ms=_round(lat.mean(), 3), latency_p50_ms=_round(p50, 3),
                       latency_p95_ms=_round(p95, 3), latency_p99_ms=_round(p99, 3))
    return out


def feature_frame(frame: pl.DataFrame) -> pl.DataFrame:
    """The ``feature.*`` columns of answered requests, without the prefix."""
    return features(answered(frame))


DRIFT_ROWS = 25_000       # drift statistics of larger windows use a uniform sample this large
CALIBRATE_BELOW = 5000   # windows this large see sampling noise under the default thresholds
CALIBRATION_DRAWS = 20
_CALIBRATED: dict[tuple[int, int], Profile] = {}


def calibrated_for_window(reference: Profile, rows: int, seed: int = 0) -> Profile:
    """The reference with thresholds fitted to windows of ``rows`` requests.

    Small windows drift by chance alone (the normed Wasserstein of 500 rows drawn from the training
    distribution itself is about 0.1, the default threshold). NannyML calibrates its thresholds on
    reference chunks (mean + 3 sd); we do the same at the window's size, drawing ``rows`` rows from
    the profile's stored sample 20 times, so a quiet window stays quiet whatever its size. Columns
    the data room already calibrated keep their calibration; large windows need none.
    """
    if rows >= CALIBRATE_BELOW or not reference.sample:
        return reference
    bucket = 1 << max(4, (rows - 1).bit_length())  # cache by power of two
    key = (id(reference), bucket)
    if key in _CALIBRATED:
        return _CALIBRATED[key]
    import copy

    import polars as pl

    from shipyard.data.stats import calibration

    sample = pl.DataFrame(reference.sample, strict=False)
    rng = np.random.default_rng(seed)
    size = min(rows, bucket)
    draws = (sample[rng.integers(0, sample.height, size)] for _ in range(CALIBRATION_DRAWS))
    # Draws come from the reference itself; live windows are independent of it, which widens the
    # distance by about sqrt(1/n + 1/N) / sqrt(1/n) (N reference rows).
    widen = math.sqrt(1.0 + size / max(reference.rows, 1))
    out = copy.copy(reference)
    out.calibration = {**reference.calibration,
                       **calibration(reference.columns, draws, skip=reference.calibration, scale=widen)}
    _CALIBRATED[key] = out
    return out


def drift(reference: Profile, features: pl.DataFrame, *, thresholds: str, drift_share: float,
          expected: list[str] | None = None, multivariate: bool = False) -> dict[str, Any]:
    """Feature drift against the reference profile (the data room's statistics and thresholds)."""
    from shipyard.data import drift as data_drift

    wanted = [c for c in (expected or list(reference.columns)) if c in reference.columns]
    present = [c for c in wanted if c in features.columns]
    out: dict[str, Any] = {"missing_features": len(wanted) - len(present)}
    if not present or features.height == 0:
        return out
    if thresholds == "auto":
        reference = calibrated_for_window(reference, features.height)
    report = data_drift.compare(reference, features.select(present), thresholds=thresholds, drift_share=drift_share,
                                columns=present, multivariate="pca" if multivariate else False)
    out["drift_share"] = _round(report.drift_share)
    out["drifted_features"] = len(report.drifted)
    out["dataset_drift"] = int(report.dataset_drift)
    out["drifted"] = report.drifted
    for m in report.multivariate:
        if m.get("method") == "pca" and m.get("value") is not None:
            out["multivariate_drift"] = _round(m["value"])
    for col in report.columns:
        key = f"{FEATURE_PREFIX}{col.name}."
        out[key + "drift"] = _round(col.value)
        out[key + "verdict"] = col.verdict
        out[key + "null_rate"] = _round(col.null_rate[1])
        for stat, info in col.statistics.items():
            out[key + stat] = _round(info.get("value"))
    return out


def quality(reference: Profile, features: pl.DataFrame, expected: list[str] | None = None) -> dict[str, Any]:
    """Nulls, values outside the training range and categories never seen in training."""
    import polars as pl

    from shipyard.data.profile import CategoricalColumn, NumericColumn

    n = features.height
    if n == 0:
        return {}
    names = [c for c in (expected or list(reference.columns)) if c in features.columns]
    if not names:
        return {}
    out: dict[str, Any] = {}
    nulls = sum(features[c].null_count() for c in names)
    out["null_share"] = _round(nulls / (n * len(names)))
    any_out = np.zeros(n, dtype=bool)
    any_unseen = np.zeros(n, dtype=bool)
    for name in names:
        ref = reference.columns.get(name)
        series = features[name]
        key = f"{FEATURE_PREFIX}{name}."
        if isinstance(ref, NumericColumn) and ref.count and series.dtype.is_numeric():
            values = series.cast(pl.Float64).to_numpy()
            with np.errstate(invalid="ignore"):
                outside = (values < ref.min) | (values > ref.max)
            outside &= ~np.isnan(values)
            any_out |= outside
            out[key + "out_of_range_share"] = _round(outside.mean())
            mean = np.nanmean(values) if np.isfinite(values).any() else None
            out[key + "mean"] = _round(mean)
        elif isinstance(ref, CategoricalColumn) and ref.count and ref.other == 0:
            as_text = series.cast(pl.String)
            unseen = (~as_text.is_in(list(ref.top)) & as_text.is_not_null()).to_numpy()
            any_unseen |= unseen
            out[key + "unseen_share"] = _round(unseen.mean())
    out["out_of_range_share"] = _round(any_out.mean())
    out["unseen_category_share"] = _round(any_unseen.mean())
    return out


def prediction_drift(reference: Profile | None, predictions: pl.Series, target: str | None) -> dict[str, Any]:
    """Predictions vs the training target's distribution (a label-shift signal), when it is profiled."""
    import polars as pl

    from shipyard.data import drift as data_drift

    if reference is None or not target or target not in reference.columns or predictions.len() == 0:
        return {}
    frame = pl.DataFrame({target: predictions})
    report = data_drift.compare(reference, frame, columns=[target], multivariate=False, thresholds="effect")
    col = report.columns[0]
    return {"prediction_drift": _round(col.value), "prediction_verdict": col.verdict}


def performance(window: pl.DataFrame, labels: pl.DataFrame | None, *, task: str) -> dict[str, Any]:
    """Realized performance on labelled rows; CBPE-style estimate from ``score`` otherwise."""
    import polars as pl

    out: dict[str, Any] = {}
    ok = window.filter(pl.col("status") == "ok") if "status" in window.columns else window
    if ok.height == 0:
        return out
    if labels is not None and labels.height and "request_id" in ok.columns:
        joined = ok.select("request_id", "prediction").join(
            latest_labels(labels), on="request_id", how="inner")
        out["labelled"] = joined.height
        if joined.height:
            if task == "classification":
                pred = joined["prediction"].cast(pl.String).to_numpy()
                true = joined["label"].cast(pl.String).to_numpy()
                out["accuracy"] = _round((pred == true).mean())
                out["f1"] = _round(_macro_f1(true, pred))
            else:
                pred = joined["prediction"].cast(pl.Float64).to_numpy()
                true = joined["label"].cast(pl.Float64).to_numpy()
                err = pred - true
                out["rmse"] = _round(math.sqrt(float(np.mean(err ** 2))))
                out["mae"] = _round(float(np.mean(np.abs(err))))
    else:
        out["labelled"] = 0
    if task == "classification" and "score" in ok.columns:
        scores = ok["score"].drop_nulls().cast(pl.Float64).to_numpy()
        if scores.size:
            out["estimated_accuracy"] = _round(scores.mean())
            out["estimated_accuracy_se"] = _round(scores.std(ddof=0) / math.sqrt(scores.size))
            out["estimate"] = "cbpe"
    return out


def _macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    scores = []
    for label in np.unique(np.concatenate([true, pred])):
        tp = float(np.sum((pred == label) & (true == label)))
        fp = float(np.sum((pred == label) & (true != label)))
        fn = float(np.sum((pred != label) & (true == label)))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else math.nan


def window_metrics(window: pl.DataFrame, reference: Profile | None, *, min_rows: int, thresholds: str = "auto",
                   drift_share: float = 0.5, expected: list[str] | None = None, target: str | None = None,
                   labels: pl.DataFrame | None = None, multivariate: bool = False,
                   drift_rows: int | None = DRIFT_ROWS) -> tuple[str, dict[str, Any]]:
    """(verdict, metrics) of one window. Verdict: ``empty`` (too few rows: no verdict), ``drift``,
    ``ok``, or ``no_reference`` (traffic only: the version has no stored training profile)."""
    import polars as pl

    if "route" in window.columns:
        window = window.filter(pl.col("route") != "shadow")
    metrics = traffic(window)
    answered = window.filter(pl.col("status") == "ok") if "status" in window.columns else window
    if answered.height < min_rows:
        metrics["note"] = f"{answered.height} answered requests < min_rows {min_rows}: no verdict"
        return "empty", metrics
    task = "classification" if "prediction" in window.columns and window.schema["prediction"] == pl.String else "regression"
    metrics.update(performance(window, labels, task=task))
    if reference is None:
        return "no_reference", metrics
    if expected is None:
        expected = [c for c in reference.columns if c != target]
    features = feature_frame(window)
    sample = features
    if drift_rows and features.height > drift_rows:
        sample = features.sample(drift_rows, seed=0)
        metrics["drift_rows"] = drift_rows
    metrics.update(drift(reference, sample, thresholds=thresholds, drift_share=drift_share, expected=expected,
                         multivariate=multivariate))
    metrics.update(quality(reference, features, expected))
    if "prediction" in answered.columns:
        metrics.update(prediction_drift(reference, answered["prediction"], target))
    return ("drift" if metrics.get("dataset_drift") else "ok"), metrics
