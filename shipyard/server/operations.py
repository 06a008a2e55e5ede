"""Steering a release over HTTP: approve a retrain trigger, pause/resume/promote/abort a rollout.

    POST /api/v1/triggers/{trigger_id}/approve    the trigger after approval (JSON)
    POST /api/v1/rollouts/{model}/{action}        action: pause | resume | promote | abort; the decision

The handlers only translate: the monitoring service decides an approval (``Monitor.approve`` and
its approval policy) and the rollout controller an action (``Controller.act``), exactly as the CLI
commands ``shipyard triggers approve`` and ``shipyard rollout <action>`` do. Both need
``deploy:write`` (``shipyard.server.security.server_policy``). An unknown trigger or a model with
no active rollout is a 404; a trigger or rollout in the wrong state is a 409 with the reason.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.errors import CheckFailed, InputError, NotFound, ShipyardError, UsageError
from shipyard.server.common import in_thread
from shipyard.server.errors import json_response

ROLLOUT_ACTIONS = ("pause", "resume", "promote", "abort")
APPROVE_SOURCE = "shipyard server"


class WrongState(ShipyardError):
    """The trigger or rollout is not in a state that allows the request (409, with the reason)."""

    http_status = 409
    error_code = "INVALID_STATE"


def project_config(ws: Any) -> Any:
    """The project's shipyard.yaml (the defaults without one)."""
    from shipyard.config import ShipyardConfig, load_config

    return load_config(ws.project.config_path) if ws.project.config_path.is_file() else ShipyardConfig()


def approve(ws: Any, trigger_id: int) -> dict[str, Any]:
    """Approve a trigger's gated version (409 when it waits for no approval); the API and the pages call it."""
    from shipyard import notify
    from shipyard.monitoring import build_monitor

    monitor = build_monitor(ws, project_config(ws))
    try:
        out = monitor.approve(trigger_id, source=APPROVE_SOURCE)
    except NotFound:
        raise
    except UsageError as exc:  # the approval policy refused (the trigger does not wait for approval)
        raise WrongState(f"trigger_id {trigger_id}: {exc.message}", hint=exc.hint) from None
    notify.flush(30)
    return out


def controller(ws: Any) -> Any:
    """The rollout controller over the project's store, as ``shipyard rollout`` builds it."""
    from shipyard.rollout.controller import build_controller

    return build_controller(ws, project_config(ws))


def act(ws: Any, model: str, action: str) -> dict[str, Any]:
    """A rollout action (pause, resume, promote, abort); 409 when the rollout's state refuses it."""
    try:
        return controller(ws).act(model, action).to_dict()  # type: ignore[no-any-return]
    except CheckFailed as exc:  # the rollout policy refused the move from the current state
        raise WrongState(exc.message, hint=exc.hint) from None


async def approve_trigger(request: Request) -> Response:
    """POST /api/v1/triggers/{trigger_id}/approve: approve a gated version waiting for a person."""
    raw = request.path_params["trigger_id"]
    if not raw.isdigit():
        raise InputError(f"trigger_id {raw!r} is not a trigger number")
    return json_response(await in_thread(approve, request.app.state.workspace, int(raw)))


async def rollout_action(request: Request) -> Response:
    """POST /api/v1/rollouts/{model}/{action}: pause, resume, promote or abort the model's rollout."""
    action = request.path_params["action"]
    if action not in ROLLOUT_ACTIONS:
        raise NotFound(f"action {action!r} is not a rollout action", hint="use " + ", ".join(ROLLOUT_ACTIONS))
    return json_response(await in_thread(act, request.app.state.workspace, request.path_params["model"], action))


routes = [
    Route("/api/v1/triggers/{trigger_id}/approve", approve_trigger, methods=["POST"]),
    Route("/api/v1/rollouts/{model}/{action}", rollout_action, methods=["POST"]),
]
