"""The web UI in a real browser: one ``shipyard server`` (auth on, a subprocess on a loopback port) and
one headless Chromium for the whole session, data seeded once.

``site`` is the served project (URL, workspace, seeded ids); ``admin`` and ``viewer`` are pages of
browser contexts that logged in through the real /login form as ``ada`` (a global admin) and ``vera``
(a viewer of the project). ``shot(page, name)`` saves ``build/screenshots/<name>.png``, the folder
CI keeps. Without /usr/bin/chromium every browser test is skipped, and the reason says so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shipyard.project import Project
from shipyard.workspace import Workspace
from tests.conftest import REPO
from tests.server.live import live_server_with_auth

CHROMIUM = "/usr/bin/chromium"
# without the background-networking flags Chromium keeps calling home, which a closed network punishes
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = REPO / "build" / "screenshots"
PROJECT = "penguins"
PASSWORD = "correct horse battery staple"
MODEL = "iris"
# (name, model, C, final accuracy, team): the runs of experiment "train"
RUNS = [("svm-a", "svm", 1.0, 0.91, "a"), ("svm-b", "svm", 10.0, 0.94, "b"), ("rf-a", "rf", 0.0, 0.89, "a"),
        ("rf-b", "rf", 0.0, 0.95, "b"), ("knn-a", "knn", 0.0, 0.86, "a"), ("knn-b", "knn", 0.0, 0.88, "b"),
        ("mlp-a", "mlp", 0.1, 0.93, "a"), ("mlp-b", "mlp", 0.01, 0.96, "b")]
STEPS = 400


@dataclass
class Site:
    """The served project and what was seeded in it."""

    url: str
    workspace: Workspace
    runs: dict[str, str] = field(default_factory=dict)  # run name -> run id
    experiment_id: int = 0

    @property
    def store(self) -> Any:
        return self.workspace.store


def _seed_runs(ws: Workspace) -> tuple[dict[str, str], int]:
    """The runs of RUNS, each with params, tags and STEPS-step loss and accuracy histories."""
    from shipyard.store import runs as repo
    from shipyard.tracking import service

    made = {}
    with ws.store.write() as session:
        for i, (name, model, c, acc, team) in enumerate(RUNS):
            run_id = service.create_run(session, experiment="train", name=name, tags={"team": team},
                                        git={"commit": f"{i:040x}", "branch": "main"})
            points = []
            for step in range(STEPS):
                progress = (step + 1) / STEPS
                points += [{"key": "loss", "value": (1 - acc) + 1.5 * (1 - progress) ** 3 + 0.02 * (step % 7),
                            "step": step, "timestamp": 1_765_000_000_000 + step},
                           {"key": "accuracy", "value": acc * progress ** 0.3, "step": step,
                            "timestamp": 1_765_000_000_000 + step}]
            service.log_batch(session, run_id, metrics=service.parse_metrics(points),
                              params={"model": model, "C": c, "seed": i}, limits=False)
            service.end_run(session, run_id)
            made[name] = run_id
        experiment_id = repo.experiment_by_name(session, "train").id
    return made, experiment_id


def _seed_models(ws: Workspace) -> None:
    """Model iris, v1 champion and v2 with a passing verdict, and a canary rollout of v2 at its first step."""
    from shipyard.rollout.controller import build_controller
    from tests.e2e.gateway_live import register_versions

    register_versions(ws.store, MODEL, [1, 2], champion=1)
    build_controller(ws, None).start(MODEL, 2, rollout_settings())


def rollout_settings() -> Any:
    """A canary in three steps that advances on 10 clean candidate answers."""
    from shipyard.config import DeploySection

    return DeploySection(steps=[20, 50, 100], interval="1s", min_samples=10,
                         rollback_when={"error_rate": "> 0.5"})


def canary_traffic(ws: Workspace, n: int = 20) -> None:
    """Write ``n`` clean answers of the candidate (and of the champion) to the project's request log,
    as the gateway would: what the controller's next analysis reads."""
    import numpy as np
    import pandas as pd

    from shipyard.serving.requestlog import LogEntry, RequestLog, feedback_root, requests_root

    state = ws.project.state_dir
    log = RequestLog(requests_root(state, None, ws.project.root), feedback_root(state, None, ws.project.root))
    now = time.time()
    frame = pd.DataFrame({"x": [1.0]})
    for i in range(n):
        for version, route in ((2, "canary"), (1, "primary")):
            log.append(LogEntry(f"r{version}-{i}-{now}", now, MODEL, version, route, "ok", 2.0, None, frame,
                                np.asarray(["setosa"]), None, True))
    log.flush()


def _add_viewer(ws: Workspace) -> None:
    from shipyard.auth import service

    service.create_project(ws.store, PROJECT, actor="ops")
    service.create_user(ws.store, "vera", password=PASSWORD, actor="ops")
    service.grant(ws.store, PROJECT, "vera", "viewer", actor="ops")


def _add_admin(ws: Workspace) -> None:
    """A second global admin with a password (after the server made the first one, which has none)."""
    from shipyard.auth import service

    service.create_user(ws.store, "ada", password=PASSWORD, admin=True, actor="ops")


@pytest.fixture(scope="package")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``shipyard server`` (auth on) over a project seeded with runs, a model and a running canary."""
    root = tmp_path_factory.mktemp("browser") / PROJECT
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("SHIPYARD_STORE", "SHIPYARD_OBJECTS", "SHIPYARD_PROJECT", "SHIPYARD_REQUEST_LOG"):
            mp.delenv(name, raising=False)
        ws = Workspace(Project(root))
        runs, experiment_id = _seed_runs(ws)
        _seed_models(ws)
        _add_viewer(ws)
        with live_server_with_auth(root) as (url, _token):
            _add_admin(ws)
            yield Site(url=url, workspace=ws, runs=runs, experiment_id=experiment_id)
        ws.close()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    """One headless Chromium for the session (skipped, with the reason, where it is not installed)."""
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (Debian: apt-get install chromium); the browser tests need it"
        print(f"\nSKIP browser tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def login(browser: Any, site: Site, user: str) -> Any:
    """A browser context logged in as ``user`` through the /login form, as a person does it."""
    from playwright.sync_api import expect

    context = browser.new_context(base_url=site.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/login?next=/runs")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/runs$"))
    expect(page.locator("header .who")).to_contain_text(user)
    page.close()
    return context


@pytest.fixture(scope="package")
def admin_context(browser: Any, site: Site) -> Iterator[Any]:
    context = login(browser, site, "ada")
    yield context
    context.close()


@pytest.fixture(scope="package")
def viewer_context(browser: Any, site: Site) -> Iterator[Any]:
    context = login(browser, site, "vera")
    yield context
    context.close()


@pytest.fixture
def admin(admin_context: Any) -> Iterator[Any]:
    """A fresh page of the admin's session (JavaScript errors fail the test)."""
    yield from _page(admin_context)


@pytest.fixture
def viewer(viewer_context: Any) -> Iterator[Any]:
    """A fresh page of the viewer's session (JavaScript errors fail the test)."""
    yield from _page(viewer_context)


def _page(context: Any) -> Iterator[Any]:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    page.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shot(page: Any, name: str) -> Path:
    """Save a full-page screenshot to build/screenshots/<name>.png (kept by CI)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
