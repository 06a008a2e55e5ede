"""Analysis of a rollout's live window, read from the gateway's request log and feedback labels.

Reads the Parquet request log (every replica writes there, so the controller sees all traffic)
for one model since a point in time and compares candidate with champion:

- ``candidate_n`` / ``champion_n``: answered attempts on each side (the candidate's failed attempts
  count; the champion's fallback answers to them do not count as champion traffic);
- ``error_rate``: candidate errors (raised, timed out, garbage) over candidate attempts;
- ``latency_p99_ms`` (candidate) and ``latency_p99_ratio`` (candidate p99 / champion p99);
- ``prediction_psi``: population stability index of the candidate's predictions against the
  champion's in the same window (``data.stats.sample_psi``: the bins of a drift report), once both
  sides have ``MIN_PSI_SAMPLES`` answers (two small samples of one model differ by chance);
- ``shadow_n`` / ``shadow_disagreement``: share of mirrored requests where the two disagree;
- ``accuracy`` / ``champion_accuracy`` / ``accuracy_drop`` when feedback labels exist
  (at least ``MIN_LABELS`` labelled candidate answers).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from shipyard.data.requestlog import RequestReader, read_labels
from shipyard.data.stats import sample_psi

CANDIDATE_ROUTES = ("canary", "b", "shadow")
CHAMPION_ROUTES = ("primary", "a")
MIN_LABELS = 20
MIN_PSI_SAMPLES = 100  # below this, two samples of the same model often differ by PSI > 0.2
COLUMNS = ["request_id", "ts", "version", "route", "status", "latency_ms", "prediction"]


def read_window(reader: RequestReader, feedback_root: Any, model: str, since: float,
                until: float) -> tuple[Any, Any]:
    """The window's request rows (since <= ts < until: windows tile, no row counts twice) and the
    feedback labels posted since it began (one per request id, the latest), both polars frames."""
    return reader.read(model, since, until, columns=COLUMNS), read_labels(feedback_root, since)


def _p99(values: Any) -> float | None:
    if len(values) == 0:
        return None
    return float(np.quantile(np.asarray(values, dtype=float), 0.99))


def _agree(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    return a == b


def analyse(requests: Any, feedback: Any, candidate: int, champion: int | None) -> dict[str, Any]:
    """The window's metrics from request-log rows (polars) and feedback labels (polars)."""
    import polars as pl

    cand = requests.filter((pl.col("version") == candidate) & pl.col("route").is_in(list(CANDIDATE_ROUTES)))
    champ = (requests.filter((pl.col("version") == champion) & pl.col("route").is_in(list(CHAMPION_ROUTES)))
             if champion is not None else requests.clear())
    # a champion answer that stood in for a failed candidate is not champion traffic
    failed_ids = cand.filter(pl.col("status") == "error")["request_id"]
    champ_own = champ.filter(~pl.col("request_id").is_in(failed_ids.implode())) if len(failed_ids) else champ
    cand_ok = cand.filter(pl.col("status") == "ok")
    champ_ok = champ_own.filter(pl.col("status") == "ok")
    out: dict[str, Any] = {
        "candidate_n": cand.height,
        "champion_n": champ_own.height,
        "candidate_errors": cand.height - cand_ok.height,
        "error_rate": (cand.height - cand_ok.height) / cand.height if cand.height else None,
        "latency_p99_ms": _p99(cand_ok["latency_ms"]),
        "champion_latency_p99_ms": _p99(champ_ok["latency_ms"]),
    }
    if out["latency_p99_ms"] is not None and out["champion_latency_p99_ms"]:
        out["latency_p99_ratio"] = out["latency_p99_ms"] / out["champion_latency_p99_ms"]
    live = cand_ok.filter(pl.col("route") != "shadow")
    enough = min(live.height, champ_ok.height) >= MIN_PSI_SAMPLES
    out["prediction_psi"] = (sample_psi(live["prediction"].to_numpy(), champ_ok["prediction"].to_numpy())
                             if enough else None)
    shadow = cand_ok.filter(pl.col("route") == "shadow")
    out["shadow_n"] = shadow.height
    if shadow.height and champ_ok.height:
        pairs = shadow.select("request_id", pl.col("prediction").alias("shadow")).join(
            champ_ok.select("request_id", "prediction"), on="request_id", how="inner")
        if pairs.height:
            agree = [_agree(a, b) for a, b in zip(pairs["shadow"].to_list(), pairs["prediction"].to_list(), strict=True)]
            out["shadow_disagreement"] = 1.0 - sum(agree) / len(agree)
            out["shadow_pairs"] = pairs.height
            if out["prediction_psi"] is None and min(shadow.height, champ_ok.height) >= MIN_PSI_SAMPLES:
                out["prediction_psi"] = sample_psi(shadow["prediction"].to_numpy(), champ_ok["prediction"].to_numpy())
    if feedback is not None and feedback.height:
        for side, rows in (("", live if live.height else shadow), ("champion_", champ_ok)):
            labelled = rows.select("request_id", pl.col("prediction").cast(pl.String)).join(
                feedback, on="request_id", how="inner")
            out[f"{side}labels_n"] = labelled.height
            if labelled.height >= MIN_LABELS:
                out[f"{side}accuracy"] = float((labelled["prediction"] == labelled["label"]).mean())
        if out.get("accuracy") is not None and out.get("champion_accuracy") is not None:
            out["accuracy_drop"] = out["champion_accuracy"] - out["accuracy"]
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in out.items()}
