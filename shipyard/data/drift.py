"""Drift of current data against a stored reference profile: per column, dataset share, multivariate.

Verdicts judge effect sizes, not p-values on large samples (which flag every tiny shift):

- numeric columns: the Wasserstein distance normed by the reference std decides (Evidently's
  default above 1000 rows, threshold 0.1); PSI (0.2) and Jensen-Shannon (0.1) are reported too;
- categorical, boolean, discrete and constant columns: Jensen-Shannon decides (0.1), PSI reported;
- bands: DRIFT at or above the threshold, POSSIBLE at or above half of it, NO below;
- ``thresholds="calibrated"`` uses mean + 3 sigma of the statistic over reference chunks
  (NannyML's rule); ``"auto"`` (the default) takes the larger of that and the effect-size default, so
  neither sampling noise nor an irrelevant shift raises an alarm; ``"effect"`` uses the defaults;
- KS (numeric) and chi-square (categorical) run only on samples capped at ``sample_size`` rows,
  with Benjamini-Hochberg correction across columns; they are reported, they do not decide;
- dataset drift: the share of drifted columns at or above ``drift_share`` (0.5, as Evidently);
- multivariate: PCA reconstruction error on the reference sample (65 % of the variance, NannyML's
  recipe) and, when asked, a domain classifier's cross-validated AUROC (needs scikit-learn).
"""

from __future__ import annotations

import html
import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from shipyard.data import stats as st
from shipyard.data.profile import CategoricalColumn, NumericColumn, Profile
from shipyard.errors import InputError

if TYPE_CHECKING:
    import polars as pl

Verdict = Literal["NO", "POSSIBLE", "DRIFT"]
DEFAULT_THRESHOLDS = {"wasserstein": 0.1, "psi": 0.2, "jensen_shannon": 0.1, "null_rate": 0.1}
_ORDER = {"NO": 0, "POSSIBLE": 1, "DRIFT": 2}
POSSIBLE_FRACTION = 0.5
SAMPLE_SIZE = 10_000
PCA_VARIANCE = 0.65
PCA_MIN_CHANGE = 0.05     # relative change of the mean reconstruction error that matters
AUROC_POSSIBLE = 0.55     # Evidently's domain-classifier threshold
AUROC_DRIFT = 0.65        # NannyML's upper bound


def band(value: float | None, threshold: float) -> Verdict:
    if value is None or not math.isfinite(value):
        return "NO"
    if value >= threshold:
        return "DRIFT"
    if value >= POSSIBLE_FRACTION * threshold:
        return "POSSIBLE"
    return "NO"


@dataclass
class ColumnDrift:
    name: str
    kind: str
    statistic: str
    value: float | None
    threshold: float
    verdict: Verdict
    statistics: dict[str, dict[str, Any]] = field(default_factory=dict)
    test: str | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    null_rate: tuple[float, float] = (0.0, 0.0)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.name, "kind": self.kind, "statistic": self.statistic, "value": _r(self.value),
                "threshold": _r(self.threshold), "verdict": self.verdict, "statistics": self.statistics,
                "test": self.test, "p_value": _r(self.p_value), "p_adjusted": _r(self.p_adjusted),
                "null_rate": {"reference": _r(self.null_rate[0]), "current": _r(self.null_rate[1])},
                "note": self.note}


@dataclass
class DriftReport:
    columns: list[ColumnDrift]
    drift_share: float
    drift_share_threshold: float
    reference_rows: int
    current_rows: int
    thresholds: str
    multivariate: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def dataset_drift(self) -> bool:
        return self.drift_share >= self.drift_share_threshold or any(m["verdict"] == "DRIFT" for m in self.multivariate)

    @property
    def drifted(self) -> list[str]:
        return [c.name for c in self.columns if c.verdict == "DRIFT"]

    def to_dict(self) -> dict[str, Any]:
        return {"dataset_drift": self.dataset_drift, "drift_share": round(self.drift_share, 4),
                "drift_share_threshold": self.drift_share_threshold, "drifted_columns": self.drifted,
                "reference_rows": self.reference_rows, "current_rows": self.current_rows,
                "thresholds": self.thresholds, "columns": [c.to_dict() for c in self.columns],
                "multivariate": self.multivariate, "warnings": self.warnings}

    def rows(self) -> list[list[str]]:
        return [[c.name, c.kind, c.statistic, _fmt(c.value), _fmt(c.threshold), c.verdict,
                 "" if c.p_adjusted is None else f"{c.test} p_adj={c.p_adjusted:.3g}", c.note or ""]
                for c in self.columns]

    def summary(self) -> str:
        n = len(self.columns)
        multi = [m["method"] for m in self.multivariate if m["verdict"] == "DRIFT"]
        if self.drift_share >= self.drift_share_threshold:
            word = "DATASET DRIFT"
        elif multi:
            word = f"DRIFT (multivariate: {', '.join(multi)})"
        elif self.drifted:
            word = "column drift"
        else:
            word = "no dataset drift"
        return (f"{word}: {len(self.drifted)} of {n} columns drifted (share {self.drift_share:.2f}, "
                f"dataset threshold {self.drift_share_threshold:.2f}); thresholds: {self.thresholds}")

    def to_markdown(self) -> str:
        lines = [f"### Data drift: {self.summary()}", "",
                 f"Reference {self.reference_rows} rows, current {self.current_rows} rows.", "",
                 "| column | kind | statistic | value | threshold | verdict | test (capped sample) |",
                 "|---|---|---|---|---|---|---|"]
        for c in self.columns:
            test = "" if c.p_adjusted is None else f"{c.test} p_adj={c.p_adjusted:.3g}"
            lines.append(f"| {c.name} | {c.kind} | {c.statistic} | {_fmt(c.value)} | {_fmt(c.threshold)} "
                         f"| {_icon(c.verdict)} {c.verdict} | {test} |")
        if self.multivariate:
            lines += ["", "| multivariate | value | threshold | verdict | detail |", "|---|---|---|---|---|"]
            for m in self.multivariate:
                lines.append(f"| {m['method']} | {_fmt(m['value'])} | {_fmt(m['threshold'])} | "
                             f"{_icon(m['verdict'])} {m['verdict']} | {m.get('detail', '')} |")
        if self.warnings:
            lines += ["", *[f"- warning: {w}" for w in self.warnings]]
        return "\n".join(lines) + "\n"

    def to_html(self) -> str:
        color = {"NO": "#1a7f37", "POSSIBLE": "#9a6700", "DRIFT": "#cf222e"}
        rows = "".join(
            f"<tr><td>{html.escape(c.name)}</td><td>{c.kind}</td><td>{c.statistic}</td><td>{_fmt(c.value)}</td>"
            f"<td>{_fmt(c.threshold)}</td><td style='color:{color[c.verdict]};font-weight:bold'>{c.verdict}</td>"
            f"<td>{'' if c.p_adjusted is None else f'{c.test} p_adj={c.p_adjusted:.3g}'}</td>"
            f"<td>{html.escape(c.note or '')}</td></tr>"
            for c in self.columns)
        multi = "".join(
            f"<tr><td>{m['method']}</td><td>{_fmt(m['value'])}</td><td>{_fmt(m['threshold'])}</td>"
            f"<td style='color:{color[m['verdict']]};font-weight:bold'>{m['verdict']}</td>"
            f"<td>{html.escape(str(m.get('detail', '')))}</td></tr>" for m in self.multivariate)
        warn = "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings)
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Shipyard data drift</title>"
            "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
            "td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}</style></head><body>"
            f"<h1>Data drift</h1><p>{html.escape(self.summary())}</p>"
            f"<p>Reference {self.reference_rows} rows, current {self.current_rows} rows.</p>"
            "<table><tr><th>column</th><th>kind</th><th>statistic</th><th>value</th><th>threshold</th>"
            f"<th>verdict</th><th>test (capped sample)</th><th>note</th></tr>{rows}</table>"
            + (f"<h2>Multivariate</h2><table><tr><th>method</th><th>value</th><th>threshold</th><th>verdict</th>"
               f"<th>detail</th></tr>{multi}</table>" if multi else "")
            + (f"<h2>Warnings</h2><ul>{warn}</ul>" if warn else "")
            + "</body></html>\n")


def _r(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def _fmt(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{x:.4g}"


def _icon(verdict: str) -> str:
    return {"NO": "✅", "POSSIBLE": "⚠️", "DRIFT": "❌"}[verdict]


def _threshold(profile: Profile, column: str, stat: str, mode: str) -> float:
    default = DEFAULT_THRESHOLDS[stat]
    if mode == "effect":
        return default
    cal = profile.calibration.get(column, {}).get(stat)
    if not cal:
        return default
    calibrated = cal[0] + 3 * cal[1]
    return calibrated if mode == "calibrated" else max(default, calibrated)


def compare(reference: Profile, current: pl.DataFrame, *, thresholds: str = "auto",
            drift_share: float = 0.5, sample_size: int = SAMPLE_SIZE, columns: list[str] | None = None,
            multivariate: bool | str = "pca", seed: int = 0) -> DriftReport:
    """Compare ``current`` with the ``reference`` profile (see the module docstring)."""
    import polars as pl

    if isinstance(current, pl.LazyFrame):
        raise InputError("compare needs a DataFrame, not a LazyFrame", hint="call .collect() first")
    if thresholds not in ("auto", "effect", "calibrated"):
        raise InputError(f"unknown thresholds mode {thresholds!r}", hint="use auto, effect or calibrated")
    if current.height == 0:
        raise InputError("the current data has no rows", hint="drift needs at least one row to compare")
    warnings = list(dict.fromkeys(reference.warnings))
    names = columns or list(reference.columns)
    missing = [n for n in names if n not in current.columns]
    for name in missing:
        from shipyard.errors import did_you_mean

        hint = did_you_mean(name, current.columns)
        warnings.append(f"column {name!r} of the reference is missing from the current data" + (f" ({hint})" if hint else ""))
    unknown = [n for n in names if n not in reference.columns]
    if unknown:
        raise InputError(f"columns not in the reference profile: {', '.join(unknown)}",
                         hint="known: " + ", ".join(reference.columns))
    extra = [n for n in current.columns if n not in reference.columns]
    if extra:
        warnings.append(f"columns not in the reference (not compared): {', '.join(extra)}")
    present = [n for n in names if n in current.columns]
    rng = np.random.default_rng(seed)
    sample_idx = np.sort(rng.choice(current.height, sample_size, replace=False)) if current.height > sample_size else None

    def one(name: str) -> ColumnDrift:
        return _column_drift(reference, name, current[name], thresholds, sample_idx)

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(one, present))
    for r in results:
        if r.note and r.note.startswith("warning:"):
            warnings.append(f"column {r.name!r}: {r.note.removeprefix('warning: ')}")
    adjusted = st.benjamini_hochberg([math.nan if r.p_value is None else r.p_value for r in results])
    for r, adj in zip(results, adjusted, strict=True):
        r.p_adjusted = None if math.isnan(adj) else adj
    share = sum(r.verdict == "DRIFT" for r in results) / len(names) if names else 0.0
    report = DriftReport(results, share, drift_share, reference.rows, current.height, thresholds, [], warnings)
    if multivariate:
        if multivariate in (True, "pca", "all"):
            pca = pca_drift(reference, current, seed=seed)
            if pca is not None:
                report.multivariate.append(pca)
        if multivariate in ("classifier", "all"):
            report.multivariate.append(domain_classifier(reference, current, seed=seed))
    return report


def _column_drift(reference: Profile, name: str, series: pl.Series, mode: str,
                  sample_idx: np.ndarray | None) -> ColumnDrift:
    ref = reference.columns[name]
    cur_nulls = series.null_count()
    if series.dtype.is_float():
        cur_nulls += int(series.is_nan().sum())
    null_rate = (ref.null_rate, cur_nulls / series.len() if series.len() else 0.0)
    note = None
    if isinstance(ref, NumericColumn) and not (series.dtype.is_numeric() or series.dtype.is_temporal()):
        note = f"warning: numeric in the reference but {series.dtype} now; compared after parsing numbers"
    values = st.column_statistics(ref, series)
    constant = isinstance(ref, NumericColumn) and ref.count > 1 and ref.std == 0.0
    if isinstance(ref, NumericColumn) and ref.values is None:
        kind, primary = "numeric", "wasserstein"
    elif isinstance(ref, NumericColumn):
        kind, primary = ("constant" if constant else "discrete"), "jensen_shannon"
        if constant:
            note = (f"warning: constant in the reference ({ref.min:g}, 0 variance): the normed Wasserstein is "
                    "undefined, judged by Jensen-Shannon on the share of other values")
            values.pop("wasserstein", None)
    else:
        kind, primary = "categorical", "jensen_shannon"
    if ref.count == 0:
        note = "warning: the reference column has no values; judged by its null rate only"
    statistics = {}
    for stat, value in values.items():
        threshold = _threshold(reference, name, stat, mode)
        statistics[stat] = {"value": _r(value), "threshold": _r(threshold), "verdict": band(value, threshold)}
    threshold = _threshold(reference, name, primary, mode)
    value = values.get(primary)
    test = p_value = None
    sample = series if sample_idx is None else series.gather(sample_idx)
    if kind == "numeric":
        test = "ks"
        _, p_value = st.ks_one_sample(ref, st.numeric_values(sample))
    elif isinstance(ref, CategoricalColumn):
        test = "chi_square"
        shares, counts = st.categorical_counts(ref, sample)
        _, p_value = st.chi_square(shares, counts)
    p_value = None if p_value is None or not math.isfinite(p_value) else p_value
    verdict = band(value, threshold) if ref.count else "NO"
    if ref.count and value is None and series.len():
        verdict = "DRIFT"
        extra = (f"no usable current value ({cur_nulls} of {series.len()} null"
                 + ("" if kind == "categorical" or cur_nulls == series.len() else ", the rest not numbers") + ")")
        note = f"{note}; {extra}" if note else f"warning: {extra}"
    # more missing values is drift too (absolute change of the null rate; 0.1 by default)
    null_delta = abs(null_rate[1] - null_rate[0])
    null_threshold = DEFAULT_THRESHOLDS["null_rate"]
    statistics["null_rate"] = {"value": _r(null_delta), "threshold": null_threshold,
                               "verdict": band(null_delta, null_threshold)}
    if _ORDER[band(null_delta, null_threshold)] > _ORDER[verdict]:
        verdict = band(null_delta, null_threshold)
        note = note or f"null rate {null_rate[0]:.1%} -> {null_rate[1]:.1%}"
    return ColumnDrift(name, kind, primary, value, threshold, verdict, statistics, test, p_value, None,
                       null_rate, note)


def _numeric_matrix(profile: Profile, frame: pl.DataFrame, columns: list[str]) -> np.ndarray:
    import polars as pl

    exprs = []
    for name in columns:
        col = pl.col(name)
        if frame.schema[name].is_temporal():
            col = col.to_physical()
        exprs.append(col.cast(pl.Float64, strict=False).fill_nan(None))
    x = frame.select(exprs).to_numpy()
    means = np.array([profile.columns[c].mean for c in columns])
    return np.where(np.isnan(x), means, x)


def pca_drift(reference: Profile, current: pl.DataFrame, *, seed: int = 0, max_rows: int = 100_000) -> dict[str, Any] | None:
    """Mean PCA reconstruction error of current rows vs the reference sample's (NannyML's recipe)."""
    import polars as pl

    cols = [c for c in reference.numeric_columns()
            if c in current.columns and c in reference.sample and reference.columns[c].std > 0]
    if len(cols) < 2 or not reference.sample:
        return None
    ref_frame = pl.DataFrame({c: reference.sample[c] for c in cols}, schema={c: pl.Float64 for c in cols})
    if ref_frame.height < 50:
        return None
    means = np.array([reference.columns[c].mean for c in cols])
    stds = np.array([reference.columns[c].std for c in cols])
    ref_x = (_numeric_matrix(reference, ref_frame, cols) - means) / stds
    _, s, vt = np.linalg.svd(ref_x - ref_x.mean(axis=0), full_matrices=False)
    explained = np.cumsum(s ** 2) / np.sum(s ** 2)
    k = int(np.searchsorted(explained, PCA_VARIANCE) + 1)
    comp = vt[:k]

    def errors(x: np.ndarray) -> np.ndarray:
        centered = x - ref_x.mean(axis=0)
        return np.linalg.norm(centered - centered @ comp.T @ comp, axis=1)

    ref_err = errors(ref_x)
    frame = current if current.height <= max_rows else current.sample(n=max_rows, seed=seed)
    cur_err = errors((_numeric_matrix(reference, frame.select(cols), cols) - means) / stds)
    chunks = np.array_split(ref_err, 10)
    chunk_means = np.array([c.mean() for c in chunks])
    base = float(ref_err.mean())
    if base < 1e-6:
        return None  # the kept components explain everything (collinear columns): nothing to measure
    change = abs(float(cur_err.mean()) - base) / base if base else 0.0
    noise = 3 * float(chunk_means.std(ddof=1)) / base if base else 0.0
    threshold = max(PCA_MIN_CHANGE, noise * math.sqrt(len(chunks[0]) / max(len(ref_err), 1)))
    return {"method": "pca_reconstruction", "value": round(change, 6), "threshold": round(threshold, 6),
            "verdict": band(change, threshold),
            "detail": f"{k} components ({PCA_VARIANCE:.0%} variance) of {len(cols)} columns; mean error "
                      f"{float(cur_err.mean()):.4g} vs reference {base:.4g} (relative change)"}


def domain_classifier(reference: Profile, current: pl.DataFrame, *, seed: int = 0) -> dict[str, Any]:
    """AUROC of a classifier told to separate reference-sample rows from current rows (5-fold CV)."""
    import polars as pl

    from shipyard.errors import require_extra

    require_extra("sklearn", "sklearn")
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import cross_val_score

    cols = [c for c in reference.numeric_columns() if c in current.columns and c in reference.sample]
    cats = [c for c, col in reference.columns.items()
            if isinstance(col, CategoricalColumn) and c in current.columns and c in reference.sample]
    if not cols and not cats:
        raise InputError("the domain classifier needs columns present in both the reference sample and the current data")
    n = len(next(iter(reference.sample.values())))
    ref_frame = pl.DataFrame({c: reference.sample[c] for c in cols + cats},
                             schema={**{c: pl.Float64 for c in cols}, **{c: pl.String for c in cats}})
    cur_frame = current.select(cols + cats)
    if cur_frame.height > n:
        cur_frame = cur_frame.sample(n=n, seed=seed)
    cur_frame = cur_frame.with_columns([pl.col(c).cast(pl.Float64, strict=False) for c in cols]
                                       + [pl.col(c).cast(pl.String) for c in cats])
    both = pl.concat([ref_frame, cur_frame])
    parts = [both.select(cols).to_numpy()] if cols else []
    for c in cats:
        codes = both[c].cast(pl.Categorical).to_physical().cast(pl.Float64).to_numpy()
        parts.append(codes.reshape(-1, 1))
    x = np.hstack(parts)
    y = np.r_[np.zeros(ref_frame.height), np.ones(cur_frame.height)]
    model = HistGradientBoostingClassifier(max_iter=100, random_state=seed,
                                           categorical_features=list(range(len(cols), len(cols) + len(cats))) or None)
    auc = float(np.mean(cross_val_score(model, x, y, cv=5, scoring="roc_auc")))
    verdict: Verdict = "DRIFT" if auc >= AUROC_DRIFT else "POSSIBLE" if auc >= AUROC_POSSIBLE else "NO"
    return {"method": "domain_classifier", "value": round(auc, 6), "threshold": AUROC_DRIFT, "verdict": verdict,
            "detail": f"5-fold AUROC of {ref_frame.height} reference vs {cur_frame.height} current rows "
                      f"(POSSIBLE from {AUROC_POSSIBLE})"}


def compare_profiles(reference: Profile, current: Profile, *, thresholds: str = "effect") -> list[ColumnDrift]:
    """Column drift between two profiles (no raw data; used by ``data diff``)."""
    out = []
    for name, ref in reference.columns.items():
        cur = current.columns.get(name)
        if cur is None or cur.kind != ref.kind:
            continue
        values = st.column_statistics(ref, cur)
        primary = "wasserstein" if isinstance(ref, NumericColumn) and ref.values is None else "jensen_shannon"
        if primary != "wasserstein":
            values.pop("wasserstein", None)
        threshold = _threshold(reference, name, primary, thresholds)
        value = values.get(primary)
        stats_out = {k: {"value": _r(v), "threshold": _r(_threshold(reference, name, k, thresholds)),
                         "verdict": band(v, _threshold(reference, name, k, thresholds))} for k, v in values.items()}
        out.append(ColumnDrift(name, ref.kind, primary, value, threshold, band(value, threshold), stats_out,
                               null_rate=(ref.null_rate, cur.null_rate)))
    return out
