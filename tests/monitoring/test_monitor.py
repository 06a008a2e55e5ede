"""The monitor over a real request log and a real store (SQLite and PostgreSQL): windows, rules,
firings, alerts to a webhook on 127.0.0.1, and the one retrain path."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from shipyard import audit, notify
from shipyard.config import ShipyardConfig
from shipyard.monitoring.monitor import Monitor
from shipyard.monitoring.retrain import Retrainer, RetrainPlan
from shipyard.store import monitoring as repo
from tests.monitoring.logs import reference_profile, traffic, write_log
from tests.notify.receiver import Receiver, dead_url

W = 60.0
T0 = 1_700_000_000.0 // W * W + W  # aligned


def config(url: str | None = None, *, for_windows: int = 2, actions: list[str] | None = None,
           retrain: dict[str, Any] | None = None, cooldown: str = "1h") -> ShipyardConfig:
    doc: dict[str, Any] = {
        "model": {"name": "penguins", "path": "model.pkl", "target": "species"},
        "monitor": {"window": "60s", "min_rows": 30, "rules": [
            {"name": "drift", "when": "drift_share > 0.5", "for": for_windows, "severity": "critical",
             "cooldown": cooldown, "actions": actions or ["alert"]},
            {"name": "errors", "when": "error_rate > 0.2", "actions": ["alert"]},
        ], "retrain": retrain or {}},
    }
    if url:
        doc["notify"] = [{"webhook": url, "secret": "k", "backoff": "10ms", "retries": 1}]
    return ShipyardConfig.model_validate(doc)


@pytest.fixture(scope="module")
def profile():  # type: ignore[no-untyped-def]
    return reference_profile()


def make_monitor(store, tmp_path: Path, cfg: ShipyardConfig, profile, **kw: Any) -> Monitor:  # type: ignore[no-untyped-def]
    return Monitor(store, cfg, root=tmp_path, requests_root=tmp_path / "requests", feedback_root=tmp_path / "feedback",
                   references=lambda model, version: profile, **kw)


def log_window(tmp_path: Path, i: int, *, shift: float = 0.0, n: int = 120, seed: int | None = None, **kw: Any) -> None:
    write_log(tmp_path / "requests", traffic(n, seed=seed if seed is not None else 100 + i, shift=shift,
                                             start=T0 + i * W + 1, spacing=(W - 2) / n, **kw))


class TestWindowsAndRules:
    def test_in_distribution_traffic_raises_nothing(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        for i in range(3):
            log_window(tmp_path, i)
        mon = make_monitor(store, tmp_path, config(), profile)
        report = mon.cycle(now=T0 + 3 * W + 1)
        assert [w["verdict"] for w in report.windows] == ["ok", "ok", "ok"]
        assert report.firings == [] and mon.sent == []
        with store.read() as session:
            assert len(repo.windows(session, "penguins")) == 3
        assert mon.cycle(now=T0 + 3 * W + 2).windows == []  # each window is judged once

    def test_drift_for_two_windows_fires_once_and_is_audited(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        log_window(tmp_path, 0)
        log_window(tmp_path, 1, shift=1.5)
        log_window(tmp_path, 2, shift=1.5)
        log_window(tmp_path, 3, shift=1.5)
        with Receiver() as receiver:
            mon = make_monitor(store, tmp_path, config(receiver.url), profile)
            report = mon.cycle(now=T0 + 4 * W + 1)
            assert notify.flush(10)
        statuses = [(f["rule"], f["status"]) for f in report.firings]
        assert statuses == [("drift", "WAIT"), ("drift", "ACCEPT"), ("drift", "REJECT")]  # debounce, fire, cooldown
        assert [e["kind"] for e in mon.sent] == ["monitor.alert"]
        body = receiver.json(0)
        assert body["event"]["rule"] == "drift" and body["event"]["severity"] == "critical"
        request = receiver.requests[0]
        assert notify.verify_signature("k", request["body"], request["headers"]["X-Shipyard-Timestamp"],
                                       request["headers"]["X-Shipyard-Signature"])
        with store.read() as session:
            kinds = [e.kind for e in audit.events(session, kind="monitor.rule")]
            assert len(kinds) == 3 and audit.verify(session).ok

    def test_one_noisy_window_breaks_the_streak(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        log_window(tmp_path, 0, shift=1.5)
        log_window(tmp_path, 1)
        log_window(tmp_path, 2, shift=1.5)
        mon = make_monitor(store, tmp_path, config(), profile)
        report = mon.cycle(now=T0 + 3 * W + 1)
        assert [f["status"] for f in report.firings] == ["WAIT", "WAIT"]
        assert mon.sent == []

    def test_empty_window_is_no_verdict_and_keeps_the_streak(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        log_window(tmp_path, 0, shift=1.5)
        log_window(tmp_path, 1, shift=3.0, n=5)  # far too few rows: no verdict, not drift
        log_window(tmp_path, 2, shift=1.5)
        mon = make_monitor(store, tmp_path, config(), profile)
        report = mon.cycle(now=T0 + 3 * W + 1)
        assert [w["verdict"] for w in report.windows] == ["drift", "empty", "drift"]
        assert [f["status"] for f in report.firings] == ["WAIT", "ACCEPT"]

    def test_error_rate_rule(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        log_window(tmp_path, 0, error_every=3)
        mon = make_monitor(store, tmp_path, config(), profile)
        report = mon.cycle(now=T0 + W + 1)
        assert [(f["rule"], f["status"]) for f in report.firings] == [("errors", "ACCEPT")]


class TestAlertsWhenTheWebhookIsDown:
    def test_failure_is_stored_with_the_event(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        log_window(tmp_path, 0, error_every=3)
        mon = make_monitor(store, tmp_path, config(dead_url()), profile)
        mon.cycle(now=T0 + W + 1)
        assert notify.flush(10)
        with store.read() as session:
            (row,) = repo.deliveries(session)
        assert row.status == "failed" and row.attempts == 2
        assert json.loads(row.event)["rule"] == "errors"


class TestRetrainPath:
    def test_rule_asks_for_one_retrain_and_the_next_is_refused(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        for i in range(4):
            log_window(tmp_path, i, shift=1.5)
        cfg = config(for_windows=1, cooldown="0s", actions=["alert", "retrain"], retrain={"min_interval": "0s"})
        mon = make_monitor(store, tmp_path, cfg, profile, run_retrains=False)
        report = mon.cycle(now=T0 + 4 * W + 1)
        assert len(report.triggers) == 1
        with store.read() as session:
            states = [(t.state, json.loads(t.fired)) for t in reversed(repo.triggers(session, "penguins"))]
        assert states[0] == ("pending", ["TriggerRetrain"])
        assert all(s == ("rejected", ["OneRetrainInFlight"]) for s in states[1:]) and len(states) == 4

    def test_failed_pipeline_alerts_and_does_not_loop(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        cfg = config(for_windows=1, cooldown="0s", actions=["retrain"],
                     retrain={"min_interval": "0s", "command": [sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(3)"]})
        mon = make_monitor(store, tmp_path, cfg, profile)
        mon.retrainer = Retrainer(store, tmp_path, RetrainPlan.from_config(cfg), mon.alert)
        log_window(tmp_path, 0, shift=1.5)
        mon.cycle(now=T0 + W + 1)
        mon.wait()
        with store.read() as session:
            (trigger,) = repo.triggers(session)
            assert trigger.state == "failed" and "no rollout" in trigger.reason
            steps = trigger.result_dict["steps"]
            assert [s["step"] for s in steps] == ["pipeline"] and "boom" in steps[0]["output"]
        assert [e["kind"] for e in mon.sent] == ["retrain.failed"]
        assert mon.sent[0]["severity"] == "critical"
        # drift goes on: the rule fires again, but the retrain is not started again on the same data
        log_window(tmp_path, 1, shift=1.5)
        mon.cycle(now=T0 + 2 * W + 1)
        mon.wait()
        with store.read() as session:
            newest = repo.triggers(session)[0]
        assert newest.state == "rejected" and json.loads(newest.fired) == ["NoLoopAfterFailure"]


class TestOtherTriggers:
    def test_watched_path_change_triggers_once(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        data = tmp_path / "data.csv"
        data.write_text("a\n1\n")
        cfg = config(retrain={"watch": ["data.csv"], "on_new_data": False, "min_interval": "0s"})
        mon = make_monitor(store, tmp_path, cfg, profile, run_retrains=False)
        assert mon.cycle(now=T0).triggers == []  # first sight records the hash
        assert mon.cycle(now=T0 + 1).triggers == []  # unchanged
        data.write_text("a\n1\n2\n")
        report = mon.cycle(now=T0 + 2)
        assert len(report.triggers) == 1
        with store.read() as session:
            (trigger,) = repo.triggers(session)
        assert trigger.kind == "new_data" and "path:data.csv" in trigger.source

    @pytest.mark.parametrize("escape", ["../outside.csv", "/etc/hostname", "link.csv"])
    def test_a_watched_path_outside_the_project_is_refused_not_skipped(  # type: ignore[no-untyped-def]
            self, store, tmp_path: Path, profile, escape: str) -> None:
        from shipyard.errors import PathEscapeError

        root = tmp_path / "project"
        root.mkdir()
        (tmp_path / "outside.csv").write_text("secret\n")
        (root / "link.csv").symlink_to(tmp_path / "outside.csv")
        cfg = config(retrain={"watch": [escape], "on_new_data": False, "min_interval": "0s"})
        with pytest.raises(PathEscapeError, match=r"monitor\.retrain\.watch path"):
            make_monitor(store, root, cfg, profile, run_retrains=False)

    def test_a_watched_link_pointed_out_later_stops_the_cycle(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        from shipyard.errors import PathEscapeError

        (tmp_path / "data.csv").write_text("a\n1\n")
        (tmp_path / "link.csv").symlink_to(tmp_path / "data.csv")
        cfg = config(retrain={"watch": ["link.csv"], "on_new_data": False, "min_interval": "0s"})
        mon = make_monitor(store, tmp_path, cfg, profile, run_retrains=False)
        assert mon.cycle(now=T0).triggers == []
        (tmp_path / "link.csv").unlink()
        (tmp_path / "link.csv").symlink_to("/etc/hostname")
        with pytest.raises(PathEscapeError, match="outside"):
            mon.cycle(now=T0 + 1)

    def test_schedule_every(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        cfg = config(retrain={"every": "7d", "on_new_data": False, "min_interval": "0s"})
        mon = make_monitor(store, tmp_path, cfg, profile, run_retrains=False)
        assert mon.cycle(now=T0).triggers == []
        assert mon.cycle(now=T0 + 6 * 86400).triggers == []
        assert len(mon.cycle(now=T0 + 7 * 86400 + 1).triggers) == 1
        with store.read() as session:
            assert repo.triggers(session)[0].kind == "schedule"

    def test_schedule_cron_after_a_pause_longer_than_two_days(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        """A weekly schedule missed while the monitor was down is due at its next cycle (the old
        scan looked two days ahead of the last check only)."""
        cfg = config(retrain={"cron": "0 3 * * 0", "on_new_data": False, "min_interval": "0s"})
        mon = make_monitor(store, tmp_path, cfg, profile, run_retrains=False)
        monday = 1_764_547_200.0  # 2025-12-01 00:00 UTC, a Monday
        assert mon.cycle(now=monday).triggers == []
        assert len(mon.cycle(now=monday + 6 * 86400 + 4 * 3600).triggers) == 1  # Sunday 04:00

    def test_schedule_cron_in_a_time_zone(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        cfg = config(retrain={"cron": "0 3 * * *", "timezone": "America/New_York", "on_new_data": False,
                              "min_interval": "0s"})
        mon = make_monitor(store, tmp_path, cfg, profile, run_retrains=False)
        midnight = 1_764_547_200.0  # 2025-12-01 00:00 UTC; 03:00 in New York (EST) is 08:00 UTC
        assert mon.cycle(now=midnight).triggers == []
        assert mon.cycle(now=midnight + 3 * 3600 + 30).triggers == []  # 03:00 UTC is not due
        assert len(mon.cycle(now=midnight + 8 * 3600 + 30).triggers) == 1
        with store.read() as session:
            assert repo.triggers(session)[0].source == "cron 0 3 * * * (America/New_York)"

    def test_schedule_cron(self, store, tmp_path: Path, profile) -> None:  # type: ignore[no-untyped-def]
        cfg = config(retrain={"cron": "0 3 * * *", "on_new_data": False, "min_interval": "0s"})
        mon = make_monitor(store, tmp_path, cfg, profile, run_retrains=False)
        midnight = 1_700_006_400.0 // 86400 * 86400
        assert mon.cycle(now=midnight + 3600).triggers == []
        assert mon.cycle(now=midnight + 2 * 3600).triggers == []
        assert len(mon.cycle(now=midnight + 3 * 3600 + 30).triggers) == 1
