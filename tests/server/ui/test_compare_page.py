"""/compare?runs=...: differing params (all on request), metrics, overlay charts downsampled per run,
parallel coordinates; 1 or 51 runs is a 400 page, an unknown run a 404 page, an outsider 403."""

from __future__ import annotations

import html
import json
import re

import pytest

from shipyard.server.ui.pages.compare import points_per_series
from shipyard.store import runs as repo
from shipyard.store.runs import MetricValue
from shipyard.tracking import service


@pytest.fixture(scope="module")
def seeded(ui_app):  # type: ignore[no-untyped-def]
    ids = []
    with ui_app.store.write() as s:
        for i in range(3):
            rid = service.create_run(s, experiment="cmp", name=f"c{i}")
            repo.log_params(s, rid, {"lr": str(0.1 * (i + 1)), "seed": "7", "model": "svm" if i else "tree"})
            points = [MetricValue("loss", 1.0 / (j + 1), step=j * (i + 1)) for j in range(3_000)]
            if i == 1:
                points[1_234] = MetricValue("loss", 77.0, step=1_234 * 2)
            repo.log_metrics(s, rid, [*points, MetricValue("acc", 0.5 + i / 10)])
            ids.append(rid)
        lone = service.create_run(s, experiment="cmp", name="lone")
        for n in range(51):
            service.create_run(s, experiment="many", name=f"m{n}", run_id=f"{n:032x}")
    return {"ids": ids, "lone": lone}


def specs(client, text: str) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    """The charts of a compare page: each slot loads its chart fragment when revealed."""
    out = {}
    for key, url in re.findall(r'class="card chart-slot" data-metric="([^"]+)" hx-get="([^"]+)"', text):
        fragment = client.get(html.unescape(url), headers={"HX-Request": "true"})
        assert fragment.status_code == 200 and "<html" not in fragment.text
        found = re.search(r'data-chart="([^"]+)"', fragment.text)
        out[key] = json.loads(html.unescape(found.group(1))) if found else {}
    return out


def test_compare_shows_differing_params_metrics_charts_and_parallel_coordinates(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded["ids"]
    page = ui_app.client.get("/compare?runs=" + ",".join(ids))
    assert page.status_code == 200, page.text
    params = page.text.split('id="compare-params"', 1)[1].split("</table>", 1)[0]
    assert 'data-key="lr"' in params and 'data-key="model"' in params and 'data-key="seed"' not in params
    everything = ui_app.client.get("/compare?runs=" + ",".join(ids) + "&all=1").text
    assert 'data-key="seed"' in everything.split('id="compare-params"', 1)[1].split("</table>", 1)[0]
    loss = specs(ui_app.client, page.text)["loss"]
    assert [s["label"] for s in loss["series"]] == ["c0", "c1", "c2"]
    assert all(len(s["x"]) <= 1000 for s in loss["series"])  # steps differ per run: each series has its own x
    assert 77.0 in loss["series"][1]["y"]
    # the charts come before the params and metrics tables (up to 200 rows), so they are revealed on load
    assert page.text.index('id="compare-charts"') < page.text.index('id="compare-params"')
    assert page.text.index('id="compare-charts"') < page.text.index('id="compare-metrics"')
    svg = page.text.split('id="parallel-coordinates"', 1)[1].split("</svg>", 1)[0]
    assert svg.count('class="pc-run"') == 3 and "params.lr" in svg and "metrics.acc" in svg
    assert svg.count("<polyline") == 3


def test_chosen_axes_and_metrics_and_repeated_runs_parameters(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    ids = seeded["ids"]
    query = "&".join(f"runs={r}" for r in ids) + "&metric=acc&axis=params.model&axis=metrics.loss&axis=params.nope"
    page = ui_app.client.get("/compare?" + query)
    assert page.status_code == 200
    assert set(specs(ui_app.client, page.text)) == {"acc"}
    svg = page.text.split('id="parallel-coordinates"', 1)[1].split("</svg>", 1)[0]
    assert ">params.model<" in svg and ">metrics.loss<" in svg and ">params.nope<" in svg
    assert svg.count("<polyline") == 3  # the axis no run has breaks no line into nothing: model-loss segment stays


@pytest.mark.parametrize("count", [1, 51])
def test_one_or_51_runs_is_a_400_page_saying_so(ui_app, seeded, count) -> None:  # type: ignore[no-untyped-def]
    ids = [f"{n:032x}" for n in range(count)]
    page = ui_app.client.get("/compare?runs=" + ",".join(ids))
    assert page.status_code == 400
    assert f"2 to 50 runs; ?runs= names {count}" in page.text
    assert ui_app.client.get("/compare").status_code == 400


def test_fifty_runs_without_data_and_an_unknown_run(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    fifty = ui_app.client.get("/compare?runs=" + ",".join(f"{n:032x}" for n in range(50)))
    assert fifty.status_code == 200 and fifty.text.count('class="compare-run"') == 50
    assert "No metrics." in fifty.text
    missing = ui_app.client.get(f"/compare?runs={seeded['lone']},{'e' * 32}")
    assert missing.status_code == 404 and "e" * 32 in missing.text
    ids = seeded["ids"]
    assert ui_app.client.get(f"/compare/chart?runs={ids[0]},{'e' * 32}&metric=loss").status_code == 404
    assert ui_app.client.get(f"/compare/chart?runs={ids[0]}&metric=loss").status_code == 400
    assert ui_app.client.get(f"/compare/chart?runs={ids[0]},{ids[1]}").status_code == 400
    nothing = ui_app.client.get(f"/compare/chart?runs={ids[0]},{ids[1]}&metric=nope")
    assert nothing.status_code == 200 and "No run of these logged nope" in nothing.text


def test_who_may_compare(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    for path in ("/compare?runs=" + ",".join(seeded["ids"]), "/compare/chart?metric=loss&runs=" + ",".join(seeded["ids"])):
        assert ui_app.viewer().get(path).status_code == 200, path
        assert ui_app.outsider().get(path).status_code == 403, path
        assert ui_app.anonymous().get(path).status_code in (302, 303, 307, 401), path


def test_many_runs_share_a_charts_point_budget() -> None:
    assert points_per_series(3) == 1000 and points_per_series(50) == 400 and points_per_series(10_000) == 200
