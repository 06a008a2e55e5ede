"""Every route and method of ``shipyard server`` as wired (``create_app(auth_project=...)``), SQLite and PostgreSQL.

Anonymous and expired credentials get 401, a viewer 403 on every route that needs more than
reading, a maintainer of another project 403 everywhere, and none of these writes a row anywhere.
"""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, inspect, select, table
from starlette.routing import Route
from starlette.testclient import TestClient

from shipyard.auth import credentials
from shipyard.auth.model import ROLE_PERMISSIONS
from shipyard.server.app import collect_routes, create_app
from shipyard.server.login import LOGIN_PUBLIC_PATHS
from shipyard.server.security import SERVER_PUBLIC_PATHS, Policy, RequestView, server_policy
from tests.auth.people import two_projects

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
PARAMS = {"run_id": "0" * 32, "key": "loss", "path": "model/a.txt", "model_id": "m-0", "tag_key": "k", "trigger_id": "1",
          "model": "penguin-species", "action": "abort", "name": "shipyard.css", "stage": "train", "dataset": "penguins",
          "version": "1", "ref": "penguin-species@1", "alias": "champion", "user": "vera", "project": "penguins"}
ALL = ["runs:read", "runs:write", "models:read", "models:write", "models:promote", "deploy:write", "gateway:invoke",
       "audit:read"]


def concrete(path: str) -> str:
    for name, value in PARAMS.items():
        path = path.replace("{" + name + ":path}", value).replace("{" + name + "}", value)
    assert "{" not in path, path
    return path


def rows(store) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with store.read() as session:
        names = inspect(session.get_bind()).get_table_names()
        return {n: session.scalar(select(func.count()).select_from(table(n))) or 0 for n in names}


def needed(policy: Policy, route: Route, method: str) -> str | None:
    rule = policy.rule(route, method)
    assert rule is not None, (method, route.path)
    if rule.permission is None or isinstance(rule.permission, str):
        return rule.permission
    params = {name: value for name, value in PARAMS.items() if "{" + name in route.path}
    return rule.permission(RequestView(method, route.path, params, {}, {}))


@pytest.fixture
def server(project, store_url, monkeypatch):  # type: ignore[no-untyped-def]
    if not store_url.startswith("sqlite"):
        monkeypatch.setenv("SHIPYARD_STORE", store_url)
    store = project.store
    two_projects(store, "vera")
    headers = {"anonymous": {}}
    expiring = None
    for who, owner, expires in (("viewer", "vera", None), ("other_project", "olga", None), ("expired", "vera", 0.5)):
        token, info = credentials.create_token(store, owner, scopes=ALL, expires_in=expires, actor="ops")
        headers[who] = {"Authorization": f"Bearer {token}"}
        expiring = info["expires_at"] or expiring
    while time.time() <= expiring:  # wait for the clock to pass the short token's expiry
        time.sleep(0.05)
    app = create_app(project, auth_project="penguins")  # the wiring shipyard server uses
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, headers, server_policy("penguins"), store, app


def paths(app) -> list[str]:  # type: ignore[no-untyped-def]
    """Every non-public route path of the wired server, once each (several routes may share a path)."""
    public = (*SERVER_PUBLIC_PATHS, *LOGIN_PUBLIC_PATHS)
    return sorted({r.path for r in app.routes if isinstance(r, Route) and r.path not in public})


def serving(app, path: str, method: str) -> Route | None:  # type: ignore[no-untyped-def]
    """The route Starlette dispatches (path, method) to: the first full match, as its router does."""
    from starlette.routing import Match

    scope = {"type": "http", "path": path, "method": method, "root_path": ""}
    for route in app.routes:
        if route.matches(scope)[0] == Match.FULL:
            return route  # type: ignore[return-value]
    return None


def expected(who: str, permission: str | None, declared: bool) -> set[int]:
    if who in ("anonymous", "expired"):
        return {401}
    if not declared:
        return {405}  # a valid credential on an unknown method: the app says so, nothing runs
    if who == "viewer" and permission in ROLE_PERMISSIONS["viewer"]:
        return set(range(200, 600)) - {401, 403, 500}  # allowed: the endpoint answers (no crash)
    return {403}


def test_every_server_route_method_and_principal(server) -> None:  # type: ignore[no-untyped-def]
    client, headers, policy, store, app = server
    before = rows(store)
    problems = []
    checked = 0
    for template in paths(app):
        path = concrete(template)
        for method in METHODS:
            route = serving(app, path, method)
            permission = needed(policy, route, method) if route is not None else None
            for who, creds in headers.items():
                body = {} if method in ("POST", "PUT", "PATCH") else None
                status = client.request(method, path, headers=creds, json=body).status_code
                checked += 1
                if status not in expected(who, permission, route is not None):
                    problems.append(f"{method} {path} as {who}: {status}")
    assert checked > 1000
    assert not problems, "\n".join(problems)
    after = rows(store)
    assert after == before, {k: (before.get(k), v) for k, v in after.items() if before.get(k) != v}


def test_the_wired_app_serves_every_route_module(server) -> None:  # type: ignore[no-untyped-def]
    *_, app = server
    wired = {(r.path, frozenset(r.methods or ())) for r in app.routes if isinstance(r, Route)}
    assert {(r.path, frozenset(r.methods or ())) for r in collect_routes() if isinstance(r, Route)} <= wired
    assert {"/login", "/logout", "/login/oidc", "/login/oidc/callback"} <= {path for path, _ in wired}


def test_public_routes_answer_without_credentials(server) -> None:  # type: ignore[no-untyped-def]
    client, _, _, _, _ = server
    assert client.get("/health").status_code == 200
    assert client.get("/api/v1/health").status_code == 200
