"""``/data``: datasets and their versions; ``/data/{dataset}``: one dataset's versions;
``/data/{dataset}/{version}``: schema, profile, validation (warnings recorded when the version was
added, and the pipeline stages that validate its path with their last result), the drift report
against another version (``?against=N``, default the previous one) with a chart per numeric
column, and which runs and model versions read it.

Versions, profiles, drift and lineage come from ``shipyard.data`` as ``shipyard data list|show|diff|
used-by`` print them.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from shipyard.errors import InputError, NotFound, ShipyardError
from shipyard.server.ui.pages._charts import as_attribute
from shipyard.server.ui.render import bad_request, not_found, render
from shipyard.store import datasets as repo

VERDICT_CLASS = {"OK": "ok", "DRIFT": "bad", "WARN": "warn"}
CHART_POINTS = 100  # points per series in a column's quantile chart


def _number(x: float | None) -> float | None:
    """A JSON-safe number for a chart (NaN and infinities become gaps)."""
    return None if x is None or not math.isfinite(x) else round(float(x), 6)


def profile_rows(profile: Any) -> list[dict[str, Any]]:
    """Per column: kind, dtype, null rate and its distribution in a few numbers or top values."""
    from shipyard.data.profile import NumericColumn

    rows = []
    for name, col in profile.columns.items():
        row: dict[str, Any] = {"column": name, "kind": col.kind, "dtype": col.dtype, "count": col.count,
                               "null_rate": f"{col.null_rate:.1%}"}
        if isinstance(col, NumericColumn):
            row["detail"] = (f"mean {col.mean:.4g} · std {col.std:.4g} · min {col.min:.4g} · median "
                             f"{col.quantile(0.5):.4g} · max {col.max:.4g}") if col.count else "no values"
        else:
            top = sorted(col.top.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            row["detail"] = f"{col.n_unique} distinct · top " + ", ".join(f"{k} ({v})" for k, v in top)
        rows.append(row)
    return rows


def column_chart(name: str, reference: Any, current: Any, labels: tuple[str, str]) -> str | None:
    """A numeric column's quantile function in both versions, as the JSON a ``.chart`` draws (the
    template escapes it into the attribute)."""
    from shipyard.data.profile import PROBS, NumericColumn

    ref, cur = reference.columns.get(name), current.columns.get(name)
    if not isinstance(ref, NumericColumn) or not isinstance(cur, NumericColumn) or not (ref.quantiles and cur.quantiles):
        return None
    step = max(1, (len(PROBS) - 1) // CHART_POINTS)  # the sketch has ~1,000 points; a chart needs far fewer
    keep = sorted({*range(0, len(PROBS), step), len(PROBS) - 1})
    spec = {"title": name, "x": [round(float(PROBS[i]) * 100, 3) for i in keep], "xlabel": "percentile", "ylabel": name,
            "series": [{"label": labels[0], "y": [_number(ref.quantiles[i]) for i in keep]},
                       {"label": labels[1], "y": [_number(cur.quantiles[i]) for i in keep]}]}
    return as_attribute(spec)


def category_shares(name: str, reference: Any, current: Any) -> list[dict[str, Any]]:
    """A categorical column's top values with their share in both versions."""
    from shipyard.data.profile import CategoricalColumn

    ref, cur = reference.columns.get(name), current.columns.get(name)
    if not isinstance(ref, CategoricalColumn) or not isinstance(cur, CategoricalColumn):
        return []
    keys = sorted(set(ref.top) | set(cur.top), key=lambda k: -(ref.top.get(k, 0) + cur.top.get(k, 0)))[:10]
    return [{"value": k, "reference": f"{ref.top.get(k, 0) / (ref.count or 1):.1%}",
             "current": f"{cur.top.get(k, 0) / (cur.count or 1):.1%}"} for k in keys]


def datasets_page(request: Request) -> HTMLResponse:
    """Every dataset with its number of versions and its newest version."""
    with request.app.state.workspace.store.read() as session:
        versions = repo.list_versions(session)
    datasets: dict[str, dict[str, Any]] = {}
    for v in versions:  # ordered by name, then version: the last one seen is the newest
        entry = datasets.setdefault(v.name, {"name": v.name, "versions": 0})
        entry.update(versions=entry["versions"] + 1, newest=v, created=v.created_at.strftime("%Y-%m-%d %H:%M"))
    return render(request, "data.html", {"datasets": list(datasets.values())}, nav="/data")


def dataset_page(request: Request) -> HTMLResponse:
    """One dataset's versions (rows, columns, size, content id) and its row count over versions."""
    name = request.path_params["dataset"]
    with request.app.state.workspace.store.read() as session:
        versions = repo.list_versions(session, name)
    if not versions:
        return not_found(request, f"dataset {name!r}")
    chart = {"title": "rows per version", "x": [v.version for v in versions], "xlabel": "version", "ylabel": "rows",
             "series": [{"label": "rows", "y": [v.rows for v in versions]}]}
    return render(request, "data_dataset.html", {"name": name, "versions": list(reversed(versions)),
                                                 "chart": as_attribute(chart)}, nav="/data")


def validation_stages(request: Request, path: str) -> list[dict[str, Any]]:
    """Pipeline stages that run ``shipyard data validate`` on ``path``, with their last execution."""
    from shipyard.server.ui.pages.pipeline import context, execution_facts, last_executions

    try:
        dag = context(request).dag
    except ShipyardError:
        return []  # the pipeline page says what is wrong with the config
    names = [s.name for s in dag.stages.values()
             if any("data validate" in c for c in s.cmd) and any(d.rstrip("/") == path.rstrip("/") for d in s.deps)]
    with request.app.state.workspace.store.read() as session:
        last = last_executions(session, names)
    return [{"stage": n, "cmd": " && ".join(dag.stages[n].cmd),
             "last": execution_facts(last[n]) if n in last else None} for n in names]


def drift_view(objects: Any, reference: repo.DatasetVersion, current: repo.DatasetVersion,
               cur_profile: Any) -> dict[str, Any]:
    """``shipyard data diff`` of two versions, with a chart or a share table per column
    (``cur_profile``: the current version's profile, already loaded by the page)."""
    from shipyard.data.versions import diff_versions, load_profile

    diff = diff_versions(objects, reference, current)
    ref_profile = load_profile(objects, reference)
    labels = (reference.ref, current.ref)
    columns = [{**c, "cls": VERDICT_CLASS.get(c["verdict"], ""),
                "chart": column_chart(c["column"], ref_profile, cur_profile, labels),
                "shares": category_shares(c["column"], ref_profile, cur_profile)} for c in diff["columns"]]
    drifted = [c["column"] for c in columns if c["verdict"] == "DRIFT"]
    return {**diff, "columns": columns, "drifted": drifted,
            "share": len(drifted) / len(columns) if columns else 0.0}


def version_page(request: Request) -> HTMLResponse:
    """One dataset version: schema, profile, validation, drift against another version, lineage."""
    from shipyard.data.versions import load_profile, used_by

    name, version = request.path_params["dataset"], request.path_params["version"]
    against = request.query_params.get("against")
    if not version.isdigit():
        return not_found(request, f"version {version!r} of dataset {name!r} (versions are numbers)")
    if against is not None and not against.isdigit():
        return bad_request(request, f"query parameter 'against': {against!r} is not a version number")
    objects = request.app.state.workspace.objects
    with request.app.state.workspace.store.read() as session:
        try:
            current = repo.get_version(session, f"{name}@{version}")
        except NotFound:
            return not_found(request, f"version {version} of dataset {name!r}")
        reference = None
        wanted = int(against) if against is not None else current.version - 1
        if wanted >= 1 and wanted != current.version:
            try:
                reference = repo.get_version(session, f"{name}@{wanted}")
            except NotFound:
                if against is not None:
                    return bad_request(request, f"query parameter 'against': dataset {name!r} has no version {wanted}")
        lineage = used_by(session, current)
        others = [v.version for v in repo.list_versions(session, name) if v.version != current.version]
    try:
        profile, problem = load_profile(objects, current), None
    except InputError as exc:
        profile, problem = None, exc.message
    drift = drift_view(objects, reference, current, profile) if reference is not None and profile is not None else None
    return render(request, "data_version.html", {
        "v": current, "columns": current.column_list(), "warnings": json.loads(current.warnings or "[]"),
        "profile": profile_rows(profile) if profile else [], "problem": problem, "drift": drift,
        "others": others, "validation": validation_stages(request, current.path), "lineage": lineage,
    }, nav="/data")


routes = [Route("/data", datasets_page, methods=["GET"]),
          Route("/data/{dataset}", dataset_page, methods=["GET"]),
          Route("/data/{dataset}/{version}", version_page, methods=["GET"])]
permissions = {"/data": "runs:read", "/data/{dataset}": "runs:read", "/data/{dataset}/{version}": "runs:read"}
