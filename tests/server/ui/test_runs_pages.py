"""/runs: keyset pages, sort, the CLI's filter language (OR, parentheses), experiment filter, the
column picker with 12,000 metric keys, CSV export, and who may see it."""

from __future__ import annotations

import csv
import io
import re

import pytest

from shipyard.store import runs as repo
from shipyard.store.runs import MetricValue
from shipyard.tracking import service

N_MAIN = 120
MANY_KEYS = 12_000


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="run-row" data-run-id="([0-9a-f]+)"', html)


def next_url(html: str) -> str | None:
    found = re.search(r'id="next-page" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


@pytest.fixture(scope="module")
def seeded(ui_app):  # type: ignore[no-untyped-def]
    """120 runs in exp-a (acc = i/100; every 10th without acc; start times tie in pairs), three
    runs in exp-b for the OR filter, one run with 12,000 metric keys."""
    made: dict[str, object] = {"a": []}
    with ui_app.store.write() as s:
        for i in range(N_MAIN):
            rid = service.create_run(s, experiment="exp-a", name=f"a{i:03d}", start_time=1_700_000_000_000 + i // 2)
            repo.log_params(s, rid, {"model": "svm" if i % 2 else "tree", "c": "x"})
            if i % 10:
                repo.log_metrics(s, rid, [MetricValue("acc", i / 100, step=0)])
            made["a"].append(rid)  # type: ignore[union-attr]
        for name, acc, loss, c in (("b-one", 1.0, 0.1, "y"), ("b-loss", 0.2, 3.0, "x"), ("b-none", 0.3, 3.0, "y")):
            rid = service.create_run(s, experiment="exp-b", name=name, start_time=1_600_000_000_000)
            repo.log_params(s, rid, {"c": c})
            repo.log_metrics(s, rid, [MetricValue("acc", acc), MetricValue("loss", loss)])
            made[name] = rid
        wide = service.create_run(s, experiment="wide", name="wide", start_time=1_500_000_000_000)
        repo.log_metrics(s, wide, [MetricValue(f"k{j:05d}", float(j)) for j in range(MANY_KEYS)])
        made["wide"] = wide
        made["exp_a_id"] = repo.experiment_by_name(s, "exp-a", create=False).id
    return made


def test_pages_of_50_walk_every_run_once_with_the_cursor_in_the_url(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    url: str | None = "/runs?experiment=exp-a"
    seen: list[str] = []
    pages = 0
    while url:
        page = ui_app.client.get(url)
        assert page.status_code == 200, page.text
        ids = row_ids(page.text)
        assert len(ids) <= 50
        seen += ids
        pages += 1
        url = next_url(page.text)
        if url:
            assert "cursor=" in url and "offset" not in url
    assert pages == 3
    assert sorted(seen) == sorted(seeded["a"]) and len(set(seen)) == len(seen)


def test_sort_by_metric_keeps_order_across_pages_and_puts_runs_without_it_last(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    url: str | None = "/runs?experiment=exp-a&sort=metrics.acc&dir=asc&col=metrics.acc"
    values: list[str] = []
    while url:
        page = ui_app.client.get(url)
        assert page.status_code == 200
        values += re.findall(r'<td class="num">([^<]*)</td></tr>', page.text)
        url = next_url(page.text)
    assert len(values) == N_MAIN
    numbers = [float(v) for v in values if v]
    assert numbers == sorted(numbers) and len(numbers) == N_MAIN - N_MAIN // 10
    assert values[-(N_MAIN // 10):] == [""] * (N_MAIN // 10)


def test_or_and_parentheses_filter_end_to_end(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    text = "metrics.acc = 1 OR (metrics.loss > 2 AND params.c = 'x')"
    page = ui_app.client.get("/runs", params={"filter": text})
    assert page.status_code == 200
    assert sorted(row_ids(page.text)) == sorted([seeded["b-one"], seeded["b-loss"]])
    assert 'value="metrics.acc = 1 OR (metrics.loss &gt; 2 AND params.c = &#39;x&#39;)"' in page.text


def test_a_malformed_filter_is_a_400_page_naming_the_token(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/runs", params={"filter": "metrics.acc > 0.5 AND params.c = x"})
    assert page.status_code == 400
    assert "compares with a quoted string, got &#39;x&#39;" in page.text
    assert "column 34" in page.text


@pytest.mark.parametrize(("query", "needle"), [
    ({"col": "bogus.x"}, "column &#39;bogus.x&#39;"),
    ({"sort": "metrics."}, "column &#39;metrics.&#39;"),
    ({"dir": "up"}, "dir &#39;up&#39;"),
    ({"cursor": "not-a-cursor"}, "cursor &#39;not-a-cursor&#39;"),
])
def test_bad_parameters_are_400_pages_naming_them(ui_app, query, needle) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/runs", params=query)
    assert page.status_code == 400
    assert needle in page.text


def test_experiment_by_id_as_mlflow_links_give_it_or_by_name(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    by_id = ui_app.client.get(f"/runs?experiment={seeded['exp_a_id']}")
    by_name = ui_app.client.get("/runs?experiment=exp-a")
    assert row_ids(by_id.text) == row_ids(by_name.text) and len(row_ids(by_id.text)) == 50
    assert row_ids(ui_app.client.get("/runs?experiment=no-such").text) == []


def test_htmx_gets_only_the_table_fragment(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/runs?experiment=exp-b", headers={"HX-Request": "true"})
    assert page.status_code == 200
    assert "<html" not in page.text and 'id="runs-table"' in page.text and len(row_ids(page.text)) == 3
    sorted_page = ui_app.client.get("/runs?sort=metrics.acc&dir=asc", headers={"HX-Request": "true"}).text
    # the swapped fragment carries the sort for the filter form, and the CSV link of the current view
    assert '<input type="hidden" name="sort" form="runs-form" value="metrics.acc">' in sorted_page
    assert 'id="csv-link" href="/runs.csv?sort=metrics.acc&amp;dir=asc"' in sorted_page
    restore = ui_app.client.get("/runs", headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.text  # a history restore gets the whole page


def test_12000_metric_keys_the_picker_pages_and_searches_them(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    page = ui_app.client.get("/runs?experiment=wide")
    assert page.status_code == 200
    assert page.text.count('name="col"') < 30 and len(page.text) < 60_000
    keys = ui_app.client.get("/runs-columns?kind=metrics&q=k0")
    assert keys.status_code == 200
    listed = re.findall(r'value="metrics\.(k\d+)"', keys.text)
    assert listed == [f"k{j:05d}" for j in range(50)]
    more = re.search(r'hx-get="([^"]+)"', keys.text).group(1).replace("&amp;", "&")  # type: ignore[union-attr]
    assert re.findall(r'value="metrics\.(k\d+)"', ui_app.client.get(more).text)[0] == "k00050"
    found = ui_app.client.get("/runs-columns?kind=metrics&q=k1199")
    assert re.findall(r'value="metrics\.(k\d+)"', found.text) == [f"k1199{d}" for d in range(10)]
    assert ui_app.client.get("/runs-columns?kind=bogus").status_code == 400
    chosen = ui_app.client.get("/runs?experiment=wide&col=metrics.k11999&col=metrics_max.k00007&col=cpu")
    assert "11999" in chosen.text and re.search(r'<td class="num">7</td>', chosen.text)


def test_csv_streams_every_run_of_the_filter(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    response = ui_app.client.get("/runs.csv?experiment=exp-a&col=metrics.acc&col=params.model")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][-2:] == ["metrics.acc", "params.model"]
    assert len(rows) == N_MAIN + 1 and {r[0] for r in rows[1:]} == set(seeded["a"])
    bad = ui_app.client.get("/runs.csv", params={"filter": "metrics.acc >"})
    assert bad.status_code == 400 and "ends too early" in bad.text


def test_empty_project_without_auth(ui_app_noauth) -> None:  # type: ignore[no-untyped-def]
    page = ui_app_noauth.client.get("/runs")
    assert page.status_code == 200 and 'id="runs-empty"' in page.text
    assert ui_app_noauth.client.get("/runs.csv").text.count("\n") == 1


def test_who_may_see_the_runs_pages(ui_app, seeded) -> None:  # type: ignore[no-untyped-def]
    for path in ("/runs", "/runs.csv", "/runs-columns"):
        assert ui_app.viewer().get(path).status_code == 200, path
        assert ui_app.outsider().get(path).status_code == 403, path
        assert ui_app.anonymous().get(path).status_code in (302, 303, 307, 401), path


@pytest.mark.postgres
def test_the_run_pages_on_postgresql(pg_url, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The same pages on a PostgreSQL store: OR filter, keyset pages over a sort with missing values,
    the key search (LIKE with an escaped '_'), CSV, one run, compare."""
    from shipyard.server.ui.pages import runs as runs_module
    from tests.server.ui.conftest import make_ui_app

    monkeypatch.setenv("SHIPYARD_STORE", pg_url)
    monkeypatch.setattr(runs_module, "PAGE_SIZE", 3)  # 7 runs: three pages
    ui = make_ui_app(tmp_path / "proj", auth=False)
    try:
        ids = []
        with ui.store.write() as s:
            for i in range(7):
                rid = service.create_run(s, experiment="pg", name=f"p{i}", start_time=1_000 + i // 2)
                repo.log_params(s, rid, {"c": "x" if i % 2 else "y"})
                if i % 3:
                    repo.log_metrics(s, rid, [MetricValue("my_acc", i / 10), MetricValue("myXacc", 1.0)])
                ids.append(rid)
        url: str | None = "/runs?experiment=pg&sort=metrics.my_acc&dir=desc&col=metrics.my_acc"
        seen: list[str] = []
        pages = 0
        while url:
            page = ui.client.get(url)
            assert page.status_code == 200, page.text
            seen += row_ids(page.text)
            pages += 1
            url = next_url(page.text)
        assert sorted(seen) == sorted(ids) and pages == 3
        assert seen[-3:] == sorted([ids[0], ids[3], ids[6]])  # without the metric: last, in run id order
        text = "metrics.my_acc = 0.5 OR (metrics.my_acc > 0.3 AND params.c = 'y')"
        assert sorted(row_ids(ui.client.get("/runs", params={"filter": text}).text)) == sorted([ids[4], ids[5]])
        keys = ui.client.get("/runs-columns?kind=metrics&q=my_").text
        assert re.findall(r'value="metrics\.([\w]+)"', keys) == ["my_acc"]  # '_' is a character, not a wildcard
        assert ui.client.get("/runs.csv?experiment=pg").text.count("\n") == 8
        assert ui.client.get(f"/runs/{ids[1]}").status_code == 200
        assert ui.client.get(f"/compare?runs={ids[1]},{ids[2]}").status_code == 200
    finally:
        ui.close()
