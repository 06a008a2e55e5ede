"""``/``: the loop on one screen; its empty state, 403, and the rollouts, monitors and alerts it
lists. The last test builds a real project through the public API (a dataset added twice, a
pipeline that trains a real model, registration after the run, ``shipyard gate``, the champion
alias, an input changed afterwards) and checks that every loop page shows those values."""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shipyard.config import load_config
from shipyard.data.versions import add_dataset, diff_versions
from shipyard.gates.runner import run_gate
from shipyard.hashing import Hasher, StatCache
from shipyard.pipeline.runner import RunOptions, run_pipeline
from shipyard.registry import set_alias
from shipyard.registry.project import register_after_run
from shipyard.store import monitoring as monitoring_repo
from shipyard.store import pipeline as pipeline_repo
from shipyard.store import serving as serving_repo
from shipyard.store.datasets import get_version
from tests.server.ui.conftest import make_ui_app


def test_an_empty_project_says_how_to_start(ui_app) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/")
    assert page.status_code == 200
    assert 'id="home-empty"' in page.text and "No runs yet: run <code>shipyard run</code>" in page.text
    assert 'id="no-runs"' in page.text and "No rollout in progress" in page.text and "No alerts yet." in page.text


def test_who_may_see_home(ui_app) -> None:  # type: ignore[no-untyped-def]
    assert ui_app.outsider().get("/").status_code == 403
    assert ui_app.viewer().get("/").status_code == 200
    anonymous = ui_app.anonymous().get("/", headers={"Accept": "text/html"})
    assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login")


def test_rollouts_monitors_and_alerts(ui_app) -> None:  # type: ignore[no-untyped-def]
    with ui_app.store.write() as session:
        deployment = serving_repo.create_deployment(session, model="iris", candidate=2, champion=1, strategy="canary",
                                                    state="running", step=1, settings={"steps": [10, 25, 100]})
        serving_repo.put_routing(session, {"iris": {"model": "iris", "deployment": deployment.id, "weight": 25.0}})
        serving_repo.create_deployment(session, model="iris", candidate=1, champion=None, strategy="canary",
                                       state="promoted", step=0, settings={})
        state = monitoring_repo.rule_state(session, "iris", "drift_share > 0.3")
        state.streak = 2
        monitoring_repo.add_firing(session, model="iris", rule="drift_share > 0.3", window_id=None, at=1_790_000_000.0,
                                   status="ACCEPT", severity="critical", actions=["alert"], reason="held for 2 windows",
                                   fired=["DebounceWindows"], metrics={"drift_share": 0.5})
        monitoring_repo.add_firing(session, model="iris", rule="accuracy < 0.8", window_id=None, at=1_790_000_100.0,
                                   status="WAIT", severity="warning", actions=["alert"], reason="needs 3 windows",
                                   fired=["DebounceWindows"], metrics={"accuracy": 0.7})
    page = ui_app.client.get("/").text
    rollouts = re.findall(r'<tr class="home-rollout" data-deployment="(\d+)">(.*?)</tr>', page, re.S)
    assert [int(i) for i, _ in rollouts] == [deployment.id]  # the promoted one is not in progress
    assert "canary[1]" in rollouts[0][1] and "25.0 %" in rollouts[0][1]
    assert re.search(r'class="home-firing" data-model="iris" data-rule="drift_share &gt; 0.3">.*?held for 2 windows',
                     page, re.S)
    alerts = re.findall(r'<li class="home-alert" data-firing="\d+">(.*?)</li>', page, re.S)
    assert len(alerts) == 1 and "critical" in alerts[0] and "held for 2 windows" in alerts[0]  # WAIT did not alert


TRAIN = """import json, os
import numpy as np, yaml
from sklearn.tree import DecisionTreeClassifier
from shipyard.models import save_model
table = np.loadtxt("data/points.csv", delimiter=",", skiprows=1)  # numpy, not pandas: a second less to start
features, label = table[:, :2], table[:, 2].astype(int)
depth = yaml.safe_load(open("params.yaml"))["train"]["depth"]
model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(features, label)
os.makedirs("model", exist_ok=True)
save_model(model, "model", "sklearn")
json.dump({"accuracy": float(model.score(features, label))}, open("metrics.json", "w"))
"""
CONFIG = f"""pipeline:
  stages:
    train:
      cmd: {sys.executable} src/train.py
      deps: [src/train.py, data/points.csv]
      params: [train]
      outs: [model/]
      metrics: [{{metrics.json: {{cache: false}}}}]
model: {{name: points-clf, path: model/, flavor: sklearn}}
gates:
  - {{metric: accuracy, min: 0.6}}
"""


def points(shift: float) -> str:
    import random

    rng = random.Random(3)
    rows = ["x,y,label"]
    for _ in range(300):
        x, y = rng.gauss(shift, 1), rng.random()
        rows.append(f"{x:.4f},{y:.4f},{int(x + y > shift + 0.5)}")
    return "\n".join(rows) + "\n"


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}
    return subprocess.run(["git", *args], cwd=root, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.mark.slow
def test_a_real_project_on_every_loop_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_STORE", raising=False)
    monkeypatch.delenv("SHIPYARD_OBJECTS", raising=False)
    ui = make_ui_app(tmp_path / "proj", auth=False)
    try:
        ws, root = ui.workspace, ui.workspace.project.root
        (root / "src").mkdir()
        (root / "data").mkdir()
        (root / "src" / "train.py").write_text(TRAIN)
        (root / "data" / "points.csv").write_text(points(0.0))
        (root / "params.yaml").write_text("train:\n  depth: 2\n")
        (root / "shipyard.yaml").write_text(CONFIG)
        (root / ".gitignore").write_text(".shipyard/\nmodel/\nmetrics.json\n")
        git(root, "init", "-q")
        git(root, "add", ".")
        git(root, "commit", "-qm", "first")
        commit = git(root, "rev-parse", "HEAD")
        hasher = Hasher(root, StatCache(ws.project.stat_cache_path))
        add_dataset(ws.store, ws.objects, hasher, "data/points.csv", name="points")
        summary = run_pipeline(ws, RunOptions())
        assert summary.ran == ["train"], summary.to_dict()
        config = load_config(root / "shipyard.yaml")
        registration, stage_run = register_after_run(ws.store, ws.objects, root, config.model, summary.run_id, "train")
        verdict = run_gate(ws.store, ws.objects, registration.version.ref, config, root).verdict
        assert verdict.passed, verdict.to_dict()
        with ws.store.write() as session:
            set_alias(session, "points-clf", "champion", registration.version.version)
        (root / "data" / "points.csv").write_text(points(3.0))  # new data: drift, and train would run again
        add_dataset(ws.store, ws.objects, hasher, "data/points.csv", name="points")
        hasher.cache.close()
        check_pages(ui, summary.run_id, stage_run, verdict, commit)
    finally:
        ui.close()


def check_pages(ui, pipeline_run: str, stage_run: str, verdict, commit: str) -> None:  # type: ignore[no-untyped-def]
    ws, client = ui.workspace, ui.client
    with ws.store.read() as session:
        execution = pipeline_repo.stage_executions(session, pipeline_run)[0]
        first, second = get_version(session, "points@1"), get_version(session, "points@2")
    accuracy = verdict.checks[0].value
    home = client.get("/").text
    assert f'data-run="{pipeline_run}"' in home and 'data-stage="train"' in home and 'id="home-empty"' not in home
    assert re.search(r'data-model="points-clf">.*?points-clf@1</a></td>\s*<td class="champion-gate"><span class="badge ok">'
                     r"passed", home, re.S)
    pipeline = client.get("/pipeline").text
    row = re.search(r'<tr class="stage-row" data-stage="train" data-state="changed">.*?</tr>', pipeline, re.S)
    assert row and f'data-bytes="{execution.peak_memory_bytes}"' in row.group(0) and "SUCCEEDED" in row.group(0)
    explain = client.get("/pipeline/stages/train").text
    change = re.search(r'data-kind="dep" data-name="data/points.csv">.*?</tr>', explain, re.S)
    assert change and first.oid in change.group(0) and second.oid in change.group(0)  # old and new content
    model = client.get("/models/points-clf").text
    check = re.search(r'<tr class="gate-check" data-check="accuracy &gt;= 0.6" data-status="pass">(.*?)</tr>', model, re.S)
    assert check and f'<td class="num check-value">{accuracy:.4g}</td>' in check.group(1)
    assert html.escape(verdict.checks[0].reason) in check.group(1)
    version = client.get("/models/points-clf/champion").text
    svg = re.search(r'<svg id="model-lineage".*?</svg>', version, re.S).group(0)  # type: ignore[union-attr]
    run_key, commit_key = f"run:{stage_run}", f"commit:{commit}"
    assert f'data-from="data:points@1:{first.oid}" data-to="{run_key}"' in svg
    assert f'data-from="{run_key}" data-to="{commit_key}"' in svg and 'data-to="model:points-clf@1"' in svg
    card = re.search(r'<article id="model-card".*?</article>', version, re.S).group(0)  # type: ignore[union-attr]
    assert re.search(r"<td>accuracy</td>\s*<td>", card) and commit in card  # the run's metrics, the commit
    data = client.get("/data/points/2").text
    expected = {c["column"]: c for c in diff_versions(ws.objects, first, second)["columns"]}
    assert expected["x"]["verdict"] == "DRIFT"
    assert 'data-column="x" data-verdict="DRIFT"><td>x</td>' in data
    assert f'<td class="num drift-value">{expected["x"]["value"]}</td>' in data
    assert re.search(r'class="chart drift-chart" data-column="x"', data)
    used = client.get("/data/points/1").text
    assert 'href="/models/points-clf/1">points-clf@1</a>' in used and f'href="/runs/{stage_run}"' in used
    assert json.loads(html.unescape(re.search(r"data-column=\"y\" data-chart='([^']*)'", data).group(1)))  # type: ignore[union-attr]
