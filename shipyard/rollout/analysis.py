"""Analysis of a rollout's live window, read from the gateway's request log and feedback labels.

Reads the Parquet request log (every replica writes there, so the controller sees all traffic)
for one model since a point in time and compares candidate with champion:

- ``candidate_n`` / ``champion_n``: answered attempts on each side (the candidate's failed attempts
  count; the champion's fallback answers to them do not count as champion traffic);
- ``error_rate``: candidate errors (raised, timed out, garbage) over candidate attempts;
- ``latency_p99_ms`` (candidate) and ``latency_p99_ratio`` (candidate p99 / champion p99);
- ``prediction_psi``: population stability index of the candidate's predictions against the
  champion's in the same window (class shares, or the champion's deciles for numbers), once both
  sides have ``MIN_PSI_SAMPLES`` answers (two small samples of one model differ by chance);
- ``shadow_n`` / ``shadow_disagreement``: share of mirrored requests where the two disagree;
- ``accuracy`` / ``champion_accuracy`` / ``accuracy_drop`` when feedback labels exist
  (at least ``MIN_LABELS`` labelled candidate answers).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from shipyard.serving.logstore import LogFolder

CANDIDATE_ROUTES = ("canary", "b", "shadow")
CHAMPION_ROUTES = ("primary", "a")
MIN_LABELS = 20
MIN_PSI_SAMPLES = 100  # below this, two samples of the same model often differ by PSI > 0.2
PSI_EPS = 1e-4
COLUMNS = ["request_id", "ts", "version", "route", "status", "latency_ms", "prediction"]


def _hours(since: float, until: float) -> list[tuple[str, str]]:
    start = datetime.fromtimestamp(since, UTC).replace(minute=0, second=0, microsecond=0)
    end = datetime.fromtimestamp(until, UTC)
    out = []
    while start <= end:
        out.append((start.strftime("%Y-%m-%d"), start.strftime("%H")))
        start += timedelta(hours=1)
    return out[-24 * 14:]  # a window never looks back more than two weeks


class LogReader:
    """Reads request-log files, keeping each (immutable, written-whole) file parsed once."""

    def __init__(self) -> None:
        self._cache: dict[str, Any] = {}

    def frames(self, folder: LogFolder, paths: list[str]) -> list[Any]:
        import polars as pl
        import pyarrow.parquet as pq

        out = []
        for path in paths:
            frame = self._cache.get(path)
            if frame is None:
                frame = pl.from_arrow(pq.read_table(folder.source(path), columns=COLUMNS))
                if frame["prediction"].dtype != pl.String:
                    frame = frame.with_columns(pl.col("prediction").cast(pl.Float64))
                self._cache[path] = frame
            out.append(frame)
        keep = set(paths)
        for path in [p for p in self._cache if p not in keep]:
            del self._cache[path]
        return out


def read_requests(root: Path | LogFolder | str, model: str, since: float, until: float,
                  reader: LogReader | None = None) -> Any:
    """The request-log rows of ``model`` with since <= ts <= until, as a polars DataFrame.

    ``root`` is a local folder or an fsspec URL (``s3://bucket/prefix``): every replica and worker
    writes there, so this sees all of the model's traffic."""
    import polars as pl

    log = LogFolder.of(root)
    hours = _hours(since, until)
    if log.local:
        paths = [p for date, hour in hours
                 for p in (log / f"model={model}" / f"date={date}" / f"hour={hour}").files("part-*.parquet")]
    else:  # one listing of the model's folder, not one request per hour of the window
        wanted = {f"date={date}/hour={hour}" for date, hour in hours}
        model_log = log / f"model={model}"
        paths = [p for p in model_log.files("date=*/hour=*/part-*.parquet")
                 if str(model_log.relative(p).parent) in wanted]
    tables = (reader or LogReader()).frames(log, paths)
    if not tables:
        return pl.DataFrame(schema={"request_id": pl.String, "ts": pl.Datetime("us", "UTC"), "version": pl.Int64,
                                    "route": pl.String, "status": pl.String, "latency_ms": pl.Float64,
                                    "prediction": pl.String})
    frame = pl.concat(tables, how="vertical_relaxed")
    lo = datetime.fromtimestamp(since, UTC)
    hi = datetime.fromtimestamp(until, UTC)
    return frame.filter((pl.col("ts") >= lo) & (pl.col("ts") <= hi))


def read_feedback(root: Path | LogFolder | str, since: float) -> Any:
    """Feedback labels (request_id, label as str) written since ``since`` (by date partition)."""
    import polars as pl
    import pyarrow.parquet as pq

    log = LogFolder.of(root)
    frames = []
    first = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d")
    for path in log.files("date=*/part-*.parquet"):
        if log.relative(path).parts[0].removeprefix("date=") < first:
            continue
        frame = pl.from_arrow(pq.read_table(log.source(path), columns=["request_id", "label"]))
        frames.append(frame.with_columns(pl.col("label").cast(pl.String)))
    if not frames:
        return pl.DataFrame(schema={"request_id": pl.String, "label": pl.String})
    return pl.concat(frames).unique("request_id", keep="last")


def psi(candidate: np.ndarray, champion: np.ndarray) -> float | None:
    """Population stability index of two samples (categorical if strings, deciles otherwise)."""
    if len(candidate) == 0 or len(champion) == 0:
        return None
    if candidate.dtype.kind in "OUS" or champion.dtype.kind in "OUS":
        cats = sorted(set(candidate.tolist()) | set(champion.tolist()), key=str)
        p = np.asarray([np.mean(candidate == c) for c in cats])
        q = np.asarray([np.mean(champion == c) for c in cats])
    else:
        edges = np.unique(np.quantile(champion.astype(float), np.linspace(0, 1, 11)))
        if len(edges) < 2:
            edges = np.asarray([edges[0] - 0.5, edges[0] + 0.5])
        inner = edges[1:-1]
        p = np.bincount(np.searchsorted(inner, candidate.astype(float), side="right"), minlength=len(edges) - 1)
        q = np.bincount(np.searchsorted(inner, champion.astype(float), side="right"), minlength=len(edges) - 1)
        p = p / p.sum()
        q = q / q.sum()
    p = np.clip(p, PSI_EPS, None)
    q = np.clip(q, PSI_EPS, None)
    return float(np.sum((p - q) * np.log(p / q)))


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
    out["prediction_psi"] = (psi(live["prediction"].to_numpy(), champ_ok["prediction"].to_numpy())
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
                out["prediction_psi"] = psi(shadow["prediction"].to_numpy(), champ_ok["prediction"].to_numpy())
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
