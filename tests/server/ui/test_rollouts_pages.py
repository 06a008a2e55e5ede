"""The rollout pages over a real rollout: the real controller moves a canary over a real request log,
the page shows its weights, analyses and steps; pause, abort and rollback from the page go through
the controller and write audit events naming the person; a viewer, a forged POST, an unknown model
or action and a refused action each get their answer, and change nothing."""

from __future__ import annotations

import re
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import audit
from shipyard.config import DeploySection
from shipyard.rollout.controller import build_controller
from shipyard.serving.requestlog import LogEntry, RequestLog, feedback_root, requests_root
from shipyard.store import serving as repo
from tests.e2e.gateway_live import register_versions

STEPS = DeploySection(steps=[10, 50, 100], min_samples=10, interval="1h")


def deploy(ui: Any, model: str) -> Any:
    """Versions 1 (champion) and 2 of ``model``, and a canary of 2 started by the real controller."""
    register_versions(ui.store, model, [1, 2], champion=1)
    controller = build_controller(ui.workspace, None)
    controller.start(model, 2, STEPS)
    return controller


def serve_requests(ui: Any, model: str, n: int = 20) -> None:
    """Answered requests of both versions in the project's request log, as the gateway writes them."""
    state, root = ui.workspace.project.state_dir, ui.workspace.project.root
    log = RequestLog(requests_root(state, None, root), feedback_root(state, None, root))
    now = time.time()
    for i in range(n):
        for version, route in ((1, "primary"), (2, "canary")):
            log.append(LogEntry(f"{model}-{version}-{i}", now, model, version, route, "ok", 1.0, None,
                                pd.DataFrame({"x": [float(i)]}), np.asarray(["a" if i % 2 else "b"]), None, True))
    log.flush()


def state_of(ui: Any, model: str) -> str:
    with ui.store.read() as session:
        return repo.latest_deployments(session, model, limit=1)[0].state


def events(ui: Any, kind: str, subject: str) -> list[Any]:
    with ui.store.read() as session:
        return audit.events(session, kind=kind, subject=subject)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


def test_no_rollouts_yet_is_an_empty_page(ui_app_noauth) -> None:  # type: ignore[no-untyped-def]
    page = ui_app_noauth.client.get("/rollouts")
    assert page.status_code == 200
    assert "No rollout in progress" in page.text and "No rollouts yet" in page.text
    assert 'aria-current="page"' in page.text and "hx-trigger" not in page.text  # nothing to follow
    assert ui_app_noauth.client.get("/rollouts", headers={"HX-Request": "true"}).status_code == 286


def test_a_moving_rollout_shows_weights_analyses_and_steps(ui_app) -> None:  # type: ignore[no-untyped-def]
    controller = deploy(ui_app, "iris")
    page = ui_app.client.get("/rollouts/iris")
    assert page.status_code == 200, page.text
    assert re.search(r'id="rollout-status" data-state="running"[^>]*>canary\[0\]<', page.text)
    assert 'id="rollout-weights"' in page.text and "candidate v2 %" in page.text
    assert 'hx-trigger="every 2s"' in page.text  # the page follows the rollout while it runs
    assert "No analysis yet" in page.text
    for action in ("pause", "promote", "abort", "rollback"):
        assert f"action-{action}" in page.text
    assert "action-resume" not in page.text
    listing = ui_app.client.get("/rollouts")
    assert 'href="/rollouts/iris"' in listing.text and "canary[0]" in listing.text
    assert 'id="rollouts-live" hx-get="/rollouts" hx-trigger="every 2s"' in listing.text

    controller.tick(force=True)  # no traffic yet: the analysis waits, with its reason
    serve_requests(ui_app, "iris")
    controller.tick(now=time.time() + 1, force=True)  # enough samples, within thresholds: next step
    assert state_of(ui_app, "iris") == "running"
    polled = ui_app.client.get("/rollouts/iris", headers={"HX-Request": "true"})
    assert polled.status_code == 200 and "<html" not in polled.text  # the live part only
    assert re.search(r'id="rollout-status"[^>]*>canary\[1\]<', polled.text)
    assert '<span id="rollout-weight">50.0</span>' in polled.text
    analyses = polled.text.split('id="rollout-analyses"')[1]
    assert "inconclusive: 0 of 10 candidate samples so far" in analyses
    assert 'data-status="ACCEPT"' in analyses and "candidate_n=20" in analyses
    chart = re.search(r"data-chart='([^']+)'", polled.text)
    # from the start, held through the waiting analysis, a step up at the accepted one, held to now
    assert chart and '"y": [10.0, 10.0, 50.0, 50.0]' in chart.group(1)


def test_pause_and_abort_from_the_page_are_audited_as_the_user(ui_app) -> None:  # type: ignore[no-untyped-def]
    deploy(ui_app, "wine")
    confirm = ui_app.client.get("/rollouts/wine/pause")
    assert confirm.status_code == 200 and "confirm-pause" in confirm.text and "audit log" in confirm.text
    assert state_of(ui_app, "wine") == "running"  # the confirmation step changes nothing
    done = ui_app.client.post("/rollouts/wine/pause", data={"csrf_token": csrf_of(confirm.text)})
    assert done.status_code == 303 and done.headers["location"] == "/rollouts/wine?done=pause"
    assert state_of(ui_app, "wine") == "paused"
    assert [e.actor for e in events(ui_app, "rollout.pause", "wine@2")] == ["ada"]
    page = ui_app.client.get("/rollouts/wine?done=pause")
    assert 'id="rollout-done"' in page.text and "action-resume" in page.text and "action-pause" not in page.text

    done = ui_app.client.post("/rollouts/wine/abort", headers={"X-CSRF-Token": ui_app.csrf()})
    assert done.status_code == 303 and state_of(ui_app, "wine") == "aborted"
    assert [e.actor for e in events(ui_app, "rollout.abort", "wine@2")] == ["ada"]
    ended = ui_app.client.get("/rollouts/wine", headers={"HX-Request": "true"})
    assert ended.status_code == 286  # htmx stops polling a rollout that has ended
    assert 'data-state="aborted"' in ended.text and "action-" not in ended.text

    refused = ui_app.client.post("/rollouts/wine/promote", data={"csrf_token": ui_app.csrf()})
    assert refused.status_code == 409 and "cannot promote" in refused.text and "aborted" in refused.text


def test_a_viewer_sees_no_buttons_and_a_forged_post_changes_nothing(ui_app) -> None:  # type: ignore[no-untyped-def]
    from shipyard.store import monitoring

    deploy(ui_app, "penguin-species")
    with ui_app.store.write() as session:  # a retrained version waiting for a person (deploy.approval: required)
        waiting = monitoring.add_trigger(session, model="penguin-species", kind="rule", source="rule drift",
                                         state="awaiting_approval", reason="waiting for a person", fired=[],
                                         result={"version": 3}).id
    for path in ("/rollouts", "/rollouts/penguin-species"):
        shown = ui_app.client.get(path).text
        assert f'data-trigger="{waiting}"' in shown and f'action="/monitoring/triggers/{waiting}/approve"' in shown
    viewer = ui_app.viewer()
    page = viewer.get("/rollouts/penguin-species")
    assert page.status_code == 200 and "action-abort" not in page.text and 'id="rollout-actions"' not in page.text
    assert f'data-trigger="{waiting}"' in page.text and "action-approve" not in page.text
    before = len(events(ui_app, "", "penguin-species"))
    forged = viewer.post("/rollouts/penguin-species/abort", data={"csrf_token": ui_app.csrf(viewer)})
    assert forged.status_code == 403 and "deploy:write" in forged.text
    assert viewer.get("/rollouts/penguin-species/abort").status_code == 403
    no_token = ui_app.client.post("/rollouts/penguin-species/abort")
    assert no_token.status_code == 403 and "csrf_token" in no_token.text
    assert state_of(ui_app, "penguin-species") == "running"
    assert len(events(ui_app, "", "penguin-species")) == before


@pytest.mark.parametrize(("path", "method", "status", "words"), [
    ("/rollouts/no-such-model", "GET", 404, "no rollout of model &#39;no-such-model&#39;"),
    ("/rollouts/no-such-model/abort", "POST", 404, "no rollout of model"),
    ("/rollouts/iris/restart", "POST", 404, "rollout action &#39;restart&#39;"),
    ("/rollouts/iris?deployment=abc", "GET", 400, "deployment=&#39;abc&#39;"),
    ("/rollouts/iris?deployment=99999", "GET", 404, "rollout #99999"),
])
def test_unknown_things_are_named_in_an_error_page(ui_app, path: str, method: str, status: int,  # type: ignore[no-untyped-def]
                                                   words: str) -> None:
    answer = ui_app.client.request(method, path, data={"csrf_token": ui_app.csrf()} if method == "POST" else None)
    assert answer.status_code == status and words in answer.text, answer.text


def test_without_auth_a_rollback_is_audited_as_anonymous(ui_app_noauth) -> None:  # type: ignore[no-untyped-def]
    deploy(ui_app_noauth, "iris")
    page = ui_app_noauth.client.get("/rollouts/iris")
    assert "action-rollback" in page.text  # no auth: everyone may act
    done = ui_app_noauth.client.post("/rollouts/iris/rollback")
    assert done.status_code == 303 and state_of(ui_app_noauth, "iris") == "rolled_back"
    assert [e.actor for e in events(ui_app_noauth, "rollout.rollback", "iris@2")] == ["anonymous (no auth)"]
    again = ui_app_noauth.client.post("/rollouts/iris/rollback")
    assert again.status_code == 409 and "no rollout to roll back" in again.text
