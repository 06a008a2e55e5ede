"""Gateway enrichment over Feast's online stores (SQLite, Redis, PostgreSQL): fresh values merged,
stale or absent ones defaulted or refused with a 422 naming the feature."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from shipyard.errors import ConfigError
from shipyard.features.config import ServeFeatures
from shipyard.features.views import materialize
from shipyard.serving.codec import Inputs, RequestError
from shipyard.serving.features import enricher_for
from tests.features.feast_repo import POSTGRES_ONLINE, REDIS_ONLINE, SQLITE_ONLINE, write_repo

pytestmark = pytest.mark.xdist_group("feast")
REFS = ["driver_stats:conv_rate", "driver_stats:avg_daily_trips"]
NOW = datetime.now(UTC).replace(microsecond=0)


def fresh_repo(folder: Path, online: str, project: str) -> Path:
    """Drivers 1001 and 1004 fresh (10 min old), 1002 stale (5 h: past the 2 h TTL), 1003 absent."""
    repo = write_repo(folder, online=online, project=project)
    rows = pd.DataFrame({
        "driver_id": [1001, 1002, 1004], "event_timestamp": [NOW - timedelta(minutes=10), NOW - timedelta(hours=5),
                                                           NOW - timedelta(minutes=10)],
        "conv_rate": [0.25, 0.5, 0.75], "acc_rate": [0.1, 0.2, 0.3], "avg_daily_trips": [10, 20, 40]})
    rows["created"] = rows["event_timestamp"]
    rows.to_parquet(repo / "data" / "driver_stats.parquet", index=False)
    materialize(repo, ["driver_stats"], NOW - timedelta(days=1), NOW + timedelta(minutes=1))
    return repo


def request(**columns: list) -> Inputs:
    return Inputs(list(columns), dict(columns), None, len(next(iter(columns.values()))))


def check_enrichment(repo: Path) -> None:
    settings = ServeFeatures(entity_key="driver_id", refs=REFS)
    enricher = enricher_for(repo.parent, repo.name, settings)
    assert enricher is not None
    got = enricher.enrich(request(driver_id=[1001, 1004], speed=[1.0, 2.0]))
    assert got.columns == ["driver_id", "speed", "conv_rate", "avg_daily_trips"]
    assert got.values["conv_rate"] == [0.25, 0.75] and got.values["avg_daily_trips"] == [10, 40]
    again = enricher.enrich(request(driver_id=[1004, 1001, 1004]))  # keys converted once, then remembered
    assert again.values["conv_rate"] == [0.75, 0.25, 0.75] and again.values["avg_daily_trips"] == [40, 10, 40]
    with pytest.raises(RequestError) as stale:  # Feast returns it as present; its age says expired
        enricher.enrich(request(driver_id=[1001, 1002]))
    assert stale.value.field == "conv_rate" and stale.value.status == 422
    assert "driver_id=1002" in stale.value.message and "limit 7200s" in stale.value.message
    with pytest.raises(RequestError, match=r"driver_id=1003.*no value"):
        enricher.enrich(request(driver_id=[1003]))
    with pytest.raises(RequestError) as typed:  # a key of the wrong type: the client's mistake, a 422
        enricher.enrich(request(driver_id=["abc"]))
    assert typed.value.field == "driver_id" and typed.value.status == 422
    carried = request(driver_id=[1002], conv_rate=[0.9], avg_daily_trips=[1])
    assert enricher.enrich(carried) is carried  # features in the request: the online store is not read
    defaults = ServeFeatures(entity_key="driver_id", refs=REFS, max_age="5m", on_missing="default",
                             defaults={"conv_rate": 0.0, "avg_daily_trips": -1})
    tight = enricher_for(repo.parent, repo.name, defaults)
    assert tight is not None
    assert tight.enrich(request(driver_id=[1001, 1002, 1003])).values["conv_rate"] == [0.0, 0.0, 0.0]  # max_age 5m


def test_sqlite_online_store(tmp_path):
    repo = fresh_repo(tmp_path / "repo", SQLITE_ONLINE, "drivers")
    check_enrichment(repo)
    with pytest.raises(ConfigError, match="view 'driver_stats' is keyed by driver_id, not by entity_key 'rider_id'"):
        enricher_for(repo.parent, repo.name, ServeFeatures(entity_key="rider_id", refs=REFS))
    with pytest.raises(ConfigError, match="view 'driver_stats' has no feature trips_per_hour"):
        enricher_for(repo.parent, repo.name, ServeFeatures(entity_key="driver_id", refs=["driver_stats:trips_per_hour"]))


def test_redis_online_store(tmp_path):
    project = f"drivers_{uuid.uuid4().hex[:8]}"
    repo = fresh_repo(tmp_path / "repo", REDIS_ONLINE, project)
    try:
        check_enrichment(repo)
    finally:
        from shipyard.features.repo import open_store

        open_store(repo).teardown()  # this test's keys leave the shared Redis


@pytest.mark.postgres
def test_postgres_online_store(tmp_path, pg_url):
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    check_enrichment(fresh_repo(tmp_path / "repo", POSTGRES_ONLINE.format(schema=schema), "drivers"))
