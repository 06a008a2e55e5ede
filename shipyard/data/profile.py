"""Reference profiles: a fixed-size, mergeable summary of a table that drift checks compare against.

Per numeric column: count, nulls, non-finite values, mean and M2 (Chan's parallel update), min,
max, a quantile sketch of ``QUANTILES + 1`` values at evenly spaced probabilities, and the exact
value frequencies while the column has at most ``MAX_DISCRETE`` distinct values. Per categorical
column (text, boolean): the ``TOP_K`` most frequent values and the count of the rest. A profile
also keeps a bounded random sample of rows (for the domain classifier and PCA) and, when asked,
thresholds calibrated on reference chunks (NannyML's mean + 3 sigma).

Size is O(columns x QUANTILES + SAMPLE_ROWS), never O(rows): profiles of chunks merge, so a
dataset larger than memory is profiled in a stream (``profile_path``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from shipyard.errors import InputError

if TYPE_CHECKING:
    import polars as pl

FORMAT_VERSION = 1
QUANTILES = 1000
MAX_DISCRETE = 50
TOP_K = 50
SAMPLE_ROWS = 2000
CALIBRATION_CHUNKS = 10
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


@dataclass
class Profile:
    """A table's reference profile (see the module docstring)."""

    rows: int
    columns: dict[str, Column]
    sample: dict[str, list[Any]] = field(default_factory=dict)
    calibration: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT_VERSION, "rows": self.rows,
                "columns": {name: col.to_dict() for name, col in self.columns.items()},
                "sample": self.sample, "calibration": self.calibration, "warnings": self.warnings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        if not isinstance(d, dict) or "columns" not in d:
            raise InputError("not a Shipyard profile (no 'columns' key)",
                             hint="create one with: shipyard data profile FILE --out profile.json")
        if d.get("format") != FORMAT_VERSION:
            raise InputError(f"profile format {d.get('format')!r} is not supported (expected {FORMAT_VERSION})",
                             hint="recompute it with this version: shipyard data profile FILE --out profile.json")
        columns: dict[str, Column] = {}
        for name, col in d["columns"].items():
            columns[name] = NumericColumn.from_dict(col) if col["kind"] == "numeric" else CategoricalColumn.from_dict(col)
        return cls(int(d["rows"]), columns, dict(d.get("sample") or {}), dict(d.get("calibration") or {}),
                   list(d.get("warnings") or []))

    def to_json(self) -> bytes:
        import json

        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Profile:
        import json

        try:
            return cls.from_dict(json.loads(data))
        except ValueError as exc:
            raise InputError(f"the profile is not valid JSON: {exc}") from exc

    def merge(self, other: Profile) -> Profile:
        """The profile of both tables stacked (same columns, compatible kinds)."""
        if list(self.columns) != list(other.columns):
            raise InputError(f"cannot merge profiles with different columns: {list(self.columns)} vs {list(other.columns)}")
        columns: dict[str, Column] = {}
        for name, col in self.columns.items():
            theirs = other.columns[name]
            if col.kind != theirs.kind:
                raise InputError(f"cannot merge profiles: column {name!r} is {col.kind} in one and {theirs.kind} in the other")
            columns[name] = col.merge(theirs)  # type: ignore[arg-type]
        return Profile(self.rows + other.rows, columns, _merge_samples(self.sample, self.rows, other.sample, other.rows),
                       {}, list(dict.fromkeys(self.warnings + other.warnings)))

    def numeric_columns(self) -> list[str]:
        return [n for n, c in self.columns.items() if isinstance(c, NumericColumn)]


# -- computing ----------------------------------------------------------------------------------

def _f(x: float) -> float | None:
    """JSON-safe float (NaN and inf become null)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _nan(x: Any) -> float:
    return math.nan if x is None else float(x)


def _merge_quantiles(q1: list[float], n1: int, q2: list[float], n2: int) -> list[float]:
    """Quantiles of the mixture of two piecewise-linear CDFs, at the same probabilities."""
    a, b = np.asarray(q1, dtype=float), np.asarray(q2, dtype=float)
    knots = np.unique(np.concatenate([a, b]))
    f1 = _cdf_at(a, knots)
    f2 = _cdf_at(b, knots)
    mix = (n1 * f1 + n2 * f2) / (n1 + n2)
    mix = np.maximum.accumulate(mix)
    keep = np.concatenate([[True], np.diff(mix) > 0])
    return np.interp(PROBS, mix[keep], knots[keep]).tolist()


def _cdf_at(quantiles: np.ndarray, x: np.ndarray) -> np.ndarray:
    """CDF of the piecewise-linear distribution with these quantiles, at ``x``."""
    q, _idx = np.unique(quantiles, return_index=True)
    # for repeated quantile values the CDF jumps: use the highest probability at that value
    last = np.searchsorted(quantiles, q, side="right") - 1
    probs = PROBS[last]
    if len(q) == 1:
        return (x >= q[0]).astype(float)
    return np.interp(x, q, probs, left=0.0, right=1.0)


def _numeric_kind(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype.is_temporal()


def profile_frame(df: pl.DataFrame, *, sample_rows: int = SAMPLE_ROWS, calibrate: bool = False,
                  seed: int = 0) -> Profile:
    """Profile an eager DataFrame. ``calibrate`` adds per-column thresholds from reference chunks."""
    import polars as pl

    if isinstance(df, pl.LazyFrame):
        raise InputError("profile_frame needs a DataFrame, not a LazyFrame",
                         hint="call .collect() first, so every value is read")
    for name, dtype in df.schema.items():
        if dtype.is_nested():
            raise InputError(f"column {name!r} has the nested type {dtype}; profiles describe flat columns only",
                             hint="flatten it first (unnest structs, explode or join lists)")
    columns: dict[str, Column] = {}
    warnings: list[str] = []
    numeric = [n for n, t in df.schema.items() if _numeric_kind(t) and t != pl.Boolean]
    if numeric:
        exprs = []
        for name in numeric:
            col = pl.col(name)
            if df.schema[name].is_temporal():
                col = col.to_physical()
            col = col.cast(pl.Float64)
            exprs.append(col.fill_nan(None).sort(nulls_last=True).alias(name))
        sorted_frame = df.select(exprs)
        for name in numeric:
            columns[name] = _numeric_column(sorted_frame[name].to_numpy(), str(df.schema[name]))
    for name, dtype in df.schema.items():
        if name in columns:
            continue
        columns[name] = _categorical_column(df[name], str(dtype))
    out = {name: columns[name] for name in df.columns}
    for name, col in out.items():
        if isinstance(col, NumericColumn) and col.count > 1 and col.std == 0.0:
            warnings.append(f"column {name!r} is constant ({col.min:g}): drift on it is judged by the share of other values")
        if col.count == 0:
            warnings.append(f"column {name!r} has no values (all null)")
    profile = Profile(df.height, out, _sample(df, sample_rows, seed), {}, warnings)
    if calibrate:
        profile.calibration = calibrate_profile(profile, df)
    return profile


def _numeric_column(sorted_values: np.ndarray, dtype: str) -> NumericColumn:
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


def _categorical_column(series: pl.Series, dtype: str) -> CategoricalColumn:
    import polars as pl

    values = series.drop_nulls().cast(pl.String)
    if values.len() == 0:
        return CategoricalColumn(dtype, 0, series.null_count())
    counts = values.value_counts(sort=True)
    name = values.name
    top = dict(zip(counts[name].head(TOP_K).to_list(), counts["count"].head(TOP_K).to_list(), strict=True))
    return CategoricalColumn(dtype, values.len(), series.null_count(), {str(k): int(v) for k, v in top.items()},
                             values.len() - sum(top.values()), counts.height)


def _sample(df: pl.DataFrame, k: int, seed: int) -> dict[str, list[Any]]:
    if k <= 0 or df.height == 0:
        return {}
    sample = df.sample(n=min(k, df.height), seed=seed) if df.height > k else df
    out = {}
    for name, dtype in sample.schema.items():
        series = sample[name]
        if dtype.is_temporal():
            series = series.to_physical()
        values = series.to_list()
        out[name] = [None if isinstance(v, float) and not math.isfinite(v) else v for v in values]
    return out


def _merge_samples(s1: dict[str, list[Any]], n1: int, s2: dict[str, list[Any]], n2: int,
                   k: int = SAMPLE_ROWS, seed: int = 0) -> dict[str, list[Any]]:
    """A sample of the union: rows drawn from each side in proportion to its size."""
    if not s1:
        return s2
    if not s2:
        return s1
    len1 = len(next(iter(s1.values())))
    len2 = len(next(iter(s2.values())))
    rng = np.random.default_rng(seed)
    take1 = min(len1, round(k * n1 / (n1 + n2)))
    take2 = min(len2, k - take1)
    i1 = np.sort(rng.choice(len1, take1, replace=False))
    i2 = np.sort(rng.choice(len2, take2, replace=False))
    return {name: [s1[name][i] for i in i1] + [s2[name][i] for i in i2] for name in s1}


def calibrate_profile(profile: Profile, df: pl.DataFrame, chunks: int = CALIBRATION_CHUNKS) -> dict[str, dict[str, list[float]]]:
    """Mean and std of each drift statistic over ``chunks`` contiguous reference chunks vs the whole."""
    from shipyard.data.stats import column_statistics

    size = df.height // chunks
    if size < 50:
        return {}
    per_col: dict[str, dict[str, list[float]]] = {}
    for i in range(chunks):
        part = df.slice(i * size, size)
        for name, ref in profile.columns.items():
            stats = column_statistics(ref, part[name])
            for stat, value in stats.items():
                if value is not None and math.isfinite(value):
                    per_col.setdefault(name, {}).setdefault(stat, []).append(value)
    return {name: {stat: [float(np.mean(v)), float(np.std(v, ddof=1))] for stat, v in stats.items() if len(v) > 1}
            for name, stats in per_col.items()}


def profile_path(path: str | os.PathLike[str], *, chunk_rows: int = 250_000, calibrate: bool = True) -> Profile:
    """Profile a file or folder chunk by chunk (bounded memory) and merge the chunk profiles."""
    from shipyard.data.readers import iter_frames

    merged: Profile | None = None
    seen_rows = 0
    first_chunk = None
    for chunk in iter_frames(path, chunk_rows):
        part = profile_frame(chunk)
        merged = part if merged is None else merged.merge(part)
        seen_rows += chunk.height
        if first_chunk is None:
            first_chunk = chunk
    if merged is None or seen_rows == 0:
        raise InputError(f"{path}: has a header but no data rows", hint="a profile needs at least one row")
    if calibrate and first_chunk is not None:
        if seen_rows <= chunk_rows:
            merged.calibration = calibrate_profile(merged, first_chunk)
        else:
            merged.calibration = _calibrate_stream(merged, path, chunk_rows)
    return merged


def _calibrate_stream(profile: Profile, path: str | os.PathLike[str], chunk_rows: int) -> dict[str, dict[str, list[float]]]:
    """Calibration for streamed data: statistics of each streamed chunk against the merged profile."""
    from shipyard.data.readers import iter_frames
    from shipyard.data.stats import column_statistics

    per_col: dict[str, dict[str, list[float]]] = {}
    for chunk in iter_frames(path, chunk_rows):
        for name, ref in profile.columns.items():
            for stat, value in column_statistics(ref, chunk[name]).items():
                if value is not None and math.isfinite(value):
                    per_col.setdefault(name, {}).setdefault(stat, []).append(value)
    return {name: {stat: [float(np.mean(v)), float(np.std(v, ddof=1))] for stat, v in stats.items() if len(v) > 1}
            for name, stats in per_col.items()}
