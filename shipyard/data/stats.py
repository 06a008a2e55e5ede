"""Drift statistics of one column against its reference profile, on numpy only.

Numeric columns are binned at the reference's distinct quantile values, so the reference never
needs its raw rows: Wasserstein-1 (normed by the reference std) is the integral of the difference
of the two step CDFs plus the exact tails beyond the reference min and max; PSI uses the 10
reference deciles, Jensen-Shannon the 20 reference vigintiles (or the exact values of a discrete
column). Categorical columns compare the reference's top-K values plus an "other" bucket.
The same functions accept the current side as a Series (exact) or as a profile (for ``data diff``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from shipyard.data.columns import (
    PROBS,
    QUANTILES,
    CategoricalColumn,
    Column,
    NumericColumn,
    categorical_column,
    cdf_at,
    numeric_column,
)

if TYPE_CHECKING:
    import polars as pl

EPS = 1e-4           # floor of a bin's share in PSI and JS (Evidently's choice)
STD_FLOOR = 1e-3     # Evidently's floor of the reference std in the normed Wasserstein
PSI_BINS = 10
JS_BINS = 20


@dataclass
class Binned:
    """The current side of one numeric column, seen through the reference's bins."""

    cdf: np.ndarray          # fraction of current values <= each reference edge
    below: float             # integral of the current CDF left of the first edge
    above: float             # integral of (1 - current CDF) right of the last edge
    n: int
    under: float = 0.0       # fraction of current values below the first edge


def numeric_values(series: pl.Series) -> np.ndarray:
    """Finite values of a numeric (or temporal) series as float64."""
    import polars as pl

    if series.dtype.is_temporal():
        series = series.to_physical()
    if not series.dtype.is_numeric():
        series = series.cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    values = series.cast(pl.Float64).drop_nulls().to_numpy()
    return values[np.isfinite(values)]


def reference_edges(ref: NumericColumn) -> tuple[np.ndarray, np.ndarray]:
    """Distinct edges and the reference CDF at each (exact for discrete columns)."""
    if ref.values is not None:
        keys = np.array(sorted(ref.values))
        counts = np.array([ref.values[k] for k in keys], dtype=float)
        return keys, np.cumsum(counts) / counts.sum()
    q = np.asarray(ref.quantiles, dtype=float)
    edges = np.unique(q)
    last = np.searchsorted(q, edges, side="right") - 1
    return edges, PROBS[last]


def bin_values(edges: np.ndarray, values: np.ndarray) -> Binned:
    n = len(values)
    if n == 0:
        return Binned(np.zeros(len(edges)), 0.0, 0.0, 0)
    idx = np.searchsorted(edges, values, side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1)
    cdf = np.cumsum(counts[:-1]) / n
    lo, hi = edges[0], edges[-1]
    low = values[values < lo]
    high = values[values > hi]
    return Binned(cdf, float((lo - low).sum()) / n, float((high - hi).sum()) / n, n, len(low) / n)


def bin_profile(edges: np.ndarray, cur: NumericColumn) -> Binned:
    """The same view computed from a current *profile* (approximate, for ``data diff``)."""
    if cur.count == 0:
        return Binned(np.zeros(len(edges)), 0.0, 0.0, 0)
    if cur.values is not None:
        keys = np.array(sorted(cur.values))
        counts = np.array([cur.values[k] for k in keys], dtype=float)
        probs = counts / counts.sum()
        cdf = np.array([probs[keys <= e].sum() for e in edges])
        below = float((probs[keys < edges[0]] * (edges[0] - keys[keys < edges[0]])).sum())
        above = float((probs[keys > edges[-1]] * (keys[keys > edges[-1]] - edges[-1])).sum())
        return Binned(cdf, below, above, cur.count, float(probs[keys < edges[0]].sum()))
    q = np.asarray(cur.quantiles, dtype=float)
    cdf = cdf_at(q, edges)
    step = 1.0 / QUANTILES
    mids = (q[1:] + q[:-1]) / 2
    below = float((np.clip(edges[0] - mids, 0, None) * step).sum())
    above = float((np.clip(mids - edges[-1], 0, None) * step).sum())
    under = float(np.interp(edges[0], q, PROBS, left=0.0, right=1.0)) if q[0] < edges[0] else 0.0
    return Binned(cdf, below, above, cur.count, under)


def _shares(cdf_at_cuts: np.ndarray) -> np.ndarray:
    full = np.concatenate([[0.0], cdf_at_cuts, [1.0]])
    return np.diff(full)


def psi(ref: np.ndarray, cur: np.ndarray) -> float:
    """Population stability index of two share vectors over the same bins (each share floored at EPS)."""
    r = np.clip(ref, EPS, None)
    c = np.clip(cur, EPS, None)
    return float(((c - r) * np.log(c / r)).sum())


def sample_psi(current: np.ndarray, reference: np.ndarray) -> float | None:
    """PSI of a raw sample against a raw reference sample (rollout analysis: candidate against
    champion). The reference is summarised as a profile column first, so the bins are the ones a
    drift report uses: the reference's deciles as (lo, hi] bins, one bin per value for a discrete
    column, the reference's top values plus "other" for labels. None when either side is empty."""
    import polars as pl

    if len(current) == 0 or len(reference) == 0:
        return None
    if current.dtype.kind in "OUSb" or reference.dtype.kind in "OUSb":
        ref_col: Column = categorical_column(pl.Series("v", reference.astype(str)), "str")
        cur = pl.Series("v", current.astype(str))
    else:
        ref_col = numeric_column(np.sort(reference.astype(float)), "f64")
        cur = pl.Series("v", current.astype(float))
    return column_statistics(ref_col, cur)["psi"]


def jensen_shannon(ref: np.ndarray, cur: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, as Evidently computes it); 0 when a side is all zero."""
    from scipy.spatial.distance import jensenshannon

    if not ref.sum() or not cur.sum():  # scipy says nan; against nothing at all the distance is the largest
        return 0.0 if not ref.sum() and not cur.sum() else math.sqrt(math.log(2) / 2)
    return float(jensenshannon(ref, cur))


def _cut_indices(ref_cdf: np.ndarray, bins: int) -> np.ndarray:
    """Edge indices closest to the reference's 1/bins, 2/bins, ... quantiles (distinct)."""
    targets = np.arange(1, bins) / bins
    idx = np.searchsorted(ref_cdf, targets - 1e-12, side="left")
    idx = np.clip(idx, 0, len(ref_cdf) - 1)
    return np.unique(idx)


def numeric_statistics(ref: NumericColumn, cur: Binned, edges: np.ndarray, ref_cdf: np.ndarray) -> dict[str, float | None]:
    if cur.n == 0 or ref.count == 0:
        return {"wasserstein": None, "psi": None, "jensen_shannon": None}
    widths = np.diff(edges)
    w1 = float((np.abs(ref_cdf[:-1] - cur.cdf[:-1]) * widths).sum()) + cur.below + cur.above
    if ref.values is not None:
        # discrete: one bin per reference value (values between two of them count with the upper
        # one), plus "below the smallest" and "above the largest"
        ref_shares = np.concatenate([[0.0], np.diff(np.concatenate([[0.0], ref_cdf])), [1.0 - ref_cdf[-1]]])
        cur_shares = np.concatenate([[cur.under], np.diff(np.concatenate([[cur.under], cur.cdf])), [1.0 - cur.cdf[-1]]])
        psi_value = psi(ref_shares, cur_shares)
        js_value = jensen_shannon(ref_shares, cur_shares)
    else:
        cuts = _cut_indices(ref_cdf, PSI_BINS)
        psi_value = psi(_shares(ref_cdf[cuts]), _shares(cur.cdf[cuts]))
        cuts = _cut_indices(ref_cdf, JS_BINS)
        js_value = jensen_shannon(_shares(ref_cdf[cuts]), _shares(cur.cdf[cuts]))
    return {"wasserstein": w1 / max(ref.std, STD_FLOOR), "psi": psi_value, "jensen_shannon": js_value}


def categorical_counts(ref: CategoricalColumn, series: pl.Series) -> tuple[np.ndarray, np.ndarray]:
    """(reference shares, current counts) over the reference's top values plus 'other'."""
    import polars as pl

    keys = list(ref.top)
    values = series.drop_nulls().cast(pl.String)
    counts = values.value_counts()
    found = dict(zip(counts[values.name].to_list(), counts["count"].to_list(), strict=True))
    cur = np.array([found.get(k, 0) for k in keys] + [values.len() - sum(found.get(k, 0) for k in keys)], dtype=float)
    refc = np.array([ref.top[k] for k in keys] + [ref.other], dtype=float)
    return refc / max(refc.sum(), 1), cur


def categorical_statistics(ref_shares: np.ndarray, cur_counts: np.ndarray) -> dict[str, float | None]:
    total = cur_counts.sum()
    if total == 0 or ref_shares.sum() == 0:
        return {"jensen_shannon": None, "psi": None}
    cur = cur_counts / total
    return {"jensen_shannon": jensen_shannon(ref_shares, cur), "psi": psi(ref_shares, cur)}


def column_statistics(ref: Column, current: pl.Series | Column) -> dict[str, float | None]:
    """Every effect-size statistic of ``current`` (a Series or a column profile) against ``ref``."""
    import polars as pl

    if isinstance(ref, NumericColumn):
        if ref.count == 0:
            return {"wasserstein": None, "psi": None, "jensen_shannon": None}
        edges, ref_cdf = reference_edges(ref)
        if isinstance(current, pl.Series):
            binned = bin_values(edges, numeric_values(current))
        elif isinstance(current, NumericColumn):
            binned = bin_profile(edges, current)
        else:
            return {"wasserstein": None, "psi": None, "jensen_shannon": None}
        return numeric_statistics(ref, binned, edges, ref_cdf)
    if isinstance(current, pl.Series):
        ref_shares, cur_counts = categorical_counts(ref, current)
    elif isinstance(current, CategoricalColumn):
        keys = list(ref.top)
        cur_counts = np.array([current.top.get(k, 0) for k in keys]
                              + [current.count - sum(current.top.get(k, 0) for k in keys)], dtype=float)
        refc = np.array([ref.top[k] for k in keys] + [ref.other], dtype=float)
        ref_shares = refc / max(refc.sum(), 1)
    else:
        return {"jensen_shannon": None, "psi": None}
    return categorical_statistics(ref_shares, cur_counts)


# -- p-value tests on capped samples --------------------------------------------------------------

def ks_one_sample(ref: NumericColumn, sample: np.ndarray) -> tuple[float, float]:
    """Kolmogorov-Smirnov of ``sample`` against the reference's (piecewise-linear) CDF."""
    n = len(sample)
    if n == 0 or ref.count == 0:
        return math.nan, math.nan
    x = np.sort(sample)
    f = cdf_at(np.asarray(ref.quantiles, dtype=float), x)
    i = np.arange(1, n + 1)
    d = float(max((i / n - f).max(), (f - (i - 1) / n).max()))
    return d, kolmogorov_sf(d, n)


def kolmogorov_sf(d: float, n: int) -> float:
    """p-value of the one-sample KS statistic ``d`` over ``n`` values (scipy's exact distribution)."""
    from scipy.stats import kstwo

    if d <= 0:
        return 1.0
    return float(min(1.0, max(0.0, kstwo.sf(d, n))))


def chi_square(ref_shares: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """Pearson's chi-square goodness of fit of current counts to the reference shares."""
    from scipy.special import chdtrc

    n = cur_counts.sum()
    if n == 0:
        return math.nan, math.nan
    expected = np.clip(ref_shares, 1e-6, None)
    expected = expected / expected.sum() * n
    stat = float(((cur_counts - expected) ** 2 / expected).sum())
    dof = max(len(cur_counts) - 1, 1)
    return stat, float(chdtrc(dof, stat))


def benjamini_hochberg(pvalues: list[float]) -> list[float]:
    """Adjusted p-values controlling the false discovery rate (NaN stays NaN)."""
    from scipy.stats import false_discovery_control

    p = np.asarray(pvalues, dtype=float)
    out = np.full(len(p), math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out.tolist()


def calibration(columns: dict[str, Column], chunks: Iterable[pl.DataFrame], *, skip: Iterable[str] = (),
                scale: float = 1.0) -> dict[str, dict[str, list[float]]]:
    """Drift thresholds fitted on chunks drawn from the reference itself (NannyML's calibration):
    per column and statistic, ``[mean, std]`` (ddof 1, both times ``scale``) of the statistic of every
    chunk against ``columns``. Columns in ``skip`` or missing from a chunk are left out."""
    skipped = set(skip)
    seen: dict[str, dict[str, list[float]]] = {}
    for chunk in chunks:
        for name, ref in columns.items():
            if name in skipped or name not in chunk.columns:
                continue
            for stat, value in column_statistics(ref, chunk[name]).items():
                if value is not None and math.isfinite(value):
                    seen.setdefault(name, {}).setdefault(stat, []).append(value)
    return {name: {stat: [scale * float(np.mean(v)), scale * float(np.std(v, ddof=1))]
                   for stat, v in per.items() if len(v) > 1}
            for name, per in seen.items()}
