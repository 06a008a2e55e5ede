"""Write request logs and feedback exactly as contract 4 describes them (Parquet, hive folders)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl

from shipyard.data.profile import profile_frame

FEATURES = ("bill_length_mm", "flipper_length_mm", "island")
ISLANDS = ["Biscoe", "Dream", "Torgersen"]


def training_frame(n: int = 2000, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], n)
    return pl.DataFrame({
        "bill_length_mm": rng.normal(44.0, 5.0, n),
        "flipper_length_mm": rng.normal(200.0, 14.0, n),
        "island": rng.choice(ISLANDS, n),
        "species": species,
    })


def reference_profile(seed: int = 0):  # type: ignore[no-untyped-def]
    return profile_frame(training_frame(seed=seed))


def traffic(n: int, *, seed: int, shift: float = 0.0, start: float, spacing: float = 0.1, version: int = 1,
            model: str = "penguins", error_every: int = 0, null_every: int = 0, unseen_every: int = 0,
            route: str = "primary", score: float = 0.9) -> pl.DataFrame:
    """``n`` logged requests; ``shift`` moves the numeric features by that many standard deviations."""
    rng = np.random.default_rng(seed)
    bill = rng.normal(44.0 + shift * 5.0, 5.0, n)
    flipper = rng.normal(200.0 + shift * 14.0, 14.0, n)
    island = rng.choice(ISLANDS, n).astype(object)
    if unseen_every:
        island[::unseen_every] = "Atlantis"
    bill_col = [None if null_every and i % null_every == 0 else float(v) for i, v in enumerate(bill)]
    status = ["error" if error_every and i % error_every == 0 else "ok" for i in range(n)]
    ts = [datetime.fromtimestamp(start + i * spacing, UTC) for i in range(n)]
    return pl.DataFrame({
        "request_id": [f"r-{seed}-{i}" for i in range(n)],
        "ts": pl.Series(ts, dtype=pl.Datetime("us", "UTC")),
        "model": [model] * n,
        "version": pl.Series([version] * n, dtype=pl.Int64),
        "route": [route] * n,
        "status": status,
        "latency_ms": rng.gamma(2.0, 2.0, n),
        "error": [None if s == "ok" else "boom" for s in status],
        "feature.bill_length_mm": pl.Series(bill_col, dtype=pl.Float64),
        "feature.flipper_length_mm": flipper,
        "feature.island": pl.Series(list(island), dtype=pl.String),
        "prediction": rng.choice(["Adelie", "Gentoo", "Chinstrap"], n),
        "score": np.full(n, score),
    })


def write_log(root: Path, frame: pl.DataFrame, model: str = "penguins") -> Path:
    first = frame["ts"][0]
    folder = Path(root) / f"model={model}" / f"date={first:%Y-%m-%d}" / f"hour={first:%H}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{uuid.uuid4().hex}.parquet"
    frame.write_parquet(path)
    return path


def write_feedback(root: Path, request_ids: list[str], labels: list[str], at: float) -> Path:
    day = datetime.fromtimestamp(at, UTC)
    folder = Path(root) / f"date={day:%Y-%m-%d}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"part-{uuid.uuid4().hex}.parquet"
    pl.DataFrame({"request_id": request_ids,
                  "ts": pl.Series([day] * len(labels), dtype=pl.Datetime("us", "UTC")),
                  "label": labels}).write_parquet(path)
    return path
