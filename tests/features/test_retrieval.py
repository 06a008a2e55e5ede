"""Point-in-time retrieval: Feast's own call loses rows (reproduced), Shipyard's returns every one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InputError, NotFound
from shipyard.features.repo import definitions
from shipyard.features.retrieval import (
    RowsLost,
    check_complete,
    feast_historical,
    point_in_time,
    retrieve,
)
from tests.features.feast_repo import START, entities

pytestmark = pytest.mark.xdist_group("feast")
REFS = ["driver_stats:conv_rate", "driver_stats:avg_daily_trips"]


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return entities(50, 24, 2000)


@pytest.fixture(scope="module")
def store(feast_repo: Path):  # type: ignore[no-untyped-def]
    from shipyard.features.repo import open_store

    return open_store(feast_repo)


def test_feast_loses_rows_and_the_guard_names_them(store, table):
    raw = store.get_historical_features(entity_df=table, features=REFS).to_df()
    assert len(raw) < len(table)  # Feast's loss, reproduced with Feast's own call
    early = table["event_timestamp"] < pd.Timestamp(START)
    dup_rows = table.duplicated(["driver_id", "event_timestamp"], keep="first")
    # both losses: every row before any value is gone, and duplicated (key, timestamp) rows collapse
    assert len(table) - len(raw) >= early.sum() + dup_rows.sum() - (early & dup_rows).sum()
    with pytest.raises(RowsLost) as caught:
        feast_historical(store, table, REFS)
    message = str(caught.value)
    assert f"lost {len(table) - len(raw)} of {len(table)} entity rows" in message
    first_early = int(np.flatnonzero(early.to_numpy())[0]) + 1
    assert f"row {first_early} (driver_id=" in message
    assert "share their key and timestamp" in message


def test_ours_returns_every_row_with_nulls_and_duplicates_and_agrees_with_feast(feast_repo, store, table):
    defs = definitions(feast_repo)
    ours = point_in_time(table, defs.resolve(REFS))
    assert len(ours) == len(table)
    assert (ours["driver_id"].to_numpy() == table["driver_id"].to_numpy()).all()  # order kept
    early = (table["event_timestamp"] < pd.Timestamp(START)).to_numpy()
    assert ours.loc[early, "conv_rate"].isna().all() and early.any()
    assert str(ours["avg_daily_trips"].dtype) == "Int64"
    dups = table.duplicated(["driver_id", "event_timestamp"], keep=False).to_numpy()
    assert dups.sum() >= 2 and ours.loc[dups].notna().any().any()
    check_complete(table, ours, ["driver_id"])
    # on the rows Feast does return, its values and ours agree
    raw = store.get_historical_features(entity_df=table, features=REFS).to_df()
    both = raw.merge(ours.drop_duplicates(["driver_id", "event_timestamp"]), on=["driver_id", "event_timestamp"],
                     suffixes=("_feast", "_ours"))
    assert len(both) == len(raw)
    assert np.allclose(both["conv_rate_feast"], both["conv_rate_ours"], equal_nan=True)


def test_ttl_point_in_time_and_created_tie_break(tmp_path, feast_repo):
    defs = definitions(feast_repo)
    stats = pd.read_parquet(feast_repo / "data" / "driver_stats.parquet")
    one = stats[stats.driver_id == 1001].sort_values("event_timestamp")
    at = pd.Timestamp(START) + pd.Timedelta(hours=5, minutes=30)
    ask = pd.DataFrame({"driver_id": [1001, 1001, 1001], "event_timestamp": [at, at + pd.Timedelta(days=3), at]})
    got = point_in_time(ask, defs.resolve(["driver_stats:conv_rate"]))
    expected = one[one.event_timestamp <= at].iloc[-1]["conv_rate"]
    assert got["conv_rate"].tolist()[0] == pytest.approx(expected)
    assert pd.isna(got["conv_rate"][1])  # past the 2 h TTL: null, not a stale value
    assert got["conv_rate"][2] == pytest.approx(expected)


def test_bad_inputs_name_what_is_wrong(tmp_path, feast_repo):
    defs = definitions(feast_repo)
    with pytest.raises(NotFound, match=r"has no feature 'conv_rat'.*did you mean 'conv_rate'"):
        defs.resolve(["driver_stats:conv_rat"])
    with pytest.raises(NotFound, match="feature view 'driver_stat' is not defined"):
        defs.resolve(["driver_stat:conv_rate"])
    no_key = pd.DataFrame({"event_timestamp": [pd.Timestamp(START)]})
    with pytest.raises(InputError, match="joins on driver_id; the entity table has no driver_id column"):
        point_in_time(no_key, defs.resolve(["driver_stats:conv_rate"]))
    bad = tmp_path / "e.parquet"
    pd.DataFrame({"driver_id": [1001, 1002], "event_timestamp": [pd.Timestamp(START), None]}).to_parquet(bad)
    with pytest.raises(InputError, match=r"1 row\(s\) without a timestamp \(rows 2\)"):
        retrieve(defs, ["driver_stats:conv_rate"], bad, tmp_path / "out.parquet")
    assert not (tmp_path / "out.parquet").exists()
