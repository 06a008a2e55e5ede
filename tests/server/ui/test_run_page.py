"""/runs/{run_id}: a run's params, metrics (charts downsampled on the server), tags, inputs,
lineage, artifacts with capped previews and downloads, the stage's log; 404, 400 and 403 pages."""

from __future__ import annotations

import html
import json
import re

import pytest

from shipyard.server.ui.pages._artifacts import PREVIEW_BYTES
from shipyard.store import datasets
from shipyard.store import pipeline as pipe
from shipyard.store import registry as reg
from shipyard.store import runs as repo
from shipyard.store.runs import MetricValue
from shipyard.tracking import service

BIG_CSV = "a,b\n" + "".join(f"{i},{i * i}\n" for i in range(100_000))  # ~1.2 MB


@pytest.fixture(scope="module")
def seeded(ui_app):  # type: ignore[no-untyped-def]
    ws = ui_app.workspace
    with ws.store.write() as s:
        parent = service.create_run(s, experiment="pipe", name="pipeline")
        rid = service.create_run(s, experiment="pipe", name="train", parent_run_id=parent,
                                 git={"commit": "0123456789abcdef0123", "branch": "main", "dirty": False})
        repo.log_params(s, rid, {"depth": "3", "model": "tree"})
        repo.set_tags(s, rid, {"team": "birds"})
        history = [MetricValue("loss", 1.0 / (i + 1), step=i) for i in range(5_000)]
        history[2_345] = MetricValue("loss", 99.0, step=2_345)
        repo.log_metrics(s, rid, [*history, MetricValue("acc", 0.9), MetricValue("system/cpu_seconds", 1.5)])
        repo.log_inputs(s, rid, [{"name": "penguins.csv", "digest": "d1g3st", "context": "training", "source": "data/"}])
        version, _ = datasets.add_version(s, name="penguins", path="data/penguins.csv", format="csv", oid="xxh3:0",
                                          size_bytes=10, rows=2, columns=[], schema="", profile_oid=None)
        datasets.link_runs(s, rid, [version.id])
        log_oid = ws.objects.put_bytes(b"x" * 100_000 + b"\nepoch 9 done\n")
        pipe.start_pipeline_run(s, parent, targets=["train"], executor="local", jobs=1, pid=1)
        execution = pipe.start_stages(s, parent, [("train", rid, "fp")])["train"]
        pipe.finish_stage(s, execution, pipe.StageOutcome(status="SUCCEEDED", log_oid=log_oid))
        reg.create_version(s, reg.create_model(s, "penguin-species"), model_oid=log_oid, flavor="sklearn", run_id=rid)
        empty = service.create_run(s, experiment="pipe", name="empty")
    for path, data in (("notes/readme.txt", b"hello artifact"), ("metrics.json", b'{"acc": 0.9}'),
                       ("table.csv", BIG_CSV.encode()), ("plot.png", b"\x89PNG\r\n\x1a\n" + b"0" * 100),
                       ("weights.bin", b"\x00\x01" * 10)):
        service.store_artifact_bytes(ws.store, ws.objects, rid, path, data)
    return {"run": rid, "parent": parent, "empty": empty}


def chart_specs(text: str) -> dict[str, dict]:
    found = re.findall(r'data-metric="([^"]+)" data-chart="([^"]+)"', text)
    return {key: json.loads(html.unescape(spec)) for key, spec in found}


def test_the_run_page_shows_what_the_run_recorded(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get(f"/runs/{seeded['run']}")
    assert page.status_code == 200, page.text
    text = page.text
    for needle in ("0123456789abcdef0123", "depth", "birds", "penguins.csv", "d1g3st", "notes/readme.txt",
                   f'href="/runs/{seeded["parent"]}"', "epoch 9 done", "system/cpu_seconds", 'href="/data/penguins/1"'):
        assert needle in text, needle
    assert 'href="/models/penguin-species/1"' in text
    specs = chart_specs(text)
    assert set(specs) == {"acc", "loss"}  # system/ metrics are not charted by default
    loss = specs["loss"]["series"][0]
    assert len(specs["loss"]["x"]) <= 1000 and 99.0 in loss["y"]  # downsampled, the spike survives


def test_chosen_metrics_are_charted_and_the_metrics_table_is_searchable(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get(f"/runs/{seeded['run']}?metric=system/cpu_seconds&mq=acc")
    assert set(chart_specs(page.text)) == {"system/cpu_seconds"}
    table = page.text.split('id="run-metrics"', 1)[1]
    assert ">acc<" in table and ">loss<" not in table


def test_previews_are_capped_and_downloads_are_whole(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    base = f"/runs/{seeded['run']}/artifacts"
    text = ui_app.client.get(f"{base}/notes/readme.txt?preview=1")
    assert text.status_code == 200 and "hello artifact" in text.text
    assert "&#34;acc&#34;: 0.9" in ui_app.client.get(f"{base}/metrics.json?preview=1").text
    csv_preview = ui_app.client.get(f"{base}/table.csv?preview=1").text
    assert csv_preview.count("<tr>") == 51 and "The first rows only" in csv_preview and len(csv_preview) < PREVIEW_BYTES
    assert '<img src="' in ui_app.client.get(f"{base}/plot.png?preview=1").text
    assert "No preview" in ui_app.client.get(f"{base}/weights.bin?preview=1").text
    whole = ui_app.client.get(f"{base}/table.csv")
    assert whole.status_code == 200 and whole.content == BIG_CSV.encode()
    assert whole.headers["content-type"] == "application/octet-stream" and "attachment" in whole.headers["content-disposition"]
    assert whole.headers["content-security-policy"] == "sandbox"
    assert ui_app.client.get(f"{base}/plot.png").headers["content-type"] == "image/png"


ESCAPES = ["%2e%2e/%2e%2e/etc/passwd", "%252e%252e%252fsecret", "notes/%2e%2e/%2e%2e/x", "/etc/passwd", "a\\..\\b"]


def test_artifact_paths_that_escape_are_refused(ui_app, ui_app_noauth, seeded) -> None:  # type: ignore[no-untyped-def]
    # with auth, the enforcement point refuses dot segments and encoded separators before routing;
    # without it, the page's own check (tracking.paths.safe_relative on the raw URL) does, as a 400 page
    with ui_app_noauth.store.write() as s:
        rid = service.create_run(s, experiment="x")
    for path in ESCAPES:
        guarded = ui_app.client.get(f"/runs/{seeded['run']}/artifacts/{path}")
        assert guarded.status_code == 400, (path, guarded.status_code)
        page = ui_app_noauth.client.get(f"/runs/{rid}/artifacts/{path}")
        assert page.status_code == 400, (path, page.status_code)
        assert "<html" in page.text and "artifact path" in html.unescape(page.text), path


def test_unknown_run_and_artifact_are_404_pages(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    missing = ui_app.client.get("/runs/" + "f" * 32)
    assert missing.status_code == 404 and "no run" in missing.text and "<html" in missing.text
    assert ui_app.client.get("/runs/not-a-run!").status_code == 404
    assert ui_app.client.get(f"/runs/{seeded['run']}/artifacts/nope.txt").status_code == 404
    assert ui_app.client.get("/runs/" + "f" * 32 + "/artifacts/a.txt").status_code == 404


def test_an_empty_run(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get(f"/runs/{seeded['empty']}")
    assert page.status_code == 200
    assert "No metrics." in page.text and "No artifacts." in page.text and "No params." in page.text


def test_who_may_see_a_run(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    for path in (f"/runs/{seeded['run']}", f"/runs/{seeded['run']}/artifacts/notes/readme.txt"):
        assert ui_app.viewer().get(path).status_code == 200, path
        assert ui_app.outsider().get(path).status_code == 403, path
        assert ui_app.anonymous().get(path).status_code in (302, 303, 307, 401), path
