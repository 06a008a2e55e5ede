"""The monitoring page over stored monitor windows, firings and retrain triggers: drift, per-feature
drift, data quality and live accuracy charts, alerts, each trigger's timeline, and the approval of a
trigger waiting for a person (deploy:write, behind a confirmation, audited as the person)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest

from shipyard import audit
from shipyard.store import monitoring as repo


def seed(ui: Any, model: str, *, labels: bool) -> int:
    """Three closed windows (the last one drifted), the firing it caused and a trigger waiting for approval."""
    start = time.time() - 3 * 3600
    with ui.store.write() as session:
        window_id = 0
        for i, (share, age) in enumerate(((0.0, 0.1), (0.25, 0.4), (0.75, 0.9))):
            metrics: dict[str, Any] = {
                "rows": 500, "error_rate": 0.0, "drift_share": share, "drifted": ["bill_length_mm"] if share > 0.5 else [],
                "feature.bill_length_mm.drift": age, "feature.flipper_length_mm.drift": 0.05,
                "null_share": 0.01 * i, "out_of_range_share": 0.02, "unseen_category_share": 0.0,
                "labelled": 40 if labels else 0}
            if labels:
                metrics["accuracy"] = 0.95 - 0.1 * i
            window_id = repo.add_window(session, model=model, version=1, kind="time", start=start + i * 3600,
                                        end=start + (i + 1) * 3600, rows=500, verdict="drift" if share > 0.5 else "ok",
                                        metrics=metrics).id
        firing = repo.add_firing(session, model=model, rule="drift_share > 0.5", window_id=window_id, at=time.time(),
                                 status="ACCEPT", severity="critical", actions=["alert", "retrain"],
                                 reason="drift_share 0.75 > 0.5", fired=["TriggerRetrain"], metrics={"drift_share": 0.75})
        return repo.add_trigger(session, model=model, kind="rule", source=f"rule drift_share > 0.5 (firing #{firing.id})",
                                state="awaiting_approval", reason="gate passed; waiting for a person", fired=[],
                                result={"version": 7}).id


def chart(page: str, css: str) -> dict[str, Any]:
    found = re.search(rf"class=\"chart {css}\" data-chart='([^']+)'", page)
    assert found, page
    return json.loads(found.group(1).replace("&#39;", "'"))


def trigger_state(ui: Any, trigger_id: int) -> str:
    with ui.store.read() as session:
        return session.get(repo.Trigger, trigger_id).state  # type: ignore[union-attr]


def test_nothing_monitored_yet_is_an_empty_page(ui_app_noauth) -> None:  # type: ignore[no-untyped-def]
    page = ui_app_noauth.client.get("/monitoring")
    assert page.status_code == 200 and 'id="monitoring-empty"' in page.text


def test_drift_quality_accuracy_alerts_and_the_trigger_timeline(ui_app) -> None:  # type: ignore[no-untyped-def]
    waiting = seed(ui_app, "penguins", labels=True)
    seed(ui_app, "iris", labels=False)
    page = ui_app.client.get("/monitoring?model=penguins")
    assert page.status_code == 200, page.text
    assert chart(page.text, "drift-share")["series"] == [{"label": "drift_share", "y": [0.0, 0.25, 0.75]}]
    features = chart(page.text, "feature-drift")["series"]
    assert [s["label"] for s in features] == ["bill_length_mm", "flipper_length_mm"]  # most drifted first
    assert [s["label"] for s in chart(page.text, "data-quality")["series"]] == ["null_share", "out_of_range_share",
                                                                               "unseen_category_share"]
    assert chart(page.text, "live-accuracy")["series"][0]["y"] == pytest.approx([0.95, 0.85, 0.75])
    assert "drifted: bill_length_mm" in page.text and "drift_share 0.75 &gt; 0.5" in page.text
    assert f'id="trigger-{waiting}" data-state="awaiting_approval"' in page.text
    assert "<strong>detected</strong> drift_share &gt; 0.5" in page.text  # the timeline starts at the firing
    assert "action-approve" in page.text and 'id="monitor-iris"' not in page.text
    everything = ui_app.client.get("/monitoring").text
    assert 'id="monitor-iris"' in everything and "No live accuracy yet" in everything
    assert "<strong>detected</strong>" not in everything and "?model=iris#trigger-" in everything  # timelines: one model's page
    assert ui_app.client.get("/monitoring?model=nope").status_code == 404


@pytest.mark.slow  # the approval starts the rollout with the real CLI (a subprocess)
def test_approving_a_trigger_from_the_page(ui_app) -> None:  # type: ignore[no-untyped-def]
    waiting = seed(ui_app, "wine", labels=False)
    viewer = ui_app.viewer()
    assert "action-approve" not in viewer.get("/monitoring?model=wine").text
    forged = viewer.post(f"/monitoring/triggers/{waiting}/approve", data={"csrf_token": ui_app.csrf(viewer)})
    assert forged.status_code == 403 and "deploy:write" in forged.text
    assert ui_app.client.post(f"/monitoring/triggers/{waiting}/approve").status_code == 403  # no CSRF token
    assert trigger_state(ui_app, waiting) == "awaiting_approval"

    confirm = ui_app.client.get(f"/monitoring/triggers/{waiting}/approve")
    assert confirm.status_code == 200 and "wine@7" in confirm.text and "confirm-approve" in confirm.text
    done = ui_app.client.post(f"/monitoring/triggers/{waiting}/approve", data={"csrf_token": ui_app.csrf()})
    assert done.status_code == 303 and done.headers["location"] == f"/monitoring?model=wine&approved={waiting}"
    # accepted, so the rollout was started: it fails here as wine@7 was never registered
    assert trigger_state(ui_app, waiting) == "failed"
    with ui_app.store.read() as session:
        approved = audit.events(session, kind="monitor.retrain.approved", subject=f"trigger/{waiting}")
    assert [e.actor for e in approved] == ["ada"]
    assert 'id="trigger-approved"' in ui_app.client.get(done.headers["location"]).text

    again = ui_app.client.post(f"/monitoring/triggers/{waiting}/approve", data={"csrf_token": ui_app.csrf()})
    assert again.status_code == 409 and "not awaiting approval" in again.text
    missing = ui_app.client.post("/monitoring/triggers/99999/approve", data={"csrf_token": ui_app.csrf()})
    assert missing.status_code == 404 and "trigger #99999" in missing.text
    bad = ui_app.client.get("/monitoring/triggers/seven/approve")
    assert bad.status_code == 400 and "trigger_id &#39;seven&#39;" in bad.text
