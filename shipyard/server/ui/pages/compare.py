"""``/compare?runs=a,b,c``: 2 to 50 runs side by side. Params (only those that differ unless
``?all=1``), newest metric values (searchable, capped), overlay charts of chosen metrics (one series
per run, each downsampled on the server to at most 1,000 points, fewer when many runs share a
chart, keeping each bucket's min and max) and
parallel coordinates over chosen axes (an SVG drawn by the server).

The URL holds every choice: ``runs`` (comma-separated or repeated, as the runs table's checkboxes
send them), ``metric`` (charts, repeatable), ``axis`` (``params.<key>`` or ``metrics.<key>``,
repeatable), ``all`` and ``mq``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.server.common import in_thread
from shipyard.server.ui.pages import _charts, _parallel
from shipyard.server.ui.pages.runs import number
from shipyard.server.ui.render import bad_request, not_found, render
from shipyard.store import run_views as views
from shipyard.store.runs import Run
from shipyard.tracking.downsample import DEFAULT_LIMIT

MIN_RUNS, MAX_RUNS = 2, 50
MAX_KEYS = 200
MAX_CHARTS = 6
DEFAULT_CHARTS = 3
MAX_AXES = 12
DEFAULT_AXES = 6


def points_per_series(n_runs: int) -> int:
    """Points a chart keeps per run: 1,000 for a few runs, fewer for many (50 runs: 400), so one
    chart stays near 20,000 points and a page of charts well under a few MB."""
    return max(200, min(DEFAULT_LIMIT, 20_000 // max(1, n_runs)))


def run_ids(request: Request) -> list[str]:
    """The run ids of ``?runs=`` (comma-separated or repeated), in order, once each."""
    found = [part.strip() for given in request.query_params.getlist("runs") for part in given.split(",")]
    return list(dict.fromkeys(p for p in found if p))


def _differs(values: dict[str, Any], ids: list[str]) -> bool:
    seen = {repr(values.get(rid)) for rid in ids}
    return len(seen) > 1


def _axes(request: Request, differing: list[str], metric_keys: list[str]) -> list[str]:
    chosen = [a for a in dict.fromkeys(request.query_params.getlist("axis")) if a][:MAX_AXES]
    if chosen:
        return chosen
    default = [f"params.{k}" for k in differing][:DEFAULT_AXES - 2]
    return default + [f"metrics.{k}" for k in metric_keys if not k.startswith("system/")][:DEFAULT_AXES - len(default)]


def load(request: Request, ids: list[str]) -> dict[str, Any]:
    """Everything the page shows but the charts (in a worker thread); ``missing`` lists unknown ids."""
    qp = request.query_params
    contains = qp.get("mq", "")[:250]
    with request.app.state.workspace.store.read() as session:
        rows = {r.id: r for r in session.scalars(select(Run).where(Run.id.in_(ids)))}
        missing = [rid for rid in ids if rid not in rows]
        if missing:
            return {"missing": missing}
        runs = [(rid, rows[rid].name or rid[:8]) for rid in ids]
        param_keys, _ = views.keys_page(session, "params", limit=MAX_KEYS, run_ids=ids)
        params = views.values_of(session, "params", ids, param_keys)
        metric_keys, _ = views.keys_page(session, "metrics", contains=contains, limit=MAX_KEYS, run_ids=ids)
        metrics = views.values_of(session, "metrics", ids, metric_keys)
        n_metrics = views.count_keys(session, "metrics", ids)
        differing = [k for k in param_keys if _differs(params[k], ids)]
        chosen = [m for m in dict.fromkeys(qp.getlist("metric")) if m][:MAX_CHARTS]
        if not chosen:
            chosen = [k for k in metric_keys if not k.startswith("system/")][:DEFAULT_CHARTS]
        axes = _axes(request, differing, metric_keys)
        axis_values: dict[str, dict[str, Any]] = {}
        for kind, read in (("params", params), ("metrics", metrics)):  # read again only keys not listed above
            keys = [a.split(".", 1)[1] for a in axes if a.startswith(kind + ".")]
            more = views.values_of(session, kind, ids, [k for k in keys if k not in read])
            for key in keys:
                axis_values[f"{kind}.{key}"] = read[key] if key in read else more[key]
    show_all = qp.get("all") == "1"
    shown_params = param_keys if show_all else differing
    return {
        "missing": [], "runs": runs, "rows": rows, "show_all": show_all, "n_params": len(param_keys),
        "params": [(k, [number(params[k].get(rid)) for rid in ids], k in differing) for k in shown_params],
        "metrics": [(k, [number(metrics[k].get(rid)) for rid in ids]) for k in metric_keys],
        "n_metrics": n_metrics, "mq": contains, "chosen": chosen, "axes": axes,
        "chart_urls": [(key, "/compare/chart?" + urlencode([("runs", ",".join(ids)), ("metric", key)])) for key in chosen],
        "parallel": _parallel.parallel(axes, runs, axis_values),
        "palette": _parallel.PALETTE, "toggle_url": _toggle(request, not show_all),
    }


def _toggle(request: Request, show_all: bool) -> str:
    items = [(k, v) for k, v in request.query_params.multi_items() if k != "all"]
    return "/compare?" + urlencode(items + ([("all", "1")] if show_all else []))


async def compare_page(request: Request) -> Response:
    """The comparison of 2 to 50 runs; a 400 page for fewer or more, a 404 page naming unknown ids."""
    ids = run_ids(request)
    if not MIN_RUNS <= len(ids) <= MAX_RUNS:
        return bad_request(request, f"compare takes {MIN_RUNS} to {MAX_RUNS} runs; ?runs= names {len(ids)}"
                                    " (select them with the checkboxes on the runs page)")
    if any(len(rid) > 32 for rid in ids):
        return not_found(request, "run " + repr(next(rid for rid in ids if len(rid) > 32)))
    data = await in_thread(load, request, ids)
    if data["missing"]:
        return not_found(request, "run " + ", ".join(repr(m) for m in data["missing"]))
    return render(request, "compare.html", data, nav="/runs")


async def compare_chart(request: Request) -> Response:
    """One overlay chart (``?runs=a,b&metric=loss``) as a fragment: the page loads each chart when it
    scrolls into view, so reading 50 long histories never holds up the tables."""
    ids = run_ids(request)
    key = request.query_params.get("metric", "")
    if not MIN_RUNS <= len(ids) <= MAX_RUNS or not key or len(key) > 250:
        return bad_request(request, f"a chart takes 2 to 50 runs and one metric; got {len(ids)} runs and metric {key!r}")

    def work() -> dict[str, Any] | None:
        store = request.app.state.workspace.store
        computed: list[views.Envelope] = []
        with store.read() as session:
            names = dict(session.execute(select(Run.id, Run.name).where(Run.id.in_(ids))).all())
            if len(names) != len(ids):
                return None
            runs = [(rid, names[rid] or rid[:8]) for rid in ids]
            chart = _charts.metric_chart(session, key, runs, limit=points_per_series(len(runs)), computed=computed)
        _charts.keep(store, computed)
        return chart

    chart = await in_thread(work)
    if chart is None:
        return not_found(request, "run among " + ", ".join(repr(i) for i in ids))
    return render(request, "compare_chart.html", {"chart": chart, "chart_json": _charts.as_attribute})


routes = [Route("/compare", compare_page, methods=["GET"]), Route("/compare/chart", compare_chart, methods=["GET"])]
permissions = {"/compare": "runs:read", "/compare/chart": "runs:read"}
