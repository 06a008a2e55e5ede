"""What ``shipyard`` commands ask a remote server (``SHIPYARD_SERVER_URL``): JSON under ``/api/v1/``.

    GET    /api/v1/run-refs/{ref}                    a run by id, prefix, 'latest' or git revision
    GET    /api/v1/models?name=                      model versions (``shipyard models list``)
    GET    /api/v1/models/{ref}                      one version, NAME@VERSION or NAME@ALIAS
    PUT    /api/v1/models/{name}/aliases/{alias}     {version, force, reason}: move an alias
    DELETE /api/v1/models/{name}/aliases/{alias}     delete it
    POST   /api/v1/models/{ref}/trust                {reason}: trust a version that runs code on load
    GET    /api/v1/rollouts?model=&limit=            rollouts and their decisions
    GET    /api/v1/triggers                          what can start a retrain, per model
    GET    /api/v1/audit/events?kind=&subject=&actor=&limit=   GET /api/v1/audit/verify
    GET|POST /api/v1/tokens, DELETE /api/v1/tokens/{ref}         (admin)
    GET|POST /api/v1/users, POST /api/v1/users/{name}/disable|password  (admin)
    GET|POST /api/v1/projects, PUT|DELETE /api/v1/projects/{project}/members/{user}  (admin)

Each handler calls the function the local command calls (``registry.set_alias``,
``Controller.status``, ``audit.events``, ``auth.credentials.create_token``, ...) and answers with
the rows the command renders, so one command prints the same locally and remotely. Who may call
which route is declared in ``shipyard.server.security.server_policy``; writes are audited under the
request's principal (``audit.current_actor`` inside the enforcement point).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard import audit
from shipyard.errors import InputError
from shipyard.server.common import field, in_thread, json_body
from shipyard.server.errors import json_response
from shipyard.tracking.validation import check_int


def _ws(request: Request) -> Any:
    return request.app.state.workspace


def _changed(request: Request) -> None:
    """Tokens, users or roles changed: this process's token cache reloads on its next lookup (the
    other processes within their poll interval)."""
    cache = getattr(request.app.state, "tokens", None)
    if cache is not None:
        cache.expire()


def _limit(request: Request, default: int) -> int:
    return check_int(request.query_params.get("limit", str(default)), "limit", minimum=1)


async def run_ref(request: Request) -> Response:
    """GET /api/v1/run-refs/{ref}: the run ``shipyard runs show`` / ``metrics show`` name, with metric steps."""
    from shipyard.tracking.diff import resolve_ref

    ws, ref = _ws(request), request.path_params["ref"]

    def work() -> dict[str, Any]:
        with ws.store.read() as session:
            record = resolve_ref(session, ref, ws.project.root)
        return {"run": record.to_dict(), "metric_steps": record.metric_steps}

    return json_response(await in_thread(work))


async def list_models(request: Request) -> Response:
    """GET /api/v1/models?name=: every version (of one model), as ``shipyard models list --json``."""
    from shipyard.registry import find_versions

    ws, name = _ws(request), request.query_params.get("name") or None

    def work() -> list[dict[str, Any]]:
        with ws.store.read() as session:
            return [v.to_dict() for v in find_versions(session, name)]

    return json_response({"versions": await in_thread(work)})


async def show_model(request: Request) -> Response:
    """GET /api/v1/models/{ref}: one version (NAME@VERSION or NAME@ALIAS)."""
    from shipyard.registry import resolve

    ws, ref = _ws(request), request.path_params["ref"]

    def work() -> dict[str, Any]:
        with ws.store.read() as session:
            return resolve(session, ref).to_dict()  # type: ignore[no-any-return]

    return json_response({"version": await in_thread(work)})


async def move_alias(request: Request) -> Response:
    """PUT /api/v1/models/{name}/aliases/{alias} {version, force, reason}; DELETE removes the alias.

    The champion needs a passing gate verdict (``registry.set_alias`` refuses otherwise: 422), or
    ``force`` with a ``reason`` (audited); the route itself needs models:promote for the champion.
    """
    from shipyard.registry import delete_alias, set_alias

    ws, name, alias = _ws(request), request.path_params["name"], request.path_params["alias"]
    route = f"{request.method} /api/v1/models/{name}/aliases/{alias}"
    if request.method == "DELETE":
        def remove() -> dict[str, Any]:
            with ws.store.write() as session:
                previous = delete_alias(session, name, alias, actor=audit.current_actor())
            return {"model": name, "alias": alias, "version": None, "previous": previous}

        return json_response(await in_thread(remove))
    data = await json_body(request)
    version = field(data, "version", int, route)
    force = bool(field(data, "force", bool, route, required=False, default=False))
    reason = field(data, "reason", str, route, required=False)

    def move() -> dict[str, Any]:
        with ws.store.write() as session:
            previous = set_alias(session, name, alias, version, force=force, reason=reason,
                                 actor=audit.current_actor())
        return {"model": name, "alias": alias, "version": version, "previous": previous, "forced": force}

    return json_response(await in_thread(move))


async def trust_model(request: Request) -> Response:
    """POST /api/v1/models/{ref}/trust {reason}: ``shipyard models trust`` on the server, which loads
    the version once (the scan refuses what it refuses) and records it trusted (audited). Maintainers
    only (models:promote): a trusted version's code runs in every gateway that serves it."""
    from shipyard.registry.trust import trust_version

    ws, ref = _ws(request), request.path_params["ref"]
    data = await json_body(request) if await request.body() else {}
    reason = field(data, "reason", str, f"POST /api/v1/models/{ref}/trust", required=False)
    actor = audit.current_actor()
    result = await in_thread(trust_version, ws.store, ws.objects, ref, reason=reason, actor=actor)
    return json_response({"version": result.version.to_dict(), "changed": result.changed})


async def list_rollouts(request: Request) -> Response:
    """GET /api/v1/rollouts?model=&limit=: the rows of ``shipyard rollout status``."""
    from shipyard.server.operations import controller

    ws, model, limit = _ws(request), request.query_params.get("model") or None, _limit(request, 10)
    return json_response({"rollouts": await in_thread(lambda: controller(ws).status(model, limit))})


async def list_triggers(request: Request) -> Response:
    """GET /api/v1/triggers: the rows of ``shipyard triggers list``."""
    from shipyard.monitoring.listing import trigger_rows
    from shipyard.server.operations import project_config

    ws = _ws(request)
    return json_response({"triggers": await in_thread(lambda: trigger_rows(ws, project_config(ws)))})


async def audit_events(request: Request) -> Response:
    """GET /api/v1/audit/events?kind=&subject=&actor=&limit=: the newest events, newest first."""
    from shipyard.auth.audit_log import event_rows

    q = request.query_params
    rows = await in_thread(event_rows, _ws(request).store, q.get("kind") or None, q.get("subject") or None,
                           _limit(request, 50), actor=q.get("actor") or None)
    return json_response({"events": rows})


async def audit_verify(request: Request) -> Response:
    """GET /api/v1/audit/verify: whether the hash chain is intact (``ok`` false names the problem)."""
    from shipyard.auth.audit_log import verify_chain

    return json_response(await in_thread(verify_chain, _ws(request).store))


async def tokens(request: Request) -> Response:
    """GET /api/v1/tokens?user=: the tokens (never a secret); POST {user, scopes, project, expires_in, name}."""
    from shipyard.auth import credentials

    store = _ws(request).store
    if request.method == "GET":
        user = request.query_params.get("user") or None
        return json_response({"tokens": await in_thread(credentials.list_tokens, store, user)})
    data, route = await json_body(request), "POST /api/v1/tokens"
    scopes = field(data, "scopes", list, route)
    expires = field(data, "expires_in", (int, float), route, required=False)
    secret, info = await in_thread(
        credentials.create_token, store, field(data, "user", str, route), scopes=scopes,
        project=field(data, "project", str, route, required=False), expires_in=expires,
        name=field(data, "name", str, route, required=False, default=""), actor=audit.current_actor())
    _changed(request)
    return json_response({**info, "token": secret}, 201)


async def revoke_token(request: Request) -> Response:
    """DELETE /api/v1/tokens/{ref}: revoke by id or prefix."""
    from shipyard.auth import credentials

    info = await in_thread(credentials.revoke_token, _ws(request).store, request.path_params["ref"],
                           actor=audit.current_actor())
    _changed(request)
    return json_response(info)


async def users(request: Request) -> Response:
    """GET /api/v1/users; POST {name, admin, password, service_account, project, role} adds one."""
    from shipyard.auth import service

    store = _ws(request).store
    if request.method == "GET":
        return json_response({"users": await in_thread(service.list_users, store)})
    data, route = await json_body(request), "POST /api/v1/users"
    name, actor = field(data, "name", str, route), audit.current_actor()
    if field(data, "service_account", bool, route, required=False, default=False):
        info = await in_thread(service.create_service_account, store, name,
                               project=field(data, "project", str, route),
                               role=field(data, "role", str, route, required=False, default="editor"), actor=actor)
    else:
        info = await in_thread(service.create_user, store, name,
                               password=field(data, "password", str, route, required=False),
                               admin=field(data, "admin", bool, route, required=False, default=False), actor=actor)
    _changed(request)
    return json_response(info, 201)


async def user_action(request: Request) -> Response:
    """POST /api/v1/users/{name}/disable, or /password {password}."""
    from shipyard.auth import service

    store, name, action = _ws(request).store, request.path_params["name"], request.path_params["action"]
    if action == "disable":
        await in_thread(service.disable_user, store, name, actor=audit.current_actor())
    elif action == "password":
        password = field(await json_body(request), "password", str, f"POST /api/v1/users/{name}/password")
        await in_thread(service.set_password, store, name, password, actor=audit.current_actor())
    else:
        raise InputError(f"{action!r} is not a user action", hint="use disable or password")
    _changed(request)
    return json_response({"name": name, "action": action})


async def projects(request: Request) -> Response:
    """GET /api/v1/projects; POST {name} creates one."""
    from shipyard.auth import service

    store = _ws(request).store
    if request.method == "GET":
        return json_response({"projects": await in_thread(service.list_projects, store)})
    name = field(await json_body(request), "name", str, "POST /api/v1/projects")
    return json_response(await in_thread(service.create_project, store, name, actor=audit.current_actor()), 201)


async def member(request: Request) -> Response:
    """PUT /api/v1/projects/{project}/members/{user} {role} grants; DELETE revokes. Answers the role before."""
    from shipyard.auth import service

    store, actor = _ws(request).store, audit.current_actor()
    project, user = request.path_params["project"], request.path_params["user"]
    if request.method == "DELETE":
        before = await in_thread(service.revoke, store, project, user, actor=actor)
        _changed(request)
        return json_response({"project": project, "user": user, "role": None, "before": before})
    role = field(await json_body(request), "role", str, f"PUT /api/v1/projects/{project}/members/{user}")
    before = await in_thread(service.grant, store, project, user, role, actor=actor)
    _changed(request)
    return json_response({"project": project, "user": user, "role": role, "before": before})


routes = [
    Route("/api/v1/run-refs/{ref}", run_ref, methods=["GET"]),
    Route("/api/v1/models", list_models, methods=["GET"]),
    Route("/api/v1/models/{ref}", show_model, methods=["GET"]),
    Route("/api/v1/models/{name}/aliases/{alias}", move_alias, methods=["PUT", "DELETE"]),
    Route("/api/v1/models/{ref}/trust", trust_model, methods=["POST"]),
    Route("/api/v1/rollouts", list_rollouts, methods=["GET"]),
    Route("/api/v1/triggers", list_triggers, methods=["GET"]),
    Route("/api/v1/audit/events", audit_events, methods=["GET"]),
    Route("/api/v1/audit/verify", audit_verify, methods=["GET"]),
    Route("/api/v1/tokens", tokens, methods=["GET", "POST"]),
    Route("/api/v1/tokens/{ref}", revoke_token, methods=["DELETE"]),
    Route("/api/v1/users", users, methods=["GET", "POST"]),
    Route("/api/v1/users/{name}/{action}", user_action, methods=["POST"]),
    Route("/api/v1/projects", projects, methods=["GET", "POST"]),
    Route("/api/v1/projects/{project}/members/{user}", member, methods=["PUT", "DELETE"]),
]
