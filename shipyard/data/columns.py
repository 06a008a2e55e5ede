"""Column summaries of a reference profile and the math of their quantile sketch.

``NumericColumn`` (count, nulls, moments, min/max, a sketch of ``QUANTILES + 1`` quantiles at evenly
spaced probabilities, exact frequencies of up to ``MAX_DISCRETE`` values) and ``CategoricalColumn``
(the ``TOP_K`` values and the rest), each mergeable. Both ``profile`` (which builds them) and
``stats`` (which compares them) import this module; neither imports the other's privates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import polars as pl

QUANTILES = 1000
MAX_DISCRETE = 50
TOP_K = 50
PROBS = np.linspace(0.0, 1.0, QUANTILES + 1)


@dataclass
class NumericColumn:
    dtype: str
    count: int = 0          # finite, non-null values
    nulls: int = 0          # null or NaN
    nonfinite: int = 0      # +-inf
    mean: float = 0.0
    m2: float = 0.0
    min: float = math.nan
    max: float = math.nan
    quantiles: list[float] = field(default_factory=list)
    values: dict[float, int] | None = None  # exact frequencies while few distinct values

    kind = "numeric"

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / (self.count - 1)) if self.count > 1 else 0.0

    @property
    def null_rate(self) -> float:
        total = self.count + self.nulls + self.nonfinite
        return self.nulls / total if total else 0.0

    def quantile(self, p: float) -> float:
        if not self.quantiles:
            return math.nan
        return float(np.interp(p, PROBS, np.asarray(self.quantiles)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "numeric", "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
            "nonfinite": self.nonfinite, "mean": _f(self.mean), "m2": _f(self.m2), "std": _f(self.std),
            "min": _f(self.min), "max": _f(self.max), "quantiles": [_f(q) for q in self.quantiles],
            "values": None if self.values is None else [[_f(k), v] for k, v in sorted(self.values.items())],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NumericColumn:
        values = None if d.get("values") is None else {float(k): int(v) for k, v in d["values"]}
        return cls(dtype=d["dtype"], count=int(d["count"]), nulls=int(d["nulls"]),
                   nonfinite=int(d.get("nonfinite", 0)), mean=_nan(d["mean"]), m2=_nan(d["m2"]),
                   min=_nan(d["min"]), max=_nan(d["max"]), quantiles=[_nan(q) for q in d["quantiles"]],
                   values=values)

    def merge(self, other: NumericColumn) -> NumericColumn:
        n1, n2 = self.count, other.count
        n = n1 + n2
        if n1 == 0 or n2 == 0:
            base = self if n2 == 0 else other
            return NumericColumn(base.dtype, n, self.nulls + other.nulls, self.nonfinite + other.nonfinite,
                                 base.mean, base.m2, base.min, base.max, list(base.quantiles),
                                 None if base.values is None else dict(base.values))
        delta = other.mean - self.mean
        mean = self.mean + delta * n2 / n
        m2 = self.m2 + other.m2 + delta * delta * n1 * n2 / n
        values = None
        if self.values is not None and other.values is not None:
            values = dict(self.values)
            for k, v in other.values.items():
                values[k] = values.get(k, 0) + v
            if len(values) > MAX_DISCRETE:
                values = None
        return NumericColumn(self.dtype, n, self.nulls + other.nulls, self.nonfinite + other.nonfinite,
                             mean, m2, min(self.min, other.min), max(self.max, other.max),
                             _merge_quantiles(self.quantiles, n1, other.quantiles, n2), values)


@dataclass
class CategoricalColumn:
    dtype: str
    count: int = 0       # non-null values
    nulls: int = 0
    top: dict[str, int] = field(default_factory=dict)
    other: int = 0       # values outside ``top``
    n_unique: int = 0    # exact for one chunk; a lower bound after merges

    kind = "categorical"

    @property
    def null_rate(self) -> float:
        total = self.count + self.nulls
        return self.nulls / total if total else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "categorical", "dtype": self.dtype, "count": self.count, "nulls": self.nulls,
                "top": [[k, v] for k, v in sorted(self.top.items(), key=lambda kv: (-kv[1], kv[0]))],
                "other": self.other, "n_unique": self.n_unique}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CategoricalColumn:
        return cls(dtype=d["dtype"], count=int(d["count"]), nulls=int(d["nulls"]),
                   top={str(k): int(v) for k, v in d["top"]}, other=int(d["other"]), n_unique=int(d["n_unique"]))

    def merge(self, other: CategoricalColumn) -> CategoricalColumn:
        counts = dict(self.top)
        for k, v in other.top.items():
            counts[k] = counts.get(k, 0) + v
        keep = dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_K])
        count = self.count + other.count
        return CategoricalColumn(self.dtype, count, self.nulls + other.nulls, keep, count - sum(keep.values()),
                                 max(self.n_unique, other.n_unique, len(counts)))


Column = NumericColumn | CategoricalColumn


def _f(x: float) -> float | None:
    """JSON-safe float (NaN and inf become null)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _merge_quantiles(q1: list[float], n1: int, q2: list[float], n2: int) -> list[float]:
    """Quantiles of the mixture of two piecewise-linear CDFs, at the same probabilities."""
    a, b = np.asarray(q1, dtype=float), np.asarray(q2, dtype=float)
    knots = np.unique(np.concatenate([a, b]))
    f1 = cdf_at(a, knots)
    f2 = cdf_at(b, knots)
    mix = (n1 * f1 + n2 * f2) / (n1 + n2)
    mix = np.maximum.accumulate(mix)
    keep = np.concatenate([[True], np.diff(mix) > 0])
    return np.interp(PROBS, mix[keep], knots[keep]).tolist()


def cdf_at(quantiles: np.ndarray, x: np.ndarray) -> np.ndarray:
    """CDF of the piecewise-linear distribution with these quantiles, at ``x``."""
    q, _idx = np.unique(quantiles, return_index=True)
    # for repeated quantile values the CDF jumps: use the highest probability at that value
    last = np.searchsorted(quantiles, q, side="right") - 1
    probs = PROBS[last]
    if len(q) == 1:
        return (x >= q[0]).astype(float)
    return np.interp(x, q, probs, left=0.0, right=1.0)


def numeric_column(sorted_values: np.ndarray, dtype: str) -> NumericColumn:
    """The summary of a sorted numeric column (NaN for nulls, sorted last)."""
    valid = sorted_values[~np.isnan(sorted_values)]  # nulls came back as NaN, sorted last
    nulls = len(sorted_values) - len(valid)
    lo = np.searchsorted(valid, -np.inf, side="right")
    hi = np.searchsorted(valid, np.inf, side="left")
    finite = valid[lo:hi]
    nonfinite = len(valid) - len(finite)
    n = len(finite)
    if n == 0:
        return NumericColumn(dtype, 0, nulls, nonfinite)
    mean = float(finite.mean())
    m2 = float(((finite - mean) ** 2).sum())
    positions = PROBS * (n - 1)
    quantiles = np.interp(positions, np.arange(n), finite) if n > 1 else np.full(len(PROBS), finite[0])
    values = None
    distinct = int(np.count_nonzero(np.diff(finite))) + 1
    if distinct <= MAX_DISCRETE:
        uniq, counts = np.unique(finite, return_counts=True)
        values = {float(u): int(c) for u, c in zip(uniq, counts, strict=True)}
    return NumericColumn(dtype, n, nulls, nonfinite, mean, m2, float(finite[0]), float(finite[-1]),
                         quantiles.tolist(), values)


def categorical_column(series: pl.Series, dtype: str) -> CategoricalColumn:
    """The summary of a text or boolean column: its ``TOP_K`` values and the count of the rest."""
    import polars as pl

    values = series.drop_nulls().cast(pl.String)
    if values.len() == 0:
        return CategoricalColumn(dtype, 0, series.null_count())
    counts = values.value_counts(sort=True)
    name = values.name
    top = dict(zip(counts[name].head(TOP_K).to_list(), counts["count"].head(TOP_K).to_list(), strict=True))
    return CategoricalColumn(dtype, values.len(), series.null_count(), {str(k): int(v) for k, v in top.items()},
                             values.len() - sum(top.values()), counts.height)
