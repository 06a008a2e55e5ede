"""``/``: the project at a glance: the last pipeline run and its stages, each model's champion and
its gate verdict, rollouts in progress, monitors whose rule holds now, and recent alerts, each
linking to its page. A project with nothing yet says which command starts it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from shipyard.rollout.controller import state_of
from shipyard.rules import ACCEPT
from shipyard.server.ui.pages.models import model_summaries
from shipyard.server.ui.pages.pipeline import last_run
from shipyard.server.ui.pages.rollouts import when
from shipyard.server.ui.render import render
from shipyard.store import monitoring as monitoring_repo
from shipyard.store import serving as serving_repo

RECENT_ALERTS = 10


def rollouts(session: Session) -> list[dict[str, Any]]:
    """Deployments running or paused, with the candidate's traffic share the gateway routes now."""
    active = serving_repo.active_deployments(session)
    routing = serving_repo.routing_tables(session, {d.model for d in active}) if active else {}
    out = []
    for d in active:
        table = routing.get(d.model) or {}
        weight = table.get("weight") if table.get("deployment") == d.id else None
        out.append({"id": d.id, "model": d.model, "candidate": d.candidate, "champion": d.champion,
                    "strategy": d.strategy, "state": state_of(d), "weight": weight})
    return out


def firing_monitors(session: Session) -> list[dict[str, Any]]:
    """Monitor rules whose condition held in the last window they saw (their streak is running)."""
    rows = session.scalars(select(monitoring_repo.RuleState).where(monitoring_repo.RuleState.streak > 0)
                           .order_by(monitoring_repo.RuleState.model, monitoring_repo.RuleState.rule))
    return [{"model": r.model, "rule": r.rule, "streak": r.streak, "last_fired": when(r.last_fired_at)} for r in rows]


def alerts(session: Session) -> list[dict[str, Any]]:
    """The newest rule firings the policy accepted (those are what alerted, rolled back or retrained)."""
    found = [f for f in monitoring_repo.firings(session, limit=RECENT_ALERTS * 3) if f.status == ACCEPT]
    return [{"id": f.id, "model": f.model, "rule": f.rule, "severity": f.severity, "reason": f.reason,
             "when": when(f.at)} for f in found[:RECENT_ALERTS]]


def home_page(request: Request) -> HTMLResponse:
    """The project's loop on one screen."""
    with request.app.state.workspace.store.read() as session:
        context = {"run": last_run(session), "models": model_summaries(session), "rollouts": rollouts(session),
                   "firing": firing_monitors(session), "alerts": alerts(session)}
    context["empty"] = context["run"] is None and not context["models"]
    return render(request, "home.html", context, nav="/")


routes = [Route("/", home_page, methods=["GET"])]
permissions = {"/": "runs:read"}
