"""The gate checks. Each takes a Gate entry and the evaluation context and returns a Check."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.config import Gate
from shipyard.errors import ConfigError, InputError, did_you_mean
from shipyard.gates.verdict import Check

NO_CHAMPION = "no champion yet: compared with thresholds only"


@dataclass
class Subject:
    """A model under judgement: its reference, the loaded model, size, and logged metrics."""

    ref: str
    model: Any
    size_bytes: int = 0
    metrics: dict[str, float] = field(default_factory=dict)
    supply: dict[str, Any] = field(default_factory=dict)   # {"scan": summary, "signature": facts or None}
    cost: Any = None  # shipyard.tracking.cost.Cost of the run that trained it (None: not known)
    _cache: dict[str, Any] = field(default_factory=dict)

    @property
    def signature(self) -> Any:
        return self.model.signature

    def predict(self, frame: Any, key: str = "eval") -> Any:
        if key not in self._cache:
            self._cache[key] = np.asarray(self.model.predict(frame))
        return self._cache[key]

    def predict_proba(self, frame: Any, key: str = "eval") -> Any:
        cache_key = f"{key}:proba"
        if cache_key not in self._cache:
            self._cache[cache_key] = self.model.predict_proba(frame)
        return self._cache[cache_key]


@dataclass
class Context:
    """Everything the checks may read; ``champion`` is None for a first model."""

    candidate: Subject
    champion: Subject | None
    frame: Any = None          # the evaluation set (pandas), with the target column
    target: str | None = None
    root: Path = Path(".")
    champion_note: str = NO_CHAMPION

    def eval_set(self, gate: Gate) -> tuple[Any, Any]:
        if self.frame is None or self.target is None:
            raise ConfigError(f"gate '{gate.label()}' needs an evaluation set",
                              hint="set model.eval (a CSV or Parquet file) and model.target in shipyard.yaml")
        if self.target not in self.frame.columns:
            raise ConfigError(f"model.target {self.target!r} is not a column of the evaluation set",
                              hint=did_you_mean(self.target, map(str, self.frame.columns)))
        return self.frame, self.frame[self.target].to_numpy()


def _skip(gate: Gate, reason: str) -> Check:
    return Check(gate.label(), gate.kind, None, reason=reason)


def metric(gate: Gate, ctx: Context) -> Check:
    if gate.vs == "champion":
        return _versus_champion(gate, ctx)
    logged = ctx.candidate.metrics
    name = gate.metric or ""
    if name not in logged:
        hint = did_you_mean(name, logged) if logged else "the version's run logged no metrics (register with --run RUN)"
        raise ConfigError(f"gate '{gate.label()}' names metric {name!r}, which was not logged for {ctx.candidate.ref}",
                          hint=hint)
    value = float(logged[name])
    ok = (gate.min is None or value >= gate.min) and (gate.max is None or value <= gate.max)
    bound = {k: v for k, v in (("min", gate.min), ("max", gate.max)) if v is not None}
    verb = "meets" if ok else "misses"
    return Check(gate.label(), "metric", ok, value, bound,
                 f"{name} = {value:.4g} {verb} " + " and ".join(f"{k} {v}" for k, v in bound.items()))


def _versus_champion(gate: Gate, ctx: Context) -> Check:
    from shipyard.gates.stats import paired_bootstrap

    if ctx.champion is None:
        return _skip(gate, ctx.champion_note)
    frame, y = ctx.eval_set(gate)
    cand = ctx.candidate.predict(frame)
    champ = ctx.champion.predict(frame)
    kwargs: dict[str, Any] = {}
    if gate.metric == "log_loss":
        kwargs = {"proba_a": ctx.candidate.predict_proba(frame), "proba_b": ctx.champion.predict_proba(frame),
                  "classes": ctx.candidate.model.classes}
    result = paired_bootstrap(gate.metric or "", y, cand, champ, resamples=gate.resamples,
                              confidence=gate.confidence, **kwargs)
    gain, low, high = result.gain
    if gate.max_drop is not None:
        ok = low >= -gate.max_drop
        rule = f"the {gate.confidence:.0%} interval of the gain must stay above -{gate.max_drop}"
        threshold: Any = {"max_drop": gate.max_drop}
    else:
        ok = low >= (gate.min_gain or 0.0)
        rule = f"the {gate.confidence:.0%} interval of the gain must stay above {gate.min_gain}"
        threshold = {"min_gain": gate.min_gain}
    reason = (f"{gate.metric} {result.candidate:.4f} vs champion {ctx.champion.ref} {result.baseline:.4f}: "
              f"gain {gain:+.4f}, {gate.confidence:.0%} CI [{low:+.4f}, {high:+.4f}] on {result.rows} rows; {rule}")
    return Check(gate.label(), "metric", ok, round(gain, 6), threshold, reason, result.to_dict())


def _one_vs_rest(y: Any, pred: Any, groups: Any, fn: Any, use_true: bool) -> float:
    labels = sorted({str(v) for v in np.concatenate([np.asarray(y), np.asarray(pred)])})
    ys, ps = np.asarray(y).astype(str), np.asarray(pred).astype(str)
    if len(labels) <= 2:
        positive = labels[-1]
        return float(fn((ys == positive).astype(int), (ps == positive).astype(int), sensitive_features=groups))
    return float(max(fn((ys == c).astype(int), (ps == c).astype(int), sensitive_features=groups) for c in labels))


def fairness(gate: Gate, ctx: Context) -> Check:
    from shipyard.errors import require_extra

    require_extra("fairlearn", "sklearn")
    from fairlearn.metrics import demographic_parity_difference, equalized_odds_difference

    frame, y = ctx.eval_set(gate)
    if gate.group not in frame.columns:
        raise ConfigError(f"fairness gate groups by {gate.group!r}, which is not a column of the evaluation set",
                          hint=did_you_mean(gate.group or "", map(str, frame.columns)))
    groups = frame[gate.group].astype(str).fillna("(missing)").to_numpy()
    pred = ctx.candidate.predict(frame)
    fn = demographic_parity_difference if gate.fairness == "demographic_parity_difference" else equalized_odds_difference
    value = _one_vs_rest(y, pred, groups, fn, use_true=gate.fairness != "demographic_parity_difference")
    table = []
    for g in sorted(set(groups)):
        mask = groups == g
        table.append({"group": g, "rows": int(mask.sum()),
                      "accuracy": float((np.asarray(pred)[mask].astype(str) == np.asarray(y)[mask].astype(str)).mean()),
                      "selection_rate": _selection(pred[mask])})
    ok = value <= (gate.max or 0.0)
    multi = len({str(v) for v in y}) > 2
    how = " (largest over classes, one vs rest)" if multi else ""
    return Check(gate.label(), "fairness", ok, round(value, 6), {"max": gate.max},
                 f"{gate.fairness} by {gate.group} = {value:.4f}{how}, allowed {gate.max}",
                 {"group": gate.group, "groups": table})


def _selection(pred: Any) -> dict[str, float]:
    values, counts = np.unique(np.asarray(pred).astype(str), return_counts=True)
    return {str(v): round(float(c) / max(len(pred), 1), 4) for v, c in zip(values, counts, strict=True)}


def latency(gate: Gate, ctx: Context) -> Check:
    frame, _ = ctx.eval_set(gate)
    rows = frame.head(gate.rows)
    if rows.empty:
        raise InputError("the evaluation set is empty; cannot measure latency")
    model = ctx.candidate.model
    for i in range(min(3, len(rows))):
        model.predict(rows.iloc[[i]])
    timings = []
    for i in range(len(rows)):
        start = time.perf_counter()
        model.predict(rows.iloc[[i]])
        timings.append((time.perf_counter() - start) * 1000)
    p50, p99 = float(np.percentile(timings, 50)), float(np.percentile(timings, 99))
    bounds = {k: v for k, v in (("p50_ms", gate.latency_p50_ms), ("p99_ms", gate.latency_p99_ms)) if v is not None}
    ok = (gate.latency_p50_ms is None or p50 <= gate.latency_p50_ms) and (gate.latency_p99_ms is None or p99 <= gate.latency_p99_ms)
    return Check(gate.label(), "latency", ok, {"p50_ms": round(p50, 3), "p99_ms": round(p99, 3)}, bounds,
                 f"one-row predict in process over {len(rows)} rows: p50 {p50:.2f} ms, p99 {p99:.2f} ms")


def size(gate: Gate, ctx: Context) -> Check:
    mb = ctx.candidate.size_bytes / 1_000_000
    ok = mb <= (gate.max_size_mb or 0)
    return Check(gate.label(), "max_size_mb", ok, round(mb, 4), {"max_mb": gate.max_size_mb},
                 f"model file is {mb:.3f} MB, allowed {gate.max_size_mb} MB")


def signature(gate: Gate, ctx: Context) -> Check:
    if ctx.champion is None:
        return _skip(gate, ctx.champion_note)
    mine, theirs = ctx.candidate.signature, ctx.champion.signature
    if mine is None or theirs is None:
        who = ctx.candidate.ref if mine is None else ctx.champion.ref
        return Check(gate.label(), "signature", False, reason=f"{who} has no signature to compare (register it with model.train set)")
    problems = mine.compatible_with(theirs)
    return Check(gate.label(), "signature", not problems, None, None,
                 "; ".join(problems) if problems else f"accepts every input {ctx.champion.ref} accepts",
                 {"problems": problems})


def scan(gate: Gate, ctx: Context) -> Check:
    """``scan: clean``: the candidate's files, scanned now (by the current scanner), have no findings."""
    report = ctx.candidate.supply.get("scan")
    if report is None:
        return Check(gate.label(), "scan", False, reason="the candidate was not scanned")
    findings = report["findings"]
    return Check(gate.label(), "scan", report["clean"], len(findings), 0,
                 "no findings" if report["clean"] else f"{len(findings)} findings, first: {findings[0]}",
                 {"findings": findings})


def signed(gate: Gate, ctx: Context) -> Check:
    """``signed: true``: the candidate carries a signature that verifies with an accepted key."""
    facts = ctx.candidate.supply.get("signature")
    if not facts:
        return Check(gate.label(), "signed", False, reason="the version is not signed (configure supply.signing_key)")
    return Check(gate.label(), "signed", True, facts.get("key"), None, f"verified with key {facts.get('key')}")


def forbid_classified(gate: Gate, ctx: Context) -> Check:
    """``forbid_classified: pii``: none of the candidate's features carries that classification."""
    classified = ctx.candidate.supply.get("classified")
    if classified is None:
        return Check(gate.label(), "forbid_classified", False,
                     reason="the version records no column classification (register it with model.train set)")
    columns = classified.get(gate.forbid_classified or "", [])
    return Check(gate.label(), "forbid_classified", not columns, columns, [],
                 f"features classified {gate.forbid_classified}: {', '.join(columns)}" if columns
                 else f"no feature classified {gate.forbid_classified}")


def behavioral(gate: Gate, ctx: Context) -> Check:
    from shipyard.gates.behavior import load_suite, run_suite

    path = _inside(ctx.root, gate.behavioral or "", "behavioral")
    suite = load_suite(path)
    frame, _ = ctx.eval_set(gate)
    results = run_suite(suite, ctx.candidate.model, frame)
    failed = [r for r in results if not r["passed"]]
    reason = (f"{len(results) - len(failed)} of {len(results)} tests passed"
              + ("; failed: " + "; ".join(f"{r['name']} ({r['detail']})" for r in failed) if failed else ""))
    return Check(gate.label(), "behavioral", not failed, f"{len(results) - len(failed)}/{len(results)}", None, reason,
                 {"tests": results})


def replay(gate: Gate, ctx: Context) -> Check:
    from shipyard.data.requestlog import answered, features, read_files

    path = _inside(ctx.root, gate.replay or "", "replay")
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files or not files[0].exists():
        raise InputError(f"replay: no recorded requests at {gate.replay}",
                         hint="point replay at a Parquet file or a request-log folder (requests/model=NAME/)")
    try:
        log = read_files(list(files))
    except Exception as exc:
        raise InputError(f"replay: cannot read {gate.replay}: {exc}") from exc
    log = answered(log)
    inputs = features(log)
    if inputs.width == 0:
        raise InputError(f"replay: {gate.replay} has no feature.<name> columns (the request-log format)")
    inputs = inputs.to_pandas()
    if inputs.empty:
        raise InputError(f"replay: {gate.replay} holds no successful requests")
    cand = ctx.candidate.predict(inputs, key=f"replay:{gate.replay}")
    if ctx.champion is not None:
        other, against = ctx.champion.predict(inputs, key=f"replay:{gate.replay}"), f"champion {ctx.champion.ref}"
    elif "prediction" in log.columns:
        other, against = log["prediction"].to_numpy(), "the predictions recorded in the log (no champion yet)"
    else:
        return _skip(gate, ctx.champion_note + "; the log records no predictions to compare with")
    differ = _differ(np.asarray(cand), np.asarray(other))
    share = float(differ.mean())
    ok = share <= (gate.max_disagreement or 0.0)
    return Check(gate.label(), "replay", ok, round(share, 6), {"max_disagreement": gate.max_disagreement},
                 f"disagrees with {against} on {int(differ.sum())} of {len(differ)} recorded requests ({share:.2%}); allowed {gate.max_disagreement:.2%}",
                 {"requests": len(differ)})


def _differ(a: Any, b: Any) -> Any:
    if a.dtype.kind in "fc" and b.dtype.kind in "fciu":
        return ~np.isclose(a.astype(float), b.astype(float), rtol=1e-6, atol=1e-9)
    return a.astype(str) != b.astype(str)


def _inside(root: Path, rel: str, what: str) -> Path:
    from shipyard.project import resolve_inside

    path = resolve_inside(root, rel, f"{what} gate path")
    if not path.exists():
        raise ConfigError(f"{what} gate: {rel} does not exist (relative to {root})")
    return path


def max_cost(gate: Gate, ctx: Context) -> Check:
    """``max_cost: 2.0`` (and ``vs: champion, max_increase: 50%``): the training run's cost, priced by
    the project's cost table. An unpriced run fails the gate: a budget nobody can check is not met."""
    from shipyard.tracking.cost import money

    cost = ctx.candidate.cost
    if cost is None or cost.amount is None:
        why = ", ".join(cost.unpriced) if cost is not None else "no training run recorded"
        return Check(gate.label(), "max_cost", False, reason=f"the candidate's training cost is unpriced ({why})")
    bounds: dict[str, Any] = {"max": gate.max_cost}
    ok = cost.amount <= (gate.max_cost or 0)
    reasons = [f"trained for {cost.text()}, allowed {gate.max_cost:g} {cost.currency}"]
    if gate.vs == "champion" and gate.max_increase is not None:
        theirs = ctx.champion.cost if ctx.champion is not None else None
        if theirs is None or theirs.amount is None:
            reasons.append("no priced champion to compare with")
        else:
            limit = theirs.amount * (1 + float(gate.max_increase))
            bounds["vs_champion"] = round(limit, 6)
            ok = ok and cost.amount <= limit
            reasons.append(f"champion {theirs.text()}, at most +{float(gate.max_increase):.0%}: {money(limit)}")
    return Check(gate.label(), "max_cost", ok, round(cost.amount, 6), bounds, "; ".join(reasons))
