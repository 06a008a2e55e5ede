"""The loop and operations pages in Chromium: a rollout page that follows the controller by itself,
what a viewer sees and may not do, and every page of the navigation opening without a script error
(each saved as a screenshot)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.browser.conftest import MODEL, Site, canary_traffic, shot

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]
# every page of the navigation bar, and the name of its screenshot
PAGES = [("/", "home"), ("/pipeline", "pipeline"), ("/data", "data"), ("/models", "models"),
         (f"/models/{MODEL}", "model"), ("/rollouts", "rollouts"), ("/monitoring", "monitoring"), ("/audit", "audit")]


def test_the_rollout_page_updates_while_the_controller_moves_the_canary(admin: Any, site: Site) -> None:
    from shipyard.rollout.controller import build_controller

    page = admin
    page.goto(f"/rollouts/{MODEL}")
    weight = page.locator("#rollout-weight")
    expect(weight).to_have_text(re.compile(r"^20(\.0)?$"))
    expect(page.locator("#rollout-actions button")).not_to_have_count(0)
    page.evaluate("() => { window.notReloaded = true; }")
    # the controller reads clean canary traffic and advances the canary to its next step
    canary_traffic(site.workspace)
    outcomes = build_controller(site.workspace, None).tick(force=True)
    assert [(o.status, o.to_state) for o in outcomes] == [("ACCEPT", "canary[1]")], outcomes
    expect(weight).to_have_text(re.compile(r"^50(\.0)?$"), timeout=20_000)  # the page polls; nobody reloads it
    expect(page.locator("#rollout-analyses tr.analysis[data-status=ACCEPT]")).to_have_count(1)
    assert page.evaluate("() => window.notReloaded === true")
    shot(page, "rollout")


def test_a_viewer_sees_no_action_buttons_and_a_forged_post_is_refused(viewer: Any, site: Site) -> None:
    page = viewer
    page.goto(f"/rollouts/{MODEL}")
    expect(page.locator("#rollout-status")).to_be_visible()
    expect(page.locator("#rollout-actions")).to_have_count(0)
    expect(page.locator("button.action")).to_have_count(0)
    before = page.locator("#rollout-status").get_attribute("data-state")
    csrf = page.locator("meta[name=csrf-token]").get_attribute("content")
    assert csrf, "the viewer's page carries its session's CSRF token"
    # the viewer forges what the pause button would send: the session cookie and a valid CSRF token
    forged = page.request.post(f"/rollouts/{MODEL}/pause", form={"csrf_token": csrf},
                               headers={"X-CSRF-Token": csrf}, max_redirects=0)
    assert forged.status == 403, (forged.status, forged.text()[:300])
    page.reload()
    expect(page.locator("#rollout-status")).to_have_attribute("data-state", before or "")
    shot(page, "rollout-viewer")


@pytest.mark.parametrize(("path", "name"), PAGES, ids=[name for _, name in PAGES])
def test_every_page_opens_without_a_script_error(admin: Any, site: Site, path: str, name: str) -> None:
    page = admin
    answer = page.goto(path)
    assert answer is not None and answer.status == 200, (path, answer and answer.status)
    expect(page.locator("main h1").first).to_be_visible()
    current = page.locator("header nav a[aria-current=page]")
    expect(current).to_have_count(1)
    expect(page).to_have_title(re.compile(r"Shipyard"))
    shot(page, name)
