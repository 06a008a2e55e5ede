"""Per-row metrics (mae, mse, rmse, log_loss): the fast paired bootstrap is the plain one.

The reference below resamples row indices one resample at a time, the textbook way; the module
draws per-row counts (Poisson counts topped up to exactly n rows). Both are exact bootstraps, so
their intervals differ only by Monte Carlo noise.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss, mean_squared_error

from shipyard.errors import InputError
from shipyard.gates.stats import (
    POISSON_MIN_ROWS,
    _bootstrap_means,
    _poisson_sums,
    _PoissonCounts,
    paired_bootstrap,
)


def reference_interval(metric: str, y: np.ndarray, a: np.ndarray, b: np.ndarray, resamples: int,
                       confidence: float = 0.95, seed: int = 99) -> tuple[float, float]:
    """Percentile interval of metric(a) - metric(b) over plain paired row-index resamples."""
    def score(truth: np.ndarray, pred: np.ndarray) -> float:
        if metric == "log_loss":   # pred holds each row's probability of its true class
            return float(-np.log(np.clip(pred, 1e-15, 1)).mean())
        err = pred - truth
        return {"mae": np.abs(err).mean(), "mse": (err ** 2).mean(), "rmse": math.sqrt((err ** 2).mean())}[metric]

    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, len(y), len(y))
        diffs.append(score(y[idx], a[idx]) - score(y[idx], b[idx]))
    low, high = np.quantile(diffs, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _regression(kind: str, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(len(kind) * 1000 + n)
    y = rng.normal(10, 3, n)
    if kind == "normal":
        return y, y + rng.normal(0, 1.0, n), y + rng.normal(0, 1.1, n)
    if kind == "heavy-tailed":
        return y, y + rng.standard_t(2, n), y + rng.standard_t(2, n) * 1.2
    if kind == "skewed":
        return y, y + rng.exponential(1.0, n), y + rng.exponential(1.3, n)
    # near-identical models: the difference is tiny next to each model's error
    shared = rng.normal(0, 1.0, n)
    return y, y + shared, y + shared + rng.normal(0, 0.001, n)


@pytest.mark.parametrize("n", [300, 5000], ids=["row-index-path", "count-path"])
@pytest.mark.parametrize("kind", ["normal", "heavy-tailed", "skewed", "near-identical"])
@pytest.mark.parametrize("metric", ["mae", "mse", "rmse"])
def test_interval_matches_the_plain_bootstrap(metric: str, kind: str, n: int) -> None:
    y, a, b = _regression(kind, n)
    result = paired_bootstrap(metric, y, a, b, resamples=2000, seed=5)
    low, high = reference_interval(metric, y, a, b, resamples=2000)
    width = high - low
    # each endpoint of a 2000-resample interval moves by ~2% of the width between seeds
    assert result.low == pytest.approx(low, abs=0.1 * width)
    assert result.high == pytest.approx(high, abs=0.1 * width)
    assert result.high - result.low == pytest.approx(width, rel=0.1)


@pytest.mark.parametrize("n", [400, 3000])
def test_log_loss_interval_matches_the_plain_bootstrap(n: int) -> None:
    rng = np.random.default_rng(n)
    classes = np.array(["x", "y", "z"])
    y = rng.choice(classes, n)
    truth = (y[:, None] == classes).astype(float)
    sharp = 0.6 * truth + 0.4 * rng.dirichlet([1, 1, 1], n)
    blunt = 0.3 * truth + 0.7 * rng.dirichlet([1, 1, 1], n)
    result = paired_bootstrap("log_loss", y, y, y, proba_a=sharp, proba_b=blunt, classes=classes,
                              resamples=2000)
    assert result.candidate == pytest.approx(log_loss(y, sharp, labels=classes))
    rows = np.arange(n)
    col = np.searchsorted(classes, y)
    low, high = reference_interval("log_loss", y, sharp[rows, col], blunt[rows, col], resamples=2000)
    assert result.low == pytest.approx(low, abs=0.1 * (high - low))
    assert result.high == pytest.approx(high, abs=0.1 * (high - low))


def _count_moments(means: np.ndarray, n: int) -> None:
    """means[:, :3]: single rows' counts / n; means[:, 3]: the first half's share of the rows drawn."""
    counts = np.rint(means[:, :3] * n).ravel()
    assert np.allclose(means[:, :3] * n, np.rint(means[:, :3] * n), atol=1e-3)   # whole counts (float32 sums)
    # a row's count is Binomial(n, 1/n)
    for k in range(5):
        expected = math.comb(n, k) * (1 / n) ** k * (1 - 1 / n) ** (n - k)
        share = (counts == k).mean()
        assert share == pytest.approx(expected, abs=5 * math.sqrt(expected * (1 - expected) / counts.size))
    # the first half's share of exactly n rows is Binomial(n, 1/2) / n (variance 1/(4n));
    # unconditioned Poisson counts would give twice that, and a short total would shift the mean
    half = means[:, 3]
    assert half.mean() == pytest.approx(0.5, abs=5 * math.sqrt(0.25 / n / len(half)))
    assert half.var() * 4 * n == pytest.approx(1.0, abs=0.05)


def _probe(n: int) -> np.ndarray:
    """Rows 0, 1, 2 alone, and the first half of the rows."""
    probe = np.zeros((4, n))
    probe[[0, 1, 2], [0, 1, 2]] = 1
    probe[3, : n // 2] = 1
    return probe


@pytest.mark.parametrize("n", [POISSON_MIN_ROWS - 1, POISSON_MIN_ROWS, 7001])
def test_resample_counts_are_multinomial(n: int) -> None:
    means = _bootstrap_means(_probe(n), 20_000, np.random.default_rng(1))
    _count_moments(means, n)


def test_resamples_over_n_rows_are_drawn_again() -> None:
    # lam = 1 puts about half the resamples over n rows, so the redraw runs often
    n = 2000
    counts = _PoissonCounts(n, 1.0, np.random.default_rng(2))
    placed = counts.place(np.vstack([_probe(n), np.ones(n)]).astype(np.float32))
    sums = np.vstack([_poisson_sums(counts, placed, counts.chunk, n) for _ in range(40)])
    drawn = sums[:, -1]
    assert drawn.max() <= n
    assert drawn.mean() < n - 10   # the conditioning did happen
    # topped up to n rows the way _bootstrap_means does it, the counts are multinomial
    extra = (n - drawn).astype(int)
    rng = np.random.default_rng(3)
    probe = _probe(n)
    topped = sums[:, :4] + np.stack([probe[:, rng.integers(0, n, e)].sum(axis=1) for e in extra])
    _count_moments(topped / n, n)


def test_same_seed_same_interval_other_seed_other_interval() -> None:
    y, a, b = _regression("normal", 20_000)
    first = paired_bootstrap("rmse", y, a, b, resamples=300, seed=11)
    assert paired_bootstrap("rmse", y, a, b, resamples=300, seed=11) == first
    other = paired_bootstrap("rmse", y, a, b, resamples=300, seed=12)
    assert (other.low, other.high) != (first.low, first.high)
    assert other.delta == first.delta


def test_point_values_match_sklearn() -> None:
    y, a, b = _regression("skewed", 3000)
    result = paired_bootstrap("rmse", y, a, b, resamples=50)
    assert result.candidate == pytest.approx(math.sqrt(mean_squared_error(y, a)))
    assert result.baseline == pytest.approx(math.sqrt(mean_squared_error(y, b)))
    assert result.low <= result.delta <= result.high


@pytest.mark.parametrize("metric", ["mae", "mse", "rmse"])
def test_one_row_has_a_zero_width_interval(metric: str) -> None:
    result = paired_bootstrap(metric, [1.0], [1.5], [3.0], resamples=100)
    assert result.low == pytest.approx(result.delta) and result.high == pytest.approx(result.delta)
    assert result.rows == 1


@pytest.mark.parametrize("n", [50, 4000])
@pytest.mark.parametrize("metric", ["mae", "mse", "rmse"])
def test_constant_errors_have_a_zero_width_interval(metric: str, n: int) -> None:
    y = np.arange(n, dtype=float)
    result = paired_bootstrap(metric, y, y + 0.5, y - 2.0, resamples=200)
    assert result.delta == pytest.approx({"mae": -1.5, "mse": -3.75, "rmse": -1.5}[metric])
    assert result.low == pytest.approx(result.delta) and result.high == pytest.approx(result.delta)


@pytest.mark.parametrize("n", [50, 4000])
def test_identical_models_have_an_exactly_zero_interval(n: int) -> None:
    y, a, _ = _regression("heavy-tailed", n)
    result = paired_bootstrap("rmse", y, a, a.copy(), resamples=200)
    assert result.delta == result.low == result.high == 0


@pytest.mark.parametrize(("metric", "where", "what"), [
    ("mae", "y", "evaluation labels"),
    ("rmse", "a", "candidate predictions"),
    ("mse", "b", "baseline predictions"),
])
def test_nan_is_refused_naming_the_metric_the_input_and_the_row(metric: str, where: str, what: str) -> None:
    y, a, b = (np.linspace(0, 1, 3000) for _ in range(3))
    {"y": y, "a": a, "b": b}[where][1234] = np.nan
    with pytest.raises(InputError, match=f"{metric}: the {what} are NaN or infinite at 1 row.*row 1234"):
        paired_bootstrap(metric, y, a, b)


def test_nan_probabilities_and_bad_shapes_are_refused() -> None:
    y = np.array(["x", "y"] * 50)
    proba = np.full((100, 2), 0.5)
    broken = proba.copy()
    broken[7, 1] = np.nan
    with pytest.raises(InputError, match=r"log_loss: the baseline probabilities are NaN.*row 7"):
        paired_bootstrap("log_loss", y, y, y, proba_a=proba, proba_b=broken, classes=["x", "y"])
    with pytest.raises(InputError, match="mae: the candidate predictions have 99 rows, the evaluation set has 100"):
        paired_bootstrap("mae", np.zeros(100), np.zeros(99), np.zeros(100))
    with pytest.raises(InputError, match="rmse needs numbers, but the baseline predictions are not numeric"):
        paired_bootstrap("rmse", [1.0, 2.0], [1.0, 2.0], ["a", "b"])
