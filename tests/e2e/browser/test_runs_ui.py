"""The runs pages in Chromium: search with OR, the column picker and the URL, selecting runs to
compare, a chart that actually draws, and the MLflow client's run link."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.e2e.browser.conftest import RUNS, Site, shot

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("browser")]
ROWS = "#runs-table tbody tr.run-row"
# the first series colour of static/shipyard.js's palette (#1f5fbf)
SERIES_RGB = (31, 95, 191)
COUNT_COLOURED = """(canvas, rgb) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let n = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] > 200 && Math.abs(data[i] - rgb[0]) < 40 && Math.abs(data[i + 1] - rgb[1]) < 40
        && Math.abs(data[i + 2] - rgb[2]) < 40) n++;
  }
  return n;
}"""


def shown_ids(page: Any) -> set[str]:
    return set(page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.runId)"))


def open_runs(page: Any, site: Site) -> None:
    """The runs table of the seeded experiment, once it shows every run."""
    page.goto(f"/runs?experiment={site.experiment_id}")
    expect(page.locator(ROWS)).to_have_count(len(RUNS))


def expect_filter_error(page: Any) -> None:
    """The malformed filter ``... OR OR`` is named in the error, and no table is shown."""
    expect(page.locator("#runs-error")).to_contain_text("OR")
    expect(page.locator(ROWS)).to_have_count(0)


def series_pixels(page: Any, chart: str) -> int:
    """Pixels of the first series' colour on the chart's canvas (uPlot draws lines, not DOM)."""
    canvas = page.locator(f"{chart} canvas").first
    expect(canvas).to_be_attached()
    return int(canvas.evaluate(COUNT_COLOURED, list(SERIES_RGB)))


def test_search_with_or_shows_exactly_the_matching_runs(admin: Any, site: Site) -> None:
    page = admin
    open_runs(page, site)
    shot(page, "runs")
    page.fill("input[name=filter]", "params.model = 'svm' OR (params.model = 'knn' AND tags.team = 'b')")
    page.press("input[name=filter]", "Enter")
    expected = {site.runs[n] for n in ("svm-a", "svm-b", "knn-b")}
    expect(page.locator(ROWS)).to_have_count(len(expected))
    assert shown_ids(page) == expected
    expect(page).to_have_url(re.compile(r"filter=params\.model"))
    page.reload()  # the filter lives in the URL
    expect(page.locator(ROWS)).to_have_count(len(expected))
    assert shown_ids(page) == expected
    # a malformed filter (opened as a link) names the token it could not parse, and shows no table
    page.goto("/runs?filter=" + quote("params.model = 'svm' OR OR"))
    expect_filter_error(page)


def test_a_malformed_filter_typed_in_the_box_shows_its_error(admin: Any, site: Site) -> None:
    page = admin
    open_runs(page, site)
    page.fill("input[name=filter]", "params.model = 'svm' OR OR")
    page.press("input[name=filter]", "Enter")
    expect_filter_error(page)


def test_picked_columns_change_the_url_and_the_table_and_survive_a_reload(admin: Any, site: Site) -> None:
    page = admin
    open_runs(page, site)
    page.click("#column-picker summary")
    page.select_option("#column-kind", "params")
    page.fill("#column-search", "mod")
    page.locator("#column-choices input[value='params.model']").check()
    page.locator("#column-picker input[value='metrics.loss']").uncheck()
    page.click("#column-picker button[type=submit]")
    header = page.locator("#runs-table th[data-column='params.model']")
    expect(header).to_be_visible()
    expect(page.locator("#runs-table th[data-column='metrics.loss']")).to_have_count(0)
    expect(page).to_have_url(re.compile(r"col=params\.model"))
    assert "col=metrics.loss" not in page.url
    page.reload()
    expect(header).to_be_visible()
    expect(page.locator("#runs-table th[data-column='metrics.loss']")).to_have_count(0)
    svm = page.locator(f"{ROWS}[data-run-id='{site.runs['svm-a']}']")
    expect(svm).to_contain_text("svm")


def test_filling_the_column_picker_leaves_the_address_alone(admin: Any, site: Site) -> None:
    page = admin
    page.goto(f"/runs?experiment={site.experiment_id}")
    page.click("#column-picker summary")
    expect(page.locator("#column-choices input[value='metrics.accuracy']")).to_be_attached()
    expect(page).to_have_url(re.compile(rf"/runs\?experiment={site.experiment_id}$"))


def test_selected_runs_open_the_compare_page_with_an_overlay_chart(admin: Any, site: Site) -> None:
    page = admin
    page.goto(f"/runs?experiment={site.experiment_id}")
    chosen = [site.runs[n] for n in ("svm-a", "rf-b", "mlp-b")]
    for run_id in chosen:
        page.locator(f"{ROWS}[data-run-id='{run_id}'] input[type=checkbox]").check()
    page.click("#compare-button")
    page.wait_for_url(re.compile(r"/compare\?"))
    assert all(run_id in page.url for run_id in chosen)
    for name in ("svm-a", "rf-b", "mlp-b"):
        expect(page.locator("main")).to_contain_text(name)
    # each overlay chart loads when it scrolls into view
    page.locator("#compare-charts").scroll_into_view_if_needed()
    page.wait_for_selector("#compare-charts .chart[data-drawn] canvas")
    assert series_pixels(page, "#compare-charts .chart[data-drawn]") > 50
    shot(page, "compare")


def test_a_run_page_draws_its_metric_chart(admin: Any, site: Site) -> None:
    page = admin
    page.goto(f"/runs/{site.runs['mlp-b']}")
    expect(page.locator("h1")).to_contain_text("mlp-b")
    chart = "#run-charts .chart[data-metric='loss']"
    page.wait_for_selector(f"{chart}[data-drawn] canvas")
    # the loss curve is drawn: many pixels of the series colour, not only axes and grid
    assert series_pixels(page, chart) > 100
    shot(page, "run")


def test_the_mlflow_clients_run_link_opens_the_run_page(admin: Any, site: Site) -> None:
    page = admin
    run_id = site.runs["rf-a"]
    page.goto(f"/#/experiments/{site.experiment_id}/runs/{run_id}")
    page.wait_for_url(re.compile(rf"/runs/{run_id}$"))
    expect(page.locator("h1")).to_contain_text("rf-a")
    page.goto(f"/#/experiments/{site.experiment_id}")
    page.wait_for_url(re.compile(rf"/runs\?experiment={site.experiment_id}$"))
    expect(page.locator(ROWS)).to_have_count(len(RUNS))
