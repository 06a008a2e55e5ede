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

from shipyard.data.columns import (
    MAX_DISCRETE,
    PROBS,
    QUANTILES,
    TOP_K,
    CategoricalColumn,
    Column,
    NumericColumn,
    categorical_column,
    cdf_at,
    numeric_column,
)
from shipyard.data.stats import calibration
from shipyard.errors import InputError

if TYPE_CHECKING:
    import polars as pl

__all__ = ["MAX_DISCRETE", "PROBS", "QUANTILES", "TOP_K", "CategoricalColumn", "Column", "NumericColumn",
           "Profile", "calibrate_profile", "cdf_at", "profile_frame", "profile_path"]

FORMAT_VERSION = 1
SAMPLE_ROWS = 2000
CALIBRATION_CHUNKS = 10


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
            columns[name] = numeric_column(sorted_frame[name].to_numpy(), str(df.schema[name]))
    for name, dtype in df.schema.items():
        if name in columns:
            continue
        columns[name] = categorical_column(df[name], str(dtype))
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
    size = df.height // chunks
    if size < 50:
        return {}
    return calibration(profile.columns, (df.slice(i * size, size) for i in range(chunks)))


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

    return calibration(profile.columns, iter_frames(path, chunk_rows))
