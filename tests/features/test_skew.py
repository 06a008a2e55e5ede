"""Training/serving skew: online values against the offline point-in-time values, per feature."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from shipyard.config import MonitorRule
from shipyard.features.config import ServeFeatures
from shipyard.features.skew import SkewCheck
from tests.features.feast_repo import SQLITE_ONLINE
from tests.features.test_online import NOW, REFS, fresh_repo

pytestmark = pytest.mark.xdist_group("feast")


def test_a_skewed_online_value_shows_per_feature(tmp_path):
    repo = fresh_repo(tmp_path / "repo", SQLITE_ONLINE, "drivers")
    settings = ServeFeatures(entity_key="driver_id", refs=REFS)
    check = SkewCheck(tmp_path, "repo", settings)
    assert sorted(check.keys) == [1001, 1002, 1004]
    clean = check.metrics(NOW.timestamp())
    assert clean["feature_skew"] == 0 and clean["skew_report"] == []  # 1002 is stale both online and offline
    # the online store now disagrees with the source for one driver's conv_rate
    from shipyard.features.repo import open_store

    skewed = pd.DataFrame({"driver_id": [1001], "event_timestamp": [NOW - timedelta(minutes=5)],
                           "created": [NOW - timedelta(minutes=5)], "conv_rate": [0.95], "acc_rate": [0.1],
                           "avg_daily_trips": [10]})
    open_store(repo).write_to_online_store("driver_stats", skewed)
    got = check.metrics(NOW.timestamp())
    assert got["feature.conv_rate.skew"] == pytest.approx(1 / 3) and got["feature.avg_daily_trips.skew"] == 0
    assert got["feature_skew"] == pytest.approx(1 / 3)
    [report] = got["skew_report"]
    assert report["feature"] == "conv_rate" and report["differ"] == 1 and report["mean_abs_diff"] == pytest.approx(0.7)


def test_skew_metrics_are_rule_metrics():
    assert MonitorRule(when="feature_skew > 0.05").label == "feature_skew > 0.05"
    assert MonitorRule(when="feature.conv_rate.skew > 0.1", actions=["alert", "retrain"]).actions == ["alert", "retrain"]
    with pytest.raises(ValueError, match=r"feature\.conv_rate\.skw"):
        MonitorRule(when="feature.conv_rate.skw > 0.1")


def test_a_skewed_online_value_trips_a_monitor_rule(store, tmp_path):
    from shipyard.config import ShipyardConfig
    from shipyard.features.repo import open_store
    from shipyard.monitoring.monitor import Monitor
    from tests.monitoring.logs import reference_profile, traffic, write_log

    repo = fresh_repo(tmp_path / "repo", SQLITE_ONLINE, "drivers")
    cfg = ShipyardConfig.model_validate({
        "model": {"name": "penguins", "path": "model.pkl", "target": "species"},
        "features": {"repo": "repo", "serve": {"entity_key": "driver_id", "refs": REFS}},
        "monitor": {"window": "60s", "min_rows": 30, "rules": [
            {"name": "skew", "when": "feature_skew > 0.1", "actions": ["alert"]}]}})
    profile = reference_profile()
    monitor = Monitor(store, cfg, root=tmp_path, requests_root=tmp_path / "requests",
                      feedback_root=tmp_path / "feedback", references=lambda model, version: profile)
    start = NOW.timestamp() // 60 * 60 - 600
    write_log(tmp_path / "requests", traffic(120, seed=1, start=start + 1, spacing=0.4))
    report = monitor.cycle(now=start + 61)
    assert [w["verdict"] for w in report.windows] == ["ok"] and report.firings == []
    skewed = pd.DataFrame({"driver_id": [1001], "event_timestamp": [NOW - timedelta(minutes=5)],
                           "created": [NOW - timedelta(minutes=5)], "conv_rate": [0.95], "acc_rate": [0.1],
                           "avg_daily_trips": [10]})
    open_store(repo).write_to_online_store("driver_stats", skewed)
    write_log(tmp_path / "requests", traffic(120, seed=2, start=start + 61, spacing=0.4))
    report = monitor.cycle(now=start + 121)
    assert [(f["rule"], f["status"]) for f in report.firings] == [("skew", "ACCEPT")]
    assert [e["kind"] for e in monitor.sent] == ["monitor.alert"]
