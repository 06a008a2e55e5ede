"""Rollouts: deployments and rollouts in progress, one rollout's weights, analyses and steps, and the
actions a person may take on it (pause, resume, promote, abort, rollback).

    GET  /rollouts                    what each model serves, rollouts in progress, recent rollouts
                                      (polled like a rollout's page while one is in progress)
    GET  /rollouts/{model}            the model's newest rollout (``?deployment=ID`` another one);
                                      an htmx poll of the same URL gets only the live part, every 2 s
                                      while the rollout runs (286 stops the poll once it has ended)
    GET  /rollouts/{model}/{action}   the confirmation step: what the action will do
    POST /rollouts/{model}/{action}   do it (deploy:write), then back to the rollout (303)

An action goes through the same path as ``POST /api/v1/rollouts/{model}/{action}`` and
``shipyard rollback`` (``shipyard.server.operations``: the controller decides, its audit event names
the principal). The page only shows the buttons to those who hold deploy:write; the enforcement
point refuses the POST of anyone else (403) and any cookie POST without the page's CSRF token.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from shipyard import audit
from shipyard.errors import CheckFailed, NotFound
from shipyard.server.common import in_thread
from shipyard.server.ui.render import bad_request, not_found, principal_of, refused, render

READ = "models:read"
WRITE = "deploy:write"
NO_AUTH_ACTOR = "anonymous (no auth)"
POLL_SECONDS = 2
STOP_POLLING = 286  # htmx stops an ``every`` poll when the answer has this status
RECENT = 50
ANALYSES = 50  # newest analyses listed (the page is polled every 2 s: it stays small)
# action -> (button label, what it does, shown while the deployment is in one of these states)
ACTIONS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "pause": ("Pause", "stop moving traffic; the current weights stay until resumed", ("running",)),
    "resume": ("Resume", "continue the steps from the current one, with a fresh analysis window", ("paused",)),
    "promote": ("Promote", "send all traffic to the candidate now and make it the champion", ("running", "paused")),
    "abort": ("Abort", "send all traffic back to the champion and end the rollout", ("running", "paused")),
    "rollback": ("Roll back", "all traffic to the previous champion at once (also undoes a promotion)",
                 ("running", "paused", "promoted")),
}


def when(at: float | None) -> str:
    """A stored time (epoch seconds) as the pages show it: UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at)) if at else ""


def actor_of(request: Request) -> str:
    """Who the audit events of a page action name: the principal, or NO_AUTH_ACTOR without auth."""
    principal = principal_of(request)
    return principal.actor if principal is not None else NO_AUTH_ACTOR


def _settings(raw: dict[str, Any]) -> Any:
    from shipyard.config import DeploySection

    return DeploySection.model_validate(raw)


def _weight(state: str, steps: list[dict[str, Any]], last: tuple[float, float]) -> tuple[float, float]:
    """(candidate %, shadow %) the routing gives in ``state``; a pause keeps the weights it had."""
    from shipyard.rollout.policy import step_of

    step = step_of(state)
    if step is not None and steps:
        phase = steps[min(step, len(steps) - 1)]
        return float(phase["weight"]), float(phase["shadow_percent"])
    if state == "promoted":
        return 100.0, 0.0
    if state == "paused":
        return last
    return 0.0, 0.0  # rolled back, aborted: all traffic on the champion


def _effect(decision: Any) -> str:
    """The deployment's state after a stored decision (a wait changes nothing, a reject rolls back)."""
    from shipyard.rules import REJECT, WAIT

    if decision.status == WAIT:
        return str(decision.from_state)
    if decision.status == REJECT:
        return "rolled_back"
    return str(decision.to_state)


def _weights_chart(d: Any, decisions: list[Any], steps: list[dict[str, Any]], now: float) -> dict[str, Any]:
    """Step-shaped series of the candidate's traffic share (and shadow share) over time."""
    xs: list[float] = []
    weight: list[float] = []
    shadow: list[float] = []
    current = (0.0, 0.0)
    for decision in decisions:
        new = _weight(_effect(decision), steps, current)
        if xs and new == current:
            continue  # a wait or a pause: no point, the line holds (a long rollout has thousands)
        if xs:  # hold the old value up to the change: a step, not a ramp
            xs.append(decision.at)
            weight.append(current[0])
            shadow.append(current[1])
        current = new
        xs.append(decision.at)
        weight.append(current[0])
        shadow.append(current[1])
    if d.state in ("running", "paused") and xs:
        xs.append(max(now, xs[-1]))
        weight.append(current[0])
        shadow.append(current[1])
    series = [{"label": f"candidate v{d.candidate} %", "y": weight}]
    if d.champion is not None:  # the rest of the primary traffic (shadow copies come on top of it)
        series.append({"label": f"champion v{d.champion} %", "y": [100.0 - w for w in weight]})
    if any(shadow):
        series.append({"label": "shadow %", "y": shadow})
    return {"title": "Traffic to the candidate", "x": xs, "series": series, "time": True, "xlabel": "time (UTC)",
            "ylabel": "% of requests"}


def _decision(decision: Any) -> dict[str, Any]:
    import json

    return {"id": decision.id, "at": when(decision.at), "from": decision.from_state, "to": decision.to_state,
            "status": decision.status, "reason": decision.reason, "cause": decision.cause,
            "fired": json.loads(decision.fired), "metrics": sorted(json.loads(decision.metrics).items())}


def _deployment(d: Any) -> dict[str, Any]:
    from shipyard.rollout.controller import state_of

    return {"id": d.id, "model": d.model, "candidate": d.candidate, "champion": d.champion, "strategy": d.strategy,
            "state": d.state, "where": state_of(d), "step": d.step, "created": when(d.created_at),
            "updated": when(d.updated_at), "reason": d.reason or "", "active": d.state in ("running", "paused")}


def _waiting(session: Any, model: str | None = None) -> list[dict[str, Any]]:
    """Retrained versions waiting for a person's approval before their rollout starts (deploy.approval)."""
    from sqlalchemy import select

    from shipyard.store import monitoring as triggers

    query = select(triggers.Trigger).where(triggers.Trigger.state == "awaiting_approval").order_by(triggers.Trigger.id)
    if model is not None:
        query = query.where(triggers.Trigger.model == model)
    return [{"id": t.id, "model": t.model, "version": t.result_dict.get("version"), "reason": t.reason,
             "created": when(t.created_at)} for t in session.scalars(query.limit(RECENT))]


def _overview(ws: Any) -> dict[str, Any]:
    from shipyard.store import serving as repo

    with ws.store.read() as session:
        active = [_deployment(d) for d in repo.active_deployments(session)]
        recent = [_deployment(d) for d in repo.latest_deployments(session, limit=RECENT)]
        tables = repo.routing_tables(session)
        waiting = _waiting(session)
    rolled = {d["model"] for d in recent} | {d["model"] for d in active}
    serving = [{"model": name, "strategy": t.get("strategy", "single"), "champion": t.get("champion"),
                "rollouts": name in rolled,
                "candidate": t.get("candidate"), "weight": t.get("weight"), "shadow": t.get("shadow_percent")}
               for name, t in sorted(tables.items())]
    return {"active": active, "recent": recent, "serving": serving, "waiting": waiting}


def _rollout(ws: Any, model: str, deployment_id: int | None) -> dict[str, Any] | None:
    """Everything the rollout page shows, or None when the model has no such rollout."""
    from shipyard.rollout.controller import phases
    from shipyard.store import serving as repo

    with ws.store.read() as session:
        history = repo.latest_deployments(session, model, limit=20)
        if deployment_id is None:
            d = history[0] if history else None
        else:
            d = repo.get_deployments(session, [deployment_id]).get(deployment_id)
        if d is None or d.model != model:
            return None
        decisions = repo.decisions(session, [d.id], limit=1000)
        steps = phases(d.strategy, _settings(d.settings_dict))
        newest = history[0].id if history else None
        view = _deployment(d)
        now = time.time()
        chart = _weights_chart(d, decisions, steps, now)
        analyses = [x for x in reversed(decisions) if x.cause == "analysis"]
        shown = [_decision(x) for x in analyses[:ANALYSES]]  # only these need their metrics parsed
        manual = [_decision(x) for x in reversed(decisions) if x.cause != "analysis"]
        routing = repo.routing_tables(session, [model]).get(model)
        others = [_deployment(x) for x in history]
        waiting = _waiting(session, model)
    current = view["step"] if view["active"] else (len(steps) - 1 if d.state == "promoted" else -1)
    view["steps"] = [{"index": i, "weight": s["weight"], "shadow": s["shadow_percent"],
                      "done": i < current or d.state == "promoted", "current": i == current and view["active"]}
                     for i, s in enumerate(steps)]
    view["weight"] = chart["series"][0]["y"][-1] if chart["x"] else 0.0
    actions = [name for name, (_, _, states) in ACTIONS.items() if d.state in states] if d.id == newest else []
    return {"d": view, "chart": chart, "analyses": shown, "analyses_total": len(analyses), "history": manual,
            "routing": routing,
            "deployments": others, "waiting": waiting, "actions": actions, "labels": ACTIONS, "poll": POLL_SECONDS}


async def rollouts_page(request: Request) -> Response:
    """GET /rollouts: what each model serves, rollouts in progress and the newest ones."""
    data = await in_thread(_overview, request.app.state.workspace)
    polled = request.headers.get("HX-Request") == "true"
    return render(request, "rollouts.html", {**data, "poll": POLL_SECONDS}, nav="/rollouts",
                  fragment="rollouts_list.html", status=STOP_POLLING if polled and not data["active"] else 200)


async def rollout_page(request: Request) -> Response:
    """GET /rollouts/{model}: one rollout; an htmx poll gets only its live part."""
    model = request.path_params["model"]
    raw = request.query_params.get("deployment")
    if raw is not None and not raw.isdigit():
        return bad_request(request, f"deployment={raw!r}: expected a rollout number, e.g. ?deployment=3")
    data = await in_thread(_rollout, request.app.state.workspace, model, int(raw) if raw else None)
    if data is None:
        return not_found(request, f"rollout #{raw} of model {model!r}" if raw else f"rollout of model {model!r}")
    done = request.query_params.get("done")
    data["done"] = done if done in ACTIONS else None
    polled = request.headers.get("HX-Request") == "true"
    status = STOP_POLLING if polled and not data["d"]["active"] else 200
    return render(request, "rollouts_detail.html", data, nav="/rollouts", fragment="rollouts_live.html",
                  status=status)


def _steer(ws: Any, model: str, action: str, actor: str) -> dict[str, Any]:
    """Carry out ``action`` as ``actor`` through the operations the API uses (one path)."""
    from shipyard.server.operations import WrongState, act, controller

    with audit.acting_as(actor):
        if action != "rollback":
            return act(ws, model, action)
        try:
            return controller(ws).rollback(model).to_dict()  # type: ignore[no-any-return]
        except CheckFailed as exc:  # the champion moved since: the controller refuses to guess
            raise WrongState(exc.message, hint=exc.hint) from None


async def rollout_action(request: Request) -> Response:
    """GET: confirm ``action`` on the model's rollout; POST: do it (deploy:write, audited)."""
    from shipyard.server.operations import WrongState

    model, action = request.path_params["model"], request.path_params["action"]
    ws = request.app.state.workspace
    if action not in ACTIONS:
        return not_found(request, f"rollout action {action!r} (actions: {', '.join(ACTIONS)})")
    data = await in_thread(_rollout, ws, model, None)
    if data is None:
        return not_found(request, f"rollout of model {model!r}")
    if request.method == "GET":
        return render(request, "rollouts_confirm.html", {**data, "action": action}, nav="/rollouts")
    try:
        await in_thread(_steer, ws, model, action, actor_of(request))
    except (NotFound, WrongState) as exc:  # NotFound: the model has rollouts, just none this action applies to
        return refused(request, f"cannot {action}: {exc.message}", nav="/rollouts")
    return RedirectResponse(f"/rollouts/{quote(model, safe='')}?done={action}", status_code=303)


routes = [
    Route("/rollouts", rollouts_page, methods=["GET"]),
    Route("/rollouts/{model}", rollout_page, methods=["GET"]),
    Route("/rollouts/{model}/{action}", rollout_action, methods=["GET", "POST"]),
]
permissions = {"/rollouts": READ, "/rollouts/{model}": READ, "/rollouts/{model}/{action}": WRITE}
