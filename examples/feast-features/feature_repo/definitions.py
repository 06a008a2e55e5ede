"""Feature definitions of the example: hourly driver statistics (Feast's own quickstart shape)."""

from datetime import timedelta

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, Int64

driver = Entity(name="driver", join_keys=["driver_id"], value_type=ValueType.INT64)

driver_stats_source = FileSource(path="data/driver_stats.parquet", timestamp_field="event_timestamp",
                                 created_timestamp_column="created")

driver_stats = FeatureView(
    name="driver_stats",
    entities=[driver],
    ttl=timedelta(hours=2),
    schema=[Field(name="conv_rate", dtype=Float64), Field(name="acc_rate", dtype=Float64),
            Field(name="avg_daily_trips", dtype=Int64), Field(name="trips_today", dtype=Int64),
            Field(name="rating", dtype=Float64), Field(name="cancel_rate", dtype=Float64),
            Field(name="online_hours", dtype=Float64), Field(name="avg_fare", dtype=Float64),
            Field(name="avg_distance_km", dtype=Float64), Field(name="complaints_7d", dtype=Int64)],
    source=driver_stats_source,
)
