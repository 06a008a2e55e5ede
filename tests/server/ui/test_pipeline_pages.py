"""``/pipeline`` and ``/pipeline/stages/{stage}`` on a real project: a pipeline that really ran, an
input changed afterwards, and what ``explain`` says about it; empty, 404, 403 and a broken config."""

from __future__ import annotations

import html
import re
import sys
from pathlib import Path

import pytest

from shipyard.hashing import hash_file
from shipyard.pipeline.runner import RunOptions, run_pipeline
from shipyard.store import pipeline as repo

CONFIG = f"""pipeline:
  stages:
    prepare:
      cmd: {sys.executable} -c "open('prep.txt','w').write(open('raw.txt').read() * 2)"
      deps: [raw.txt]
      outs: [prep.txt]
    train:
      cmd: {sys.executable} -c "open('model.txt','w').write(open('prep.txt').read())"
      deps: [prep.txt]
      params: [train]
      outs: [model.txt]
"""


def row(page: str, stage: str) -> str:
    found = re.search(rf'<tr class="stage-row" data-stage="{stage}".*?</tr>', page, re.S)
    assert found, page
    return found.group(0)


def test_empty_project_says_how_to_start(ui_app) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/pipeline")
    assert page.status_code == 200, page.text
    assert 'id="pipeline-empty"' in page.text and 'id="no-runs"' in page.text
    assert "<code>shipyard run</code>" in page.text
    assert 'aria-current="page"' in page.text  # the nav marks the page


def test_unknown_stage_is_a_404_page(ui_app) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/pipeline/stages/nope")
    assert page.status_code == 404
    assert "no stage &#39;nope&#39; in this pipeline" in page.text


def test_who_may_see_the_pipeline(ui_app) -> None:  # type: ignore[no-untyped-def]
    for path in ("/pipeline", "/pipeline/stages/train"):
        assert ui_app.outsider().get(path).status_code == 403, path
        assert ui_app.viewer().get(path).status_code in (200, 404), path
        anonymous = ui_app.anonymous().get(path, headers={"Accept": "text/html"})
        assert anonymous.status_code == 303 and anonymous.headers["location"].startswith("/login"), path


def test_dag_last_executions_and_explain_after_a_real_run(ui_app) -> None:  # type: ignore[no-untyped-def]
    root: Path = ui_app.workspace.project.root
    (root / "shipyard.yaml").write_text(CONFIG)
    (root / "params.yaml").write_text("train:\n  lr: 0.1\n")
    (root / "raw.txt").write_text("hello\n")
    old = hash_file(root / "raw.txt")
    summary = run_pipeline(ui_app.workspace, RunOptions())
    assert summary.ran == ["prepare", "train"], summary.to_dict()
    with ui_app.store.read() as session:
        executions = {e.stage: e for e in repo.stage_executions(session, summary.run_id)}

    page = ui_app.client.get("/pipeline").text
    svg = re.search(r'<svg id="pipeline-dag".*?</svg>', page, re.S)
    assert svg and 'data-from="prepare" data-to="train"' in svg.group(0)
    assert 'data-key="train"' in svg.group(0) and 'href="/pipeline/stages/train"' in svg.group(0)
    train = row(page, "train")
    assert 'data-state="up-to-date"' in train and "SUCCEEDED" in train and ">ran<" in train
    seconds = (executions["train"].ended_at - executions["train"].started_at) / 1000
    assert f'data-seconds="{seconds}"' in train
    assert f'data-bytes="{executions["train"].peak_memory_bytes}"' in train
    assert f'href="/runs/{executions["train"].run_id}"' in train
    assert f'data-run="{summary.run_id}"' in page  # the last pipeline run, with its stages

    (root / "raw.txt").write_text("hello again\n")  # an input changes: prepare would run, train after it
    (root / "params.yaml").write_text("train:\n  lr: 0.2\n")
    new = hash_file(root / "raw.txt")
    page = ui_app.client.get("/pipeline").text
    assert 'data-state="changed"' in row(page, "prepare") and 'data-state="upstream"' in row(page, "train")
    stage = ui_app.client.get("/pipeline/stages/prepare")
    assert stage.status_code == 200 and 'id="stage-state">changed<' in stage.text
    change = re.search(r'<tr class="stage-change" data-kind="dep" data-name="raw.txt">.*?</tr>', stage.text, re.S)
    assert change, stage.text
    assert old in change.group(0) and new in change.group(0)
    assert stage.text.count('class="stage-execution"') == 1
    train_page = ui_app.client.get("/pipeline/stages/train").text
    assert 'href="/pipeline/stages/prepare"' in train_page and "params.yaml:train" in train_page
    params = re.search(r'<tr class="stage-change" data-kind="params".*?</tr>', train_page, re.S)
    assert params, train_page
    old_value, new_value = re.findall(r'class="mono change-(?:old|new)">(.*?)</td>', params.group(0))
    assert "0.1" in html.unescape(old_value) and "0.2" in html.unescape(new_value)


def test_a_broken_config_is_shown_not_a_5xx(ui_app) -> None:  # type: ignore[no-untyped-def]
    root: Path = ui_app.workspace.project.root
    saved = (root / "shipyard.yaml").read_text()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages:\n    train: {deps: [x]}\n")
    try:
        page = ui_app.client.get("/pipeline")
        assert page.status_code == 200 and 'id="pipeline-problem"' in page.text and "shipyard.yaml" in page.text
        assert ui_app.client.get("/pipeline/stages/train").status_code == 409
    finally:
        (root / "shipyard.yaml").write_text(saved)


@pytest.mark.parametrize("path", ["/pipeline", "/pipeline/stages/prepare"])
def test_pages_work_without_auth(ui_app_noauth, path: str) -> None:  # type: ignore[no-untyped-def]
    assert ui_app_noauth.client.get(path).status_code in (200, 404)
