"""Paired bootstrap of a metric difference between two models on the same evaluation rows.

Both models are scored on the same rows, and each resample draws rows (with replacement) once for
both, so the interval is for the *difference* and the row-to-row noise they share cancels out.

Classification metrics depend on the rows only through counts of (true label, prediction A,
prediction B) triples, so a resample of n rows is exactly a multinomial draw of those counts:
``rng.multinomial(n, p, size=B)`` gives all B resamples at once at a cost independent of n. Per-row
metrics (absolute or squared error, log loss) are means of per-row losses: a resample draws how
many times each row is taken (exactly multinomial, one random byte per row; see "Per-row metrics").
"""

from __future__ import annotations

import math
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
        if finish is _identity:   # a mean: resample the per-row difference
            diffs = _bootstrap_means((loss_a - loss_b)[None, :], resamples, rng)[:, 0]
        else:   # rmse: A - B comes from the per-row difference, so close models keep their precision
            means = _bootstrap_means(np.stack([loss_a - loss_b, loss_a, loss_b]), resamples, rng)
            diffs = _sqrt_difference(means[:, 0], means[:, 1], means[:, 2])
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return PairedResult(metric, cand, base, cand - base, float(low), float(high), confidence, resamples, n,
                        GREATER_IS_BETTER[metric])


# --- Per-row metrics --------------------------------------------------------------------------------
#
# A per-row metric is a mean of per-row values (or the square root of one), so a resample only needs
# how many times it draws each row: counts c ~ Multinomial(n, 1/n each), and the resampled mean is
# sum(c_i * v_i) / n. Drawing n row indices costs ~17 random bits and a gather per row; here a row's
# count costs one random byte, and the counts are still exactly multinomial:
#
# 1. Independent Poisson(lam) counts, given their total S, are Multinomial(S, 1/n each). With
#    lam = 1 - 4/sqrt(n), S <= n in all but ~3e-5 of resamples (those are drawn again, which
#    conditions on S only). Adding n - S uniformly drawn rows (~4*sqrt(n), the "top-up") then gives
#    Multinomial(n, 1/n each): the plain bootstrap.
# 2. A Poisson count comes from one byte: a byte maps straight to a count when its whole 1/256 cell
#    lies inside that count's share of [0, 1) ("clean" cells, 98.8% of bytes). A byte in the last few
#    ("rare") cells draws its count from a double instead, with the probabilities that the clean
#    cells leave over, so the counts follow Poisson's probabilities to double precision.
# 3. The sums are products of the (resamples, rows) counts with the values, in float32 over values
#    centred on their mean (the error is ~1e-5 of the bootstrap's spread).
#
# Below POISSON_MIN_ROWS rows only the top-up runs: it draws all n rows, the textbook way.

POISSON_MIN_ROWS = 1_000
POISSON_MAX_ROWS = 1 << 24    # float32 counts the rows drawn exactly below this
_CELLS = 256                  # one byte per row
_CLEAN = 5                    # bytes give counts 0..4 directly; the rest is rare
_MARGIN_SDS = 4.0             # lam = 1 - margin / sqrt(n)
_BYTES_PER_DOUBLE = 6         # a uniform double is k / 2**53: bytes 0-5 of k are uniform random bytes
_CHUNK_SLOTS = 1 << 19        # count slots per chunk of resamples: the buffers stay in the CPU cache


def _bootstrap_means(values: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of each row of ``values`` (k, n) over bootstrap resamples of the n columns, the same
    resamples for every row: shape (resamples, k)."""
    k, n = values.shape
    centre = values.mean(axis=1)
    centred = (values - centre[:, None]).astype(np.float32)
    sums = np.empty((resamples, k))
    if n < POISSON_MIN_ROWS or n >= POISSON_MAX_ROWS:
        chunk = max(1, _CHUNK_SLOTS // n)
        for start in range(0, resamples, chunk):
            size = min(chunk, resamples - start)
            sums[start:start + size] = _top_up(centred, np.full(size, n), rng)
        return centre + sums / n
    counts = _PoissonCounts(n, 1 - _MARGIN_SDS / math.sqrt(n), rng)
    placed = counts.place(np.vstack([centred, np.ones(n, np.float32)]))  # last row: rows drawn
    for start in range(0, resamples, counts.chunk):
        size = min(counts.chunk, resamples - start)
        drawn = _poisson_sums(counts, placed, size, n)
        sums[start:start + size] = drawn[:, :-1] + _top_up(centred, n - drawn[:, -1].astype(np.int64), rng)
    return centre + sums / n


def _poisson_sums(counts: _PoissonCounts, placed: np.ndarray, size: int, n: int) -> np.ndarray:
    """(size, k) sums of Poisson counts times the placed rows; a resample that drew more than n rows
    is drawn again (the last placed row is all ones, so its sum is the number of rows drawn)."""
    sums = counts.sums(size, placed)
    while (over := np.flatnonzero(sums[:, -1] > n)).size:
        sums[over] = counts.sums(over.size, placed)
    return sums


def _top_up(values: np.ndarray, extra: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(len(extra), k): for each r, the sums of ``extra[r]`` uniformly drawn columns of ``values``."""
    idx = rng.integers(0, values.shape[1], int(extra.sum()))
    which = np.repeat(np.arange(len(extra)), extra)
    return np.column_stack([np.bincount(which, weights=row[idx], minlength=len(extra)) for row in values])


class _PoissonCounts:
    """Independent Poisson(lam) counts for ``rows`` rows, ``chunk`` resamples at a time, laid out in
    slots: eight per random double, of which the first six are rows (the last two bytes of k are
    never >= the first threshold, so their count is 0; ``place`` puts zeros there anyway)."""

    def __init__(self, rows: int, lam: float, rng: np.random.Generator) -> None:
        self.rows, self.rng = rows, rng
        self.doubles = -(-rows // _BYTES_PER_DOUBLE)
        self.slots = self.doubles * 8
        self.chunk = max(1, _CHUNK_SLOTS // self.slots)
        self.starts, self.rare_cdf = _count_cells(lam)
        self._uniform = np.empty((self.chunk, self.doubles))
        self._bits = np.empty((self.chunk, self.doubles), dtype="<u8")
        self._counts = np.empty((self.chunk, self.slots), dtype=np.uint8)
        self._mask = np.empty((self.chunk, self.slots), dtype=bool)
        self._float = np.empty((self.chunk, self.slots), dtype=np.float32)

    def place(self, values: np.ndarray) -> np.ndarray:
        """The (k, rows) values laid out in the slots, zeros elsewhere: (k, slots)."""
        k = len(values)
        rows = np.zeros((k, self.doubles * _BYTES_PER_DOUBLE), values.dtype)
        rows[:, :self.rows] = values
        slots = np.zeros((k, self.doubles, 8), values.dtype)
        slots[:, :, :_BYTES_PER_DOUBLE] = rows.reshape(k, self.doubles, _BYTES_PER_DOUBLE)
        return slots.reshape(k, self.slots)

    def sums(self, size: int, placed: np.ndarray) -> np.ndarray:
        """(size, k) float64: for each of ``size`` new draws, the counts times each placed row."""
        # einsum, not `@`: OpenBLAS would split these products over threads that spin while they
        # wait, which cost several times the work itself when the machine is busy.
        return np.einsum("ij,kj->ik", self.draw(size), placed).astype(float)

    def draw(self, size: int) -> np.ndarray:
        """(size, slots) float32 counts; the buffer is reused by the next call."""
        uniform, bits = self._uniform[:size].reshape(-1), self._bits[:size].reshape(-1)
        counts, mask = self._counts[:size].reshape(-1), self._mask[:size].reshape(-1)
        self.rng.random(out=uniform)
        np.multiply(uniform, 2.0 ** 53, out=uniform)       # exact: the 53-bit integer k
        np.copyto(bits, uniform, casting="unsafe")
        cells = bits.view(np.uint8)                        # "<u8": byte j holds bits 8j..8j+7 on any CPU
        np.greater_equal(cells, self.starts[1], out=counts.view(bool))
        for start in self.starts[2:_CLEAN]:
            np.greater_equal(cells, start, out=mask)
            np.add(counts, mask.view(np.uint8), out=counts)
        np.greater_equal(cells, self.starts[_CLEAN], out=mask)
        rare = _set_positions(mask)
        counts[rare] = np.searchsorted(self.rare_cdf, self.rng.random(rare.size), side="right")
        out = self._float[:size]
        np.copyto(out.reshape(-1), counts)
        return out


def _set_positions(mask: np.ndarray) -> np.ndarray:
    """Positions of the True values of a sparse 1-D mask whose size is a multiple of 8 (a scan of 8-byte words first: several times faster than np.flatnonzero at ~1% density)."""
    words = np.flatnonzero(mask.view(np.uint64))
    within = np.flatnonzero(mask.reshape(-1, 8)[words])
    return words[within >> 3] * 8 + (within & 7)


def _count_cells(lam: float) -> tuple[np.ndarray, np.ndarray]:
    """Byte thresholds (a clean byte's count is how many of starts[1:_CLEAN] it reaches; a byte >=
    starts[_CLEAN] is rare) and the cumulative distribution of a rare byte's count."""
    k = np.arange(24)   # Poisson(<=1) puts less than 1e-23 beyond, below a double's resolution
    pmf = np.exp(k * math.log(lam) - lam - np.array([math.lgamma(i + 1) for i in k]))
    clean = np.floor(pmf[:_CLEAN] * _CELLS)
    starts = np.concatenate([[0], np.cumsum(clean)]).astype(np.uint8)
    rare = pmf * _CELLS
    rare[:_CLEAN] -= clean
    return starts, np.cumsum(rare) / rare.sum()


def _encode(*arrays: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer codes of the labels of all arrays together (labels compared as text when the arrays'
    kinds differ, so 1 and "1" are the same class). Integer labels are coded in sorted order, other
    labels in order of first appearance (as pandas' factorize did: the bootstrap's cells, and so its
    seeded draws, stay where they were)."""
    kinds = {a.dtype.kind for a in arrays}
    joined = np.concatenate(arrays)
    if len(kinds) > 1 or kinds & {"f", "c", "O"}:
        joined = joined.astype(str)
    if joined.dtype.kind in "iub":
        labels, codes = np.unique(joined, return_inverse=True)
        return codes.reshape(-1), len(labels)
    labels, first, codes = np.unique(joined, return_index=True, return_inverse=True)
    rank = np.empty(len(labels), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(labels))
    return rank[codes.reshape(-1)], len(labels)


def _sqrt_difference(diff: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """sqrt(a) - sqrt(b) computed from diff = a - b (accurate when a and b are close); 0 where both are 0."""
    root_sum = np.sqrt(np.maximum(a, 0)) + np.sqrt(np.maximum(b, 0))
    return np.divide(diff, root_sum, out=np.zeros_like(diff), where=root_sum > 0)


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
            raise InputError(f"log_loss: the evaluation labels include a class the models do not know "
                             f"({y[int(np.argmax(cols < 0))]!r} at row {int(np.argmax(cols < 0))})")
        rows = np.arange(len(y))
        eps = 1e-15
        pa = _numeric(metric, "candidate probabilities", proba_a, len(y))[rows, cols]
        pb = _numeric(metric, "baseline probabilities", proba_b, len(y))[rows, cols]
        return -np.log(np.clip(pa, eps, 1)), -np.log(np.clip(pb, eps, 1)), identity
    truth = _numeric(metric, "evaluation labels", y, len(y))
    ya = _numeric(metric, "candidate predictions", pred_a, len(y)) - truth
    yb = _numeric(metric, "baseline predictions", pred_b, len(y)) - truth
    if metric == "mae":
        return np.abs(ya), np.abs(yb), identity
    if metric == "mse":
        return ya ** 2, yb ** 2, identity
    return ya ** 2, yb ** 2, np.sqrt  # rmse


def _numeric(metric: str, what: str, values: Any, rows: int) -> np.ndarray:
    """``values`` as a float array with one entry (or row) per evaluation row, all finite."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError):
        raise InputError(f"{metric} needs numbers, but the {what} are not numeric") from None
    if len(array) != rows:
        raise InputError(f"{metric}: the {what} have {len(array)} rows, the evaluation set has {rows}")
    bad = np.flatnonzero(~np.isfinite(array).reshape(rows, -1).all(axis=1))
    if bad.size:
        raise InputError(f"{metric}: the {what} are NaN or infinite at {bad.size} row(s), first at row {bad[0]}",
                         hint="drop or fill those rows before comparing")
    return array
