"""A small Feast repository written into a scratch folder: drivers with hourly stats (as Feast's
own quickstart), an entity table that holds the rows Feast loses (duplicates, rows before any value)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

START = datetime(2026, 11, 1, tzinfo=UTC)

STORE_YAML = """project: {project}
registry: data/registry.db
provider: local
online_store:
{online}
offline_store:
  type: file
entity_key_serialization_version: 3
"""

SQLITE_ONLINE = "  type: sqlite\n  path: data/online.db"
REDIS_ONLINE = "  type: redis\n  connection_string: 127.0.0.1:6379"
POSTGRES_ONLINE = ("  type: postgres\n  host: 127.0.0.1\n  port: 5432\n  database: test\n  user: root\n"
                   "  password: ''\n  sslmode: disable\n  db_schema: {schema}")

DEFINITIONS = '''from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

source = FileSource(path="data/driver_stats.parquet", timestamp_field="event_timestamp",
                    created_timestamp_column="created")

driver_stats = FeatureView(
    name="driver_stats", entities=[driver], ttl=timedelta(hours={ttl_hours}),
    schema=[Field(name="conv_rate", dtype=Float64), Field(name="acc_rate", dtype=Float64),
            Field(name="avg_daily_trips", dtype=Int64)],
    source=source,
)

rank_source = FileSource(path="data/driver_rank.parquet", timestamp_field="event_timestamp")

driver_rank = FeatureView(
    name="driver_rank", entities=[driver], ttl=timedelta(hours={rank_ttl_hours}),
    schema=[Field(name="rank", dtype=Int64)], source=rank_source,
)
'''


def stats(drivers: int, hours: int, seed: int = 0) -> pd.DataFrame:
    """One row per driver and hour from START (hour 0 included)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(1001, 1001 + drivers), hours)
    stamps = pd.to_datetime(START) + pd.to_timedelta(np.tile(np.arange(hours), drivers), unit="h")
    return pd.DataFrame({
        "driver_id": ids.astype("int64"), "event_timestamp": stamps, "created": stamps,
        "conv_rate": rng.random(len(ids)), "acc_rate": rng.random(len(ids)),
        "avg_daily_trips": rng.integers(0, 1000, len(ids)).astype("int64")})


def entities(drivers: int, hours: int, rows: int, seed: int = 1) -> pd.DataFrame:
    """Entity rows at random minutes from 2 h before START to the end of the data: some precede
    every value (Feast drops them), and a few are exact duplicates (Feast collapses them)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(1001, 1001 + drivers, rows).astype("int64")
    minutes = rng.integers(-120, hours * 60, rows)
    frame = pd.DataFrame({"driver_id": ids, "event_timestamp": pd.to_datetime(START) + pd.to_timedelta(minutes, unit="m"),
                          "label": rng.integers(0, 2, rows).astype("int64")})
    dups = frame.sample(n=max(1, rows // 400), random_state=seed)
    return pd.concat([frame, dups], ignore_index=True)


def write_definitions(folder: Path, *, ttl_hours: int = 2, rank_ttl_hours: int = 24) -> None:
    (folder / "definitions.py").write_text(DEFINITIONS.format(ttl_hours=ttl_hours, rank_ttl_hours=rank_ttl_hours))


def ranks(drivers: int, seed: int = 0) -> pd.DataFrame:
    """One rank per driver, valid from START."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"driver_id": np.arange(1001, 1001 + drivers).astype("int64"),
                         "event_timestamp": pd.to_datetime([START] * drivers),
                         "rank": rng.integers(1, 100, drivers).astype("int64")})


def write_repo(folder: Path, *, drivers: int = 50, hours: int = 24, ttl_hours: int = 2,
               online: str = SQLITE_ONLINE, seed: int = 0, project: str = "drivers") -> Path:
    """The repository folder (feature_store.yaml, definitions.py, data/driver_stats.parquet and
    data/driver_rank.parquet)."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "feature_store.yaml").write_text(STORE_YAML.format(online=online, project=project))
    write_definitions(folder, ttl_hours=ttl_hours)
    stats(drivers, hours, seed).to_parquet(folder / "data" / "driver_stats.parquet", index=False)
    ranks(drivers, seed).to_parquet(folder / "data" / "driver_rank.parquet", index=False)
    return folder
