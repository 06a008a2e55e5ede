"""The retrain runner's bookkeeping and the trigger timeline, over a real store and real processes."""

from __future__ import annotations

import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Any

from shipyard.config import ShipyardConfig
from shipyard.monitoring.retrain import Retrainer, RetrainPlan
from shipyard.monitoring.timeline import render, timeline
from shipyard.store import monitoring as repo


def cfg(**retrain: Any) -> ShipyardConfig:
    return ShipyardConfig.model_validate({"model": {"name": "penguins", "path": "model/"},
                                          "monitor": {"retrain": retrain}})


def test_a_trigger_is_run_once_even_if_two_monitors_start_it(store, store_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Two monitors (each with its own store connection, on two threads) start the same trigger at
    once; the pipeline of the one that claimed it holds until the other has returned, so the two
    really overlap, and it runs once."""
    from shipyard.store import open_store

    ran, release = tmp_path / "ran.txt", tmp_path / "release"
    hold = (f"import os, time, pathlib; open({str(ran)!r}, 'a').write(f'{{os.getpid()}}\\n'); "
            f"[time.sleep(0.01) for _ in range(6000) if not pathlib.Path({str(release)!r}).exists()]; "
            "raise SystemExit(2)")
    config = cfg(command=[sys.executable, "-c", hold])
    with store.write() as session:
        trigger_id = repo.add_trigger(session, model="penguins", kind="manual", source="test", state="pending",
                                      reason="", fired=[]).id
    other_store = open_store(tmp_path / "state", store_url)
    sent: list[dict[str, Any]] = []
    runners = [Retrainer(store, tmp_path, RetrainPlan.from_config(config), sent.append),
               Retrainer(other_store, tmp_path, RetrainPlan.from_config(config), sent.append)]
    start = threading.Barrier(2)
    results: queue.Queue[str] = queue.Queue()

    def monitor(runner: Retrainer) -> None:
        start.wait()
        results.put(runner.run(trigger_id))

    threads = [threading.Thread(target=monitor, args=(r,)) for r in runners]
    try:
        for t in threads:
            t.start()
        assert results.get(timeout=60) == "running"  # the loser returned while the winner's pipeline runs
        release.write_text("go")
        assert results.get(timeout=60) == "failed"
    finally:
        release.write_text("go")
        for t in threads:
            t.join(timeout=60)
        other_store.close()
    assert len(ran.read_text().splitlines()) == 1  # one pipeline process, not two
    with store.read() as session:
        row = session.get(repo.Trigger, trigger_id)
        assert len(row.result_dict["steps"]) == 1  # type: ignore[union-attr]
    assert [e["kind"] for e in sent] == ["retrain.failed"]


def test_deploy_after_approval_that_fails_is_a_failed_trigger_with_an_alert(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    sent: list[dict[str, Any]] = []
    with store.write() as session:
        trigger = repo.add_trigger(session, model="penguins", kind="rule", source="rule drift", state="awaiting_approval",
                                   reason="", fired=[], result={"version": 7})
        trigger_id = trigger.id
    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\n")
    runner = Retrainer(store, tmp_path, RetrainPlan.from_config(cfg(approval="required")), sent.append)
    assert runner.deploy(trigger_id) == "failed"  # penguins@7 does not exist in this project
    with store.read() as session:
        row = session.get(repo.Trigger, trigger_id)
        assert row.state == "failed" and "penguins@7" in row.reason  # type: ignore[union-attr]
    assert sent[0]["kind"] == "retrain.failed" and sent[0]["failed_step"] == "deploy"


def test_timeline_from_stored_rows(store) -> None:  # type: ignore[no-untyped-def]
    now = time.time()
    with store.write() as session:
        firing = repo.add_firing(session, model="penguins", rule="drift", window_id=None, at=now, status="ACCEPT",
                                 severity="critical", actions=["alert", "retrain"], reason="drift fired",
                                 fired=[], metrics={"drift_share": 0.6})
        delivery = repo.add_delivery(session, event_kind="monitor.alert", target="http://127.0.0.1:1/hook",
                                     format="json", event={"kind": "monitor.alert", "firing": firing.id})
        repo.finish_delivery(session, delivery.id, status="delivered", attempts=1, http_status=200, error=None)
        trigger = repo.add_trigger(session, model="penguins", kind="rule", source=f"rule drift (firing #{firing.id})",
                                   state="promoted", reason="penguins@2 promoted", fired=["TriggerRetrain"],
                                   result={"version": 2, "strategy": "canary", "steps": [
                                       {"step": s, "finished_at": now + i + 1, "exit_code": 0}
                                       for i, s in enumerate(["pipeline", "register", "gate", "deploy"])]})
        trigger.started_at, trigger.finished_at = now + 0.5, now + 10
        events = timeline(session, trigger)
        lines = render(trigger.to_dict(), events)
    assert [e["event"] for e in events] == ["detected", "alerted", "retrain started", "retrained", "registered",
                                            "gated", "canaried", "promoted"]
    assert events[-1]["after_s"] == 10.0 and "promoted" in lines[-1]


def test_a_retrain_that_rebuilds_the_champion_ends_unchanged(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The pipeline reproduces the champion byte for byte: no rollout, a warning, and the next
    retrain waits for new data (the trigger's state counts as a failed attempt for the policy)."""
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression

    from tests.conftest import run_cli

    root = project.project.root
    (root / "model").mkdir()
    sio.dump(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), root / "model" / "model.skops")
    (root / "shipyard.yaml").write_text("pipeline: {stages: {}}\nmodel: {name: penguins, path: model/}\n")
    first = run_cli("models", "register", "penguins", "--json", cwd=root)
    assert first.returncode == 0, first.stderr
    alias = run_cli("models", "alias", "penguins", "champion", "1", "--force", "--reason", "test", cwd=root)
    assert alias.returncode == 0, alias.stderr
    sent: list[dict[str, Any]] = []
    config = ShipyardConfig.model_validate({"model": {"name": "penguins", "path": "model/"},
                                            "monitor": {"retrain": {"command": [sys.executable, "-c", "pass"]}}})
    with project.store.write() as session:
        trigger_id = repo.add_trigger(session, model="penguins", kind="manual", source="test", state="pending",
                                      reason="", fired=[]).id
    assert Retrainer(project.store, root, RetrainPlan.from_config(config), sent.append).run(trigger_id) == "unchanged"
    with project.store.read() as session:
        row = session.get(repo.Trigger, trigger_id)
        assert row.state == "unchanged" and "penguins@1" in row.reason  # type: ignore[union-attr]
        assert [s["step"] for s in row.result_dict["steps"]] == ["pipeline", "register"]  # type: ignore[union-attr]
    assert [e["kind"] for e in sent] == ["retrain.unchanged"]
    listed = run_cli("models", "list", "penguins", "--json", cwd=root)
    assert len(json.loads(listed.stdout)) == 1  # no second version was made


def test_approval_is_decided_by_the_monitor_policy_and_stored_either_way(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """'shipyard triggers approve' only translates: Monitor.approve decides (APPROVE_POLICY), audits
    the decision with its reason, and starts the rollout only when accepted."""
    import pytest

    from shipyard import audit
    from shipyard.errors import NotFound, UsageError
    from shipyard.monitoring.monitor import Monitor

    (tmp_path / "shipyard.yaml").write_text("pipeline: {stages: {}}\n")
    config = cfg(approval="required")
    sent: list[dict[str, Any]] = []
    mon = Monitor(store, config, root=tmp_path, requests_root=tmp_path / "requests",
                  feedback_root=tmp_path / "feedback", run_retrains=False)
    mon.retrainer = Retrainer(store, tmp_path, RetrainPlan.from_config(config), sent.append)
    with store.write() as session:
        pending = repo.add_trigger(session, model="penguins", kind="rule", source="rule drift", state="pending",
                                   reason="", fired=[]).id
        waiting = repo.add_trigger(session, model="penguins", kind="rule", source="rule drift",
                                   state="awaiting_approval", reason="", fired=[], result={"version": 7}).id
    with pytest.raises(UsageError, match=f"trigger #{pending} is pending, not awaiting approval"):
        mon.approve(pending)
    with pytest.raises(NotFound, match="no trigger #999"):
        mon.approve(999)
    out = mon.approve(waiting)
    assert out["state"] == "failed" and "penguins@7" in out["reason"]  # the rollout started (and failed: no version)
    with store.read() as session:
        refused = audit.events(session, kind="monitor.retrain.approval_refused")
        approved = audit.events(session, kind="monitor.retrain.approved")
        assert session.get(repo.Trigger, pending).state == "pending"  # type: ignore[union-attr]
    assert [json.loads(e.payload)["fired"] for e in refused] == [["RequireAwaitingApproval"]]
    assert [json.loads(e.payload)["fired"] for e in approved] == [["StartApprovedRollout"]]
