"""Monitoring: per monitored model, drift and data quality over the monitor's windows, live accuracy
once labels arrive, the alerts its rules raised, and each retrain trigger's timeline.

    GET  /monitoring                                  every model; ``?model=NAME`` one of them, with
                                                      the timelines of its newest retrain triggers
    GET  /monitoring/triggers/{trigger_id}/approve    the confirmation step of an approval
    POST /monitoring/triggers/{trigger_id}/approve    approve (deploy:write), then back (303)

The charts read what ``shipyard monitor`` stored for each window (``shipyard.store.monitoring``),
newest ``WINDOWS`` of them; nothing is computed again here. An approval goes through the same path
as ``POST /api/v1/triggers/{trigger_id}/approve`` and ``shipyard triggers approve``
(``shipyard.server.operations``): the monitoring policy decides, its audit event names the person.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from shipyard import audit
from shipyard.errors import NotFound
from shipyard.server.common import in_thread
from shipyard.server.ui.pages.rollouts import actor_of, when
from shipyard.server.ui.render import bad_request, not_found, refused, render

READ = "models:read"
WRITE = "deploy:write"
WINDOWS = 200        # windows per model drawn in the charts
TABLE_WINDOWS = 20   # of which the newest are listed
FEATURES = 12        # per-feature drift chart: the features that drifted most
ALERTS = 50
TRIGGERS = 20
TIMELINES = 10       # of which the newest show their timeline (on one model's page)
FEATURE = "feature."
QUALITY = ("null_share", "out_of_range_share", "unseen_category_share")
ACCURACY = ("accuracy", "f1", "estimated_accuracy", "rmse", "mae")
AWAITING = "awaiting_approval"


def _chart(title: str, xs: list[float], series: dict[str, list[Any]], ylabel: str) -> dict[str, Any] | None:
    """A time chart of the series that hold at least one value (None when none does)."""
    kept = [{"label": name, "y": ys} for name, ys in series.items() if any(v is not None for v in ys)]
    if not kept:
        return None
    return {"title": title, "x": xs, "series": kept, "time": True, "xlabel": "window end (UTC)", "ylabel": ylabel}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _charts(windows: list[dict[str, Any]]) -> dict[str, Any]:
    """Drift share, per-feature drift, data quality and live accuracy over the windows (oldest first)."""
    xs = [w["end"] for w in windows]
    metrics = [w["metrics"] for w in windows]

    def series(key: str) -> list[float | None]:
        return [_number(m.get(key)) for m in metrics]

    features = sorted({k[len(FEATURE):-len(".drift")] for m in metrics for k in m
                       if k.startswith(FEATURE) and k.endswith(".drift")})
    per_feature = {name: series(f"{FEATURE}{name}.drift") for name in features}
    top = sorted(per_feature, key=lambda name: -max((v for v in per_feature[name] if v is not None), default=0.0))
    return {
        "drift": _chart("Share of drifted features", xs, {"drift_share": series("drift_share")}, "share"),
        "features": _chart("Drift per feature", xs, {name: per_feature[name] for name in top[:FEATURES]},
                           "drift statistic"),
        "quality": _chart("Data quality", xs, {key: series(key) for key in QUALITY}, "share of rows"),
        "accuracy": _chart("Live performance", xs, {key: series(key) for key in ACCURACY}, "score"),
        "labelled": sum(int(m.get("labelled") or 0) for m in metrics),
        "features_shown": len(top[:FEATURES]), "features_total": len(features),
    }


def _window(w: Any) -> dict[str, Any]:
    m = w.metrics_dict
    return {"id": w.id, "version": w.version, "start": w.start, "end": w.end, "ended": when(w.end), "rows": w.rows,
            "verdict": w.verdict, "metrics": m, "drift_share": m.get("drift_share"),
            "drifted": m.get("drifted") or [], "error_rate": m.get("error_rate"),
            "quality": {key: m.get(key) for key in QUALITY if key in m},
            "accuracy": m.get("accuracy", m.get("estimated_accuracy")), "note": m.get("note", "")}


def _models(session: Any, only: str | None) -> list[str]:
    from sqlalchemy import select, union

    from shipyard.store import monitoring as repo

    if only:
        return [only]
    query = union(select(repo.MonitorWindow.model), select(repo.Trigger.model), select(repo.Firing.model))
    return sorted(session.scalars(query))


def _model(session: Any, model: str, timelines: int) -> dict[str, Any]:
    """One model's section; the ``timelines`` newest triggers get their timeline (each one reads the
    notification deliveries again, so the page of all models shows none)."""
    from shipyard.monitoring.timeline import timeline
    from shipyard.store import monitoring as repo

    windows = [_window(w) for w in reversed(repo.windows(session, model, limit=WINDOWS))]
    alerts = [{**f.to_dict(), "when": when(f.at)} for f in repo.firings(session, model, limit=ALERTS)]
    triggers = []
    for i, t in enumerate(repo.triggers(session, model, limit=TRIGGERS)):
        events = [{**e, "when": when(e["at"])} for e in timeline(session, t)] if i < timelines else None
        triggers.append({**t.to_dict(), "created": when(t.created_at), "timeline": events,
                         "awaiting": t.state == AWAITING})
    return {"name": model, "windows": list(reversed(windows[-TABLE_WINDOWS:])), "charts": _charts(windows),
            "alerts": alerts, "triggers": triggers, "latest": windows[-1] if windows else None}


def _overview(ws: Any, only: str | None) -> list[dict[str, Any]]:
    with ws.store.read() as session:
        return [_model(session, name, TIMELINES if only else 0) for name in _models(session, only)]


async def monitoring_page(request: Request) -> Response:
    """GET /monitoring: every monitored model, or ``?model=NAME``."""
    only = request.query_params.get("model") or None
    models = await in_thread(_overview, request.app.state.workspace, only)
    if only and not any(m["windows"] or m["alerts"] or m["triggers"] for m in models):
        return not_found(request, f"monitoring data for model {only!r}")
    approved = request.query_params.get("approved", "")
    return render(request, "monitoring.html", {"models": models, "only": only,
                                                "approved": approved if approved.isdigit() else None},
                  nav="/monitoring")


def _trigger(ws: Any, trigger_id: int) -> dict[str, Any] | None:
    from shipyard.store import monitoring as repo

    with ws.store.read() as session:
        found = session.get(repo.Trigger, trigger_id)
        return {**found.to_dict(), "created": when(found.created_at)} if found is not None else None


def _approve(ws: Any, trigger_id: int, actor: str) -> dict[str, Any]:
    """Approve as ``actor`` through the operations the API uses (one path)."""
    from shipyard.server.operations import approve

    with audit.acting_as(actor):
        return approve(ws, trigger_id)


async def approve_trigger(request: Request) -> Response:
    """GET: confirm the approval of a trigger waiting for a person; POST: approve it (audited)."""
    from shipyard.server.operations import WrongState

    raw = request.path_params["trigger_id"]
    if not raw.isdigit():
        return bad_request(request, f"trigger_id {raw!r} is not a trigger number")
    ws = request.app.state.workspace
    trigger = await in_thread(_trigger, ws, int(raw))
    if trigger is None:
        return not_found(request, f"trigger #{raw}")
    if request.method == "GET":
        return render(request, "monitoring_confirm.html", {"t": trigger, "awaiting": trigger["state"] == AWAITING},
                      nav="/monitoring")
    try:
        await in_thread(_approve, ws, int(raw), actor_of(request))
    except NotFound:
        return not_found(request, f"trigger #{raw}")
    except WrongState as exc:
        return refused(request, f"cannot approve: {exc.message}", nav="/monitoring")
    return RedirectResponse(f"/monitoring?model={quote(trigger['model'], safe='')}&approved={raw}", status_code=303)


routes = [
    Route("/monitoring", monitoring_page, methods=["GET"]),
    Route("/monitoring/triggers/{trigger_id}/approve", approve_trigger, methods=["GET", "POST"]),
]
permissions = {"/monitoring": READ, "/monitoring/triggers/{trigger_id}/approve": WRITE}
