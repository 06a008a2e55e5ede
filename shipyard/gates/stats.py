"""Paired bootstrap of a metric difference between two models on the same evaluation rows.

Both models are scored on the same rows, and each resample draws rows (with replacement) once for
both, so the interval is for the *difference* and the row-to-row noise they share cancels out.

Classification metrics depend on the rows only through counts of (true label, prediction A,
prediction B) triples, so a resample of n rows is exactly a multinomial draw of those counts:
``rng.multinomial(n, p, size=B)`` gives all B resamples at once at a cost independent of n. Per-row
metrics (absolute or squared error, log loss) resample the per-row difference in chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from shipyard.errors import InputError

GREATER_IS_BETTER = {
    "accuracy": True, "balanced_accuracy": True, "f1_macro": True, "precision_macro": True,
    "recall_macro": True, "f1_weighted": True, "error_rate": False,
    "mae": False, "mse": False, "rmse": False, "log_loss": False,
}
CLASSIFICATION = {"accuracy", "balanced_accuracy", "f1_macro", "precision_macro", "recall_macro", "f1_weighted",
                  "error_rate"}
PER_ROW = {"mae", "mse", "rmse", "log_loss"}
METRICS = tuple(sorted(GREATER_IS_BETTER))


@dataclass(frozen=True)
class PairedResult:
    """Candidate and baseline metric, their difference (candidate - baseline) and its interval."""

    metric: str
    candidate: float
    baseline: float
    delta: float
    low: float
    high: float
    confidence: float
    resamples: int
    rows: int
    greater_is_better: bool

    @property
    def gain(self) -> tuple[float, float, float]:
        """(gain, low, high): the improvement, positive = better, whatever the metric's direction."""
        if self.greater_is_better:
            return self.delta, self.low, self.high
        return -self.delta, -self.high, -self.low

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "candidate": self.candidate, "baseline": self.baseline, "delta": self.delta,
                "ci_low": self.low, "ci_high": self.high, "confidence": self.confidence,
                "resamples": self.resamples, "rows": self.rows, "greater_is_better": self.greater_is_better}


def _from_confusion(metric: str, conf: np.ndarray) -> np.ndarray:
    """Metric values from confusion counts of shape (B, K, K) [true, predicted]."""
    total = conf.sum(axis=(1, 2)).astype(float)
    tp = np.diagonal(conf, axis1=1, axis2=2).astype(float)
    if metric == "accuracy":
        return tp.sum(axis=1) / total
    if metric == "error_rate":
        return 1 - tp.sum(axis=1) / total
    support = conf.sum(axis=2).astype(float)     # true counts per class
    predicted = conf.sum(axis=1).astype(float)   # predicted counts per class
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)
    n_present = np.maximum(present.sum(axis=1), 1)
    if metric == "balanced_accuracy":
        return recall.sum(axis=1) / np.maximum((support > 0).sum(axis=1), 1)
    if metric == "recall_macro":
        return recall.sum(axis=1) / n_present
    if metric == "precision_macro":
        return precision.sum(axis=1) / n_present
    if metric == "f1_macro":
        return f1.sum(axis=1) / n_present
    if metric == "f1_weighted":
        return (f1 * support).sum(axis=1) / total
    raise InputError(f"unknown classification metric {metric!r}")


def paired_bootstrap(metric: str, y_true: Any, pred_a: Any, pred_b: Any, *, resamples: int = 1000,
                     confidence: float = 0.95, seed: int = 0, proba_a: Any = None, proba_b: Any = None,
                     classes: Any = None) -> PairedResult:
    """The difference metric(A) - metric(B) on the same rows, with a percentile bootstrap interval."""
    if metric not in GREATER_IS_BETTER:
        from shipyard.errors import did_you_mean

        raise InputError(f"metric {metric!r} cannot be compared on the evaluation set",
                         hint=did_you_mean(metric, METRICS) or "known: " + ", ".join(METRICS))
    y = np.asarray(y_true)
    n = len(y)
    if n == 0:
        raise InputError("the evaluation set is empty; nothing to compare")
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    if metric in CLASSIFICATION:
        codes, k = _encode(y, np.asarray(pred_a), np.asarray(pred_b))
        t, a, b = codes[:n], codes[n:2 * n], codes[2 * n:]
        cell = (t * k + a) * k + b
        counts = np.bincount(cell, minlength=k ** 3).astype(float)
        observed = counts[None, :]
        draws = rng.multinomial(n, counts / n, size=resamples)
        stats = []
        for which in (observed, draws):
            cube = which.reshape(-1, k, k, k)
            conf_a = cube.sum(axis=3)   # [true, a]
            conf_b = cube.sum(axis=2)   # [true, b]
            stats.append((_from_confusion(metric, conf_a), _from_confusion(metric, conf_b)))
        (obs_a, obs_b), (boot_a, boot_b) = stats
        cand, base = float(obs_a[0]), float(obs_b[0])
        diffs = boot_a - boot_b
    else:
        loss_a, loss_b, finish = _per_row(metric, y, pred_a, pred_b, proba_a, proba_b, classes)
        cand, base = finish(loss_a.mean()), finish(loss_b.mean())
        diffs = np.empty(resamples)
        chunk = max(1, min(resamples, 8_000_000 // max(n, 1)))
        linear = finish is _identity  # the metric is a mean: resample the per-row difference only
        # float32 rows with numpy's pairwise summation along the contiguous axis: exact enough for
        # an interval (relative error ~1e-7) and several times faster than float64 accumulation.
        delta = (loss_a - loss_b).astype(np.float32)
        a32, b32 = loss_a.astype(np.float32), loss_b.astype(np.float32)
        for start in range(0, resamples, chunk):
            size = min(chunk, resamples - start)
            idx = rng.integers(0, n, size=(size, n), dtype=np.int32)
            if linear:
                diffs[start:start + size] = delta[idx].mean(axis=1)
            else:
                diffs[start:start + size] = finish(a32[idx].mean(axis=1).astype(float)) - finish(b32[idx].mean(axis=1).astype(float))
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return PairedResult(metric, cand, base, cand - base, float(low), float(high), confidence, resamples, n,
                        GREATER_IS_BETTER[metric])


def _encode(*arrays: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes of the labels of all arrays together (hash-based; labels compared as text
    when the arrays' kinds differ, so 1 and "1" are the same class)."""
    kinds = {a.dtype.kind for a in arrays}
    joined = np.concatenate(arrays)
    if len(kinds) > 1 or kinds & {"f", "c"}:
        joined = joined.astype(str)
    if joined.dtype.kind in "iub":
        labels, codes = np.unique(joined, return_inverse=True)
        return codes.reshape(-1), len(labels)
    import pandas as pd

    codes, labels = pd.factorize(joined, sort=False)
    return np.asarray(codes), len(labels)


def _identity(value: Any) -> Any:
    return value


def _per_row(metric: str, y: np.ndarray, pred_a: Any, pred_b: Any, proba_a: Any, proba_b: Any,
             classes: Any) -> tuple[np.ndarray, np.ndarray, Callable[[Any], Any]]:
    identity = _identity
    if metric == "log_loss":
        if proba_a is None or proba_b is None or classes is None:
            raise InputError("log_loss needs both models' class probabilities (predict_proba)")
        index = {str(c): i for i, c in enumerate(classes)}
        cols = np.array([index.get(str(v), -1) for v in y])
        if (cols < 0).any():
            raise InputError("the evaluation labels include a class the models do not know")
        rows = np.arange(len(y))
        eps = 1e-15
        la = -np.log(np.clip(np.asarray(proba_a)[rows, cols], eps, 1))
        lb = -np.log(np.clip(np.asarray(proba_b)[rows, cols], eps, 1))
        return la, lb, identity
    ya = np.asarray(pred_a, dtype=float) - y.astype(float)
    yb = np.asarray(pred_b, dtype=float) - y.astype(float)
    if metric == "mae":
        return np.abs(ya), np.abs(yb), identity
    if metric == "mse":
        return ya ** 2, yb ** 2, identity
    return ya ** 2, yb ** 2, np.sqrt  # rmse


def metric_value(metric: str, y_true: Any, pred: Any) -> float:
    """One metric on one model's predictions (same formulas as the bootstrap)."""
    return paired_bootstrap(metric, y_true, pred, pred, resamples=1).candidate
