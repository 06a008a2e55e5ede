"""``/data``, ``/data/{dataset}`` and ``/data/{dataset}/{version}`` over real dataset versions (files
added with ``data.versions.add_dataset``): versions, profile, schema, the drift report and its
charts as ``shipyard data diff`` computes them; empty, 404, 400 and 403."""

from __future__ import annotations

import html
import json
import random
import re
from pathlib import Path

import pytest

from shipyard.data.versions import add_dataset, diff_versions
from shipyard.hashing import Hasher, StatCache
from shipyard.store.datasets import get_version


def write_points(root: Path, shift: float, kinds: str) -> None:
    rng = random.Random(7)
    lines = ["x,y,kind"] + [f"{rng.gauss(shift, 1):.4f},{rng.random():.4f},{rng.choice(kinds)}" for _ in range(400)]
    (root / "points.csv").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def versions(ui_app):  # type: ignore[no-untyped-def]
    """points@1 and points@2 (x shifted by 3, a new category), as ``shipyard data add`` records them."""
    ws = ui_app.workspace
    root = ws.project.root
    # a hasher of our own: the workspace's is closed by the app's lifespan thread, and SQLite
    # connections stay in the thread that opened them
    hasher = Hasher(root, StatCache(ws.project.stat_cache_path))
    for shift, kinds in ((0.0, "ab"), (3.0, "abc")):
        write_points(root, shift, kinds)
        assert add_dataset(ws.store, ws.objects, hasher, "points.csv", name="points").created
    hasher.cache.close()
    with ws.store.read() as session:
        return get_version(session, "points@1"), get_version(session, "points@2")


def test_no_datasets_yet(ui_app) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/data")
    assert page.status_code == 200 and 'id="data-empty"' in page.text and "shipyard data add" in page.text


def test_unknown_names_are_404_and_a_bad_query_is_400(ui_app, versions) -> None:  # type: ignore[no-untyped-def]
    for path in ("/data/nope", "/data/nope/1", "/data/points/3", "/data/points/latest"):
        assert ui_app.client.get(path).status_code == 404, path
    bad = ui_app.client.get("/data/points/2?against=one")
    assert bad.status_code == 400 and "query parameter &#39;against&#39;" in bad.text
    missing = ui_app.client.get("/data/points/2?against=9")
    assert missing.status_code == 400 and "has no version 9" in missing.text


def test_who_may_see_data(ui_app, versions) -> None:  # type: ignore[no-untyped-def]
    for path in ("/data", "/data/points", "/data/points/2"):
        assert ui_app.outsider().get(path).status_code == 403, path
        assert ui_app.viewer().get(path).status_code == 200, path


def test_datasets_and_versions(ui_app, versions) -> None:  # type: ignore[no-untyped-def]
    first, second = versions
    listing = ui_app.client.get("/data").text
    assert re.search(r'data-dataset="points">.*?<td class="num">2</td>.*?href="/data/points/2">points@2<', listing, re.S)
    page = ui_app.client.get("/data/points").text
    assert page.index('data-version="2"') < page.index('data-version="1"')  # newest first
    assert f'title="{second.oid}"' in page and f'title="{first.oid}"' in page
    chart = json.loads(html.unescape(re.search(r"id=\"dataset-rows-chart\" data-chart='([^']*)'", page).group(1)))  # type: ignore[union-attr]
    assert chart["x"] == [1, 2] and chart["series"][0]["y"] == [400, 400]


def test_version_page_drift_against_the_previous_version(ui_app, versions) -> None:  # type: ignore[no-untyped-def]
    first, second = versions
    page = ui_app.client.get("/data/points/2").text
    expected = diff_versions(ui_app.workspace.objects, first, second)
    assert 'data-reference="points@1"' in page
    for column in expected["columns"]:
        row = re.search(rf'<tr class="drift-column" data-column="{column["column"]}" data-verdict="([A-Z]+)">(.*?)</tr>',
                        page, re.S)
        assert row, column
        assert row.group(1) == column["verdict"]
        assert f'<td class="num drift-value">{column["value"]}</td>' in row.group(2)
    assert re.search(r'data-column="x" data-verdict="DRIFT"', page)  # a shift of 3 sigma drifts
    spec = re.search(r"<div class=\"chart drift-chart\" data-column=\"x\" data-chart='([^']*)'", page)
    assert spec, page
    chart = json.loads(html.unescape(spec.group(1)))
    assert [s["label"] for s in chart["series"]] == ["points@1", "points@2"]
    assert len(chart["x"]) == len(chart["series"][0]["y"]) <= 102 and chart["x"][0] == 0 and chart["x"][-1] == 100
    assert chart["series"][1]["y"][-1] > chart["series"][0]["y"][-1] + 2  # the shifted maximum
    shares = re.search(r'<div class="card drift-shares" data-column="kind">.*?</div>', page, re.S)
    assert shares and "<td>c</td>" in shares.group(0)  # the new category, with its share in each version
    assert re.search(r'<tr class="profile-column" data-column="x">', page)
    assert "kind: {dtype: string" in html.unescape(re.search(r'<pre class="preview" id="dataset-schema">(.*?)</pre>',
                                                             page, re.S).group(1))  # type: ignore[union-attr]


def test_first_version_has_nothing_to_compare(ui_app, versions) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/data/points/1").text
    assert 'id="dataset-drift-empty"' in page and 'id="dataset-drift"' not in page
    against = ui_app.client.get("/data/points/1?against=2").text  # any other version, chosen in the URL
    assert 'data-reference="points@2"' in against
