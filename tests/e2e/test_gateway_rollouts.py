"""Rollouts end to end: a real gateway on loopback, real store and registry, load from httpx.

Bad candidates are rolled back by the controller with zero failed client responses; a good one is
promoted through every step; shadow traffic records disagreement; sticky keys hold.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from shipyard import registry
from shipyard.errors import CheckFailed
from tests.e2e.gateway_live import LiveGateway, drive, iris_rows, register_versions
from tests.serving.models import (
    IRIS_FEATURES,
    Flaky,
    NaNs,
    Shifted,
    iris_classifier,
    iris_regressor,
)

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::UserWarning")]
FAST = {"interval": "0.5s", "min_samples": 30, "steps": [20, 50, 100],
        "rollback_when": {"error_rate": "> 0.01", "prediction_psi": "> 0.2"}}


@pytest.fixture
def sqlite_store(tmp_path: Path):  # type: ignore[no-untyped-def]
    from shipyard.store import open_store

    store = open_store(tmp_path / "state")
    yield store
    store.close()


def finished(gw: LiveGateway, name: str) -> bool:
    return gw.deployment(name)["state"] in ("promoted", "rolled_back", "aborted")


def champion_of(store, name: str) -> int:  # type: ignore[no-untyped-def]
    with store.read() as session:
        return registry.resolve(session, f"{name}@champion").version


@pytest.mark.parametrize("fault", ["fails_5_percent", "shifted_predictions"])
def test_bad_canary_is_rolled_back_with_zero_failed_responses(sqlite_store, tmp_path: Path, fault: str) -> None:  # type: ignore[no-untyped-def]
    champion = iris_classifier()
    candidate = Flaky(iris_classifier(0.5), every=20) if fault == "fails_5_percent" else Shifted(champion, "virginica")
    register_versions(sqlite_store, "iris", [1, 2], champion=1)
    with LiveGateway(sqlite_store, tmp_path / "state", {("iris", 1): champion, ("iris", 2): candidate}) as gw:
        gw.deploy("iris", 2, **{**FAST, "min_samples": 30 if fault == "fails_5_percent" else 100})
        result = asyncio.run(drive(gw.url, "iris", until=lambda: finished(gw, "iris"), concurrency=8))
        state = gw.deployment("iris")
    assert result.failed == 0, (result.statuses, result.failures[:3])
    assert state["state"] == "rolled_back", state
    last = state["decisions"][-1]
    assert last["status"] == "REJECT" and "RollBackOnThreshold" in last["fired"]
    assert ("error_rate" if fault == "fails_5_percent" else "prediction_psi") in last["reason"]
    assert state["routing"]["strategy"] == "single" and state["routing"]["champion"] == 1
    assert champion_of(sqlite_store, "iris") == 1
    assert [e["kind"] for e in gw.notify.events][-1] == "rollout.rolled_back"


def test_good_canary_is_promoted_through_every_step(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    register_versions(sqlite_store, "iris", [1, 2], champion=1)
    models = {("iris", 1): iris_classifier(), ("iris", 2): iris_classifier(0.5)}
    with LiveGateway(sqlite_store, tmp_path / "state", models) as gw:
        gw.deploy("iris", 2, **FAST)
        result = asyncio.run(drive(gw.url, "iris", until=lambda: finished(gw, "iris"), concurrency=8))
        state = gw.deployment("iris")
        assert state["state"] == "promoted", state["decisions"]
        # after promotion the old champion stays warm: rollback is a pointer flip
        revision = gw.revision()
        gw.controller.rollback("iris")
        gw.wait_routing(revision + 1)
        after = asyncio.run(drive(gw.url, "iris", requests=20, concurrency=4))
    assert result.failed == 0
    assert state["state"] == "promoted", state["decisions"]
    from shipyard.store import serving as repo

    with sqlite_store.read() as session:
        moves = [(d.from_state, d.to_state) for d in repo.decisions(session, [state["id"]]) if d.status == "ACCEPT" and d.cause != "manual"]
    assert moves == [("none", "canary[0]"), ("canary[0]", "canary[1]"), ("canary[1]", "promoted")]
    assert set(result.versions) == {"1", "2"}
    assert after.versions == {"1": 20}
    assert champion_of(sqlite_store, "iris") == 1
    assert gw.loader.loads.count(("iris", 1)) == 1  # never reloaded: kept warm


def test_restart_mid_rollout_resumes(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    register_versions(sqlite_store, "iris", [1, 2], champion=1)
    models = {("iris", 1): iris_classifier(), ("iris", 2): iris_classifier(0.5)}
    with LiveGateway(sqlite_store, tmp_path / "state", models) as gw:
        gw.deploy("iris", 2, **FAST)
        asyncio.run(drive(gw.url, "iris", until=lambda: gw.deployment("iris")["state"] != "canary[0]",
                          concurrency=8))
        assert gw.deployment("iris")["state"] == "canary[1]"
    with LiveGateway(sqlite_store, tmp_path / "state", models) as gw2:
        assert gw2.gateway.follower.snapshot.models["iris"].table["weight"] == 50.0
        result = asyncio.run(drive(gw2.url, "iris", until=lambda: finished(gw2, "iris"), concurrency=8))
        state = gw2.deployment("iris")
    assert result.failed == 0 and state["state"] == "promoted"


def test_shadow_records_disagreement_and_rolls_back(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    champion = iris_classifier()
    register_versions(sqlite_store, "iris", [1, 2], champion=1)
    with LiveGateway(sqlite_store, tmp_path / "state", {("iris", 1): champion,
                                                        ("iris", 2): Shifted(champion, "virginica")}) as gw:
        gw.deploy("iris", 2, strategy="shadow", interval="0.5s", min_samples=30,
                  rollback_when={"shadow_disagreement": "> 0.2"})
        result = asyncio.run(drive(gw.url, "iris", until=lambda: finished(gw, "iris"), concurrency=8))
        state = gw.deployment("iris")
    assert result.failed == 0 and result.versions.keys() == {"1"}
    assert state["state"] == "rolled_back" and "shadow_disagreement" in state["decisions"][-1]["reason"]
    rows = pl.concat([pl.read_parquet(p, hive_partitioning=False)
                      for p in (tmp_path / "state" / "requests").rglob("part-*.parquet")], how="diagonal_relaxed")
    shadow = rows.filter(pl.col("route") == "shadow")
    primary = rows.filter(pl.col("route") == "primary").select("request_id", pl.col("prediction").alias("champ"))
    pairs = shadow.join(primary, on="request_id")
    assert pairs.height >= 30 and set(pairs["prediction"].to_list()) == {"virginica"}
    assert (pairs["prediction"] != pairs["champ"]).sum() > 0


def test_sticky_assignment_holds_for_each_key_over_1000_requests(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    register_versions(sqlite_store, "iris", [1, 2], champion=1)
    models = {("iris", 1): iris_classifier(), ("iris", 2): iris_classifier(0.5)}
    with LiveGateway(sqlite_store, tmp_path / "state", models) as gw:
        # a generous candidate timeout: on a loaded machine a timed-out candidate falls back to the
        # champion (by design), which would test the fallback, not the assignment
        gw.deploy("iris", 2, interval="1h", steps=[50, 100], min_samples=10_000, candidate_timeout_ms=30_000)
        gw.wait_routing(2)
        keys = [f"customer-{i}" for i in range(100)]
        result = asyncio.run(drive(gw.url, "iris", requests=1000, concurrency=16, keys=keys))
    assert result.failed == 0 and sum(result.statuses.values()) == 1000
    assert all(len(v) == 1 for v in result.by_key.values()), {k: v for k, v in result.by_key.items() if len(v) > 1}
    assert set(result.versions) == {"1", "2"}


def test_candidate_that_crashes_on_load_never_starts(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    register_versions(sqlite_store, "iris", [1, 2], champion=1)
    models = {("iris", 1): iris_classifier(), ("iris", 2): RuntimeError("skops: untrusted type in file")}
    with LiveGateway(sqlite_store, tmp_path / "state", models) as gw:
        with pytest.raises(CheckFailed, match="failed to load, so the rollout was not started"):
            gw.deploy("iris", 2, **FAST)
        result = asyncio.run(drive(gw.url, "iris", requests=50, concurrency=4))
        status = gw.controller.status("iris")
    assert result.failed == 0 and result.versions == {"1": 50}
    assert status == []


def test_nan_candidate_is_rolled_back_without_failed_responses(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    champ = iris_regressor()
    register_versions(sqlite_store, "petal", [1, 2], champion=1)
    models = {("petal", 1): champ, ("petal", 2): NaNs(champ.estimator, IRIS_FEATURES[:3])}
    with LiveGateway(sqlite_store, tmp_path / "state", models) as gw:
        gw.deploy("petal", 2, **FAST)
        result = asyncio.run(drive(gw.url, "petal", until=lambda: finished(gw, "petal"), concurrency=8,
                                   features=IRIS_FEATURES[:3]))
        state = gw.deployment("petal")
    assert result.failed == 0 and state["state"] == "rolled_back"
    assert "error_rate 1" in state["decisions"][-1]["reason"]


def test_second_rollout_of_a_model_is_refused(sqlite_store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    register_versions(sqlite_store, "iris", [1, 2, 3], champion=1)
    models = {("iris", v): iris_classifier() for v in (1, 2, 3)}
    with LiveGateway(sqlite_store, tmp_path / "state", models) as gw:
        gw.deploy("iris", 2, interval="1h")
        with pytest.raises(CheckFailed, match="already has rollout #1"):
            gw.deploy("iris", 3, interval="1h")
        gw.controller.act("iris", "pause")
        assert gw.deployment("iris")["state"] == "paused"
        gw.controller.act("iris", "resume")
        gw.controller.act("iris", "promote")  # synchronous: the store has the new state when it returns
        assert gw.deployment("iris")["state"] == "promoted"
        gw.wait_routing(gw.revision())
        answer = httpx.post(f"{gw.url}/invocations", json={"dataframe_records": iris_rows(1)}, timeout=30)
        assert answer.status_code == 200 and answer.headers["x-shipyard-version"] == "2"
    assert champion_of(sqlite_store, "iris") == 2
