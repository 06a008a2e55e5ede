"""Generate the example's data (no network): hourly driver statistics for the last 48 hours up to
now (the feature source, as an upstream feature pipeline would write it) and labelled entity rows.

The label depends on the features at the row's time, so a model trained on point-in-time correct
features learns it; some rows precede every statistic of their driver (they keep null features).
Run it again to move the data to the current time (the online store's values must be fresh).
"""

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

DRIVERS, HOURS, ROWS = 200, 48, 5000
rng = np.random.default_rng(7)
now = datetime.now(UTC).replace(second=0, microsecond=0)  # the freshest statistic is of this minute
start = now - timedelta(hours=HOURS - 1)

ids = np.repeat(np.arange(1001, 1001 + DRIVERS), HOURS)
stamps = pd.to_datetime(start) + pd.to_timedelta(np.tile(np.arange(HOURS), DRIVERS), unit="h")
stats = pd.DataFrame({"driver_id": ids.astype("int64"), "event_timestamp": stamps, "created": stamps,
                      "conv_rate": rng.random(len(ids)), "acc_rate": rng.random(len(ids)),
                      "avg_daily_trips": rng.integers(0, 1000, len(ids)).astype("int64"),
                      "trips_today": rng.integers(0, 40, len(ids)).astype("int64"),
                      "rating": rng.uniform(3.0, 5.0, len(ids)), "cancel_rate": rng.random(len(ids)) * 0.2,
                      "online_hours": rng.uniform(0, 12, len(ids)), "avg_fare": rng.uniform(5, 60, len(ids)),
                      "avg_distance_km": rng.uniform(1, 30, len(ids)),
                      "complaints_7d": rng.integers(0, 5, len(ids)).astype("int64")})
Path("feature_repo/data").mkdir(parents=True, exist_ok=True)
stats.to_parquet("feature_repo/data/driver_stats.parquet", index=False)

# entity rows: a driver at a minute of the window (some before its first statistic)
row_ids = rng.integers(1001, 1001 + DRIVERS, ROWS).astype("int64")
minutes = rng.integers(-90, HOURS * 60, ROWS)
labels = pd.DataFrame({"driver_id": row_ids,
                       "event_timestamp": pd.to_datetime(start) + pd.to_timedelta(minutes, unit="m")})
asof = pd.merge_asof(labels.reset_index().sort_values("event_timestamp"), stats.sort_values("event_timestamp"),
                     on="event_timestamp", by="driver_id").set_index("index").sort_index()
score = asof["conv_rate"].fillna(0.5) * 2 + asof["acc_rate"].fillna(0.5) - 1.5 + rng.normal(0, 0.2, ROWS)
labels["label"] = (score > 0).astype("int64")
Path("data").mkdir(exist_ok=True)
labels.to_parquet("data/labels.parquet", index=False)
print(f"wrote {len(stats)} statistics of {DRIVERS} drivers up to {now:%Y-%m-%d %H:%M} UTC and {len(labels)} labels")
