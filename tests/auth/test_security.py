"""The HTTP enforcement point on a small Starlette app with real routes and the real store.

Every route x method x principal {anonymous, expired, revoked, wrong scope, other project, viewer,
editor, maintainer, admin} is compared with the declared table: anonymous 401, insufficient 403,
and a refused request writes nothing. Runs on SQLite and PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from shipyard.auth import credentials, service
from shipyard.auth.cache import TokenCache
from shipyard.auth.model import ANY_PROJECT, permission_for_alias
from shipyard.server.security import (
    Guard,
    Policy,
    Rule,
    UndeclaredRoute,
    body_field,
    check_routes,
    install,
    path_param,
    public,
    query_param,
    requires,
)
from shipyard.store.tables import MetaEntry

PASSWORD = "correct horse battery"


def build_app(store, *, basic_passwords: bool = False, clock=time.time) -> Starlette:  # type: ignore[no-untyped-def]
    """Real endpoints: reads list store rows, writes insert one (so 'nothing written' is checkable)."""

    def write(request: Request, what: str) -> Response:
        principal = request.state.principal
        with store.write() as session:
            session.add(MetaEntry(key=f"w:{uuid.uuid4().hex}", value=f"{what} by {principal.actor}"))
        return JSONResponse({"ok": what}, status_code=201)

    async def read(request: Request) -> Response:
        with store.read() as session:
            return JSONResponse({"rows": session.scalar(select(func.count()).select_from(MetaEntry))})

    async def create_run(request: Request) -> Response:
        return write(request, "run")

    async def set_alias(request: Request) -> Response:
        return write(request, "alias " + (await request.json())["alias"])

    async def put_artifact(request: Request) -> Response:
        await request.body()
        return write(request, "artifact " + request.path_params["path"])

    async def abort(request: Request) -> Response:
        return write(request, "abort")

    async def reindex(request: Request) -> Response:
        return write(request, "reindex")

    async def create_in_body(request: Request) -> Response:
        return write(request, "run in " + (await request.json())["project"])

    @requires("models:read", project=path_param("project"))
    async def get_model(request: Request) -> Response:
        return JSONResponse({"name": request.path_params["name"]})

    @public
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    routes = [
        Route("/health", health),
        Route("/api/p/{project}/runs", create_run, methods=["POST"]),
        Route("/api/p/{project}/runs", read, methods=["GET"]),
        Route("/ajax-api/p/{project}/runs", create_run, methods=["POST"]),
        Route("/api/p/{project}/aliases", set_alias, methods=["POST"]),
        Route("/api/p/{project}/artifacts/{path:path}", put_artifact, methods=["PUT"]),
        Route("/api/p/{project}/rollouts/abort", abort, methods=["POST"]),
        Route("/api/p/{project}/models/{name}", get_model, methods=["GET"]),
        Route("/api/runs/search", read, methods=["GET", "POST"]),
        Route("/api/admin/reindex", reindex, methods=["POST"]),
        Route("/api/runs/create", create_in_body, methods=["POST"]),
        Route("/api/audit", read, methods=["GET"]),
    ]
    in_project = path_param("project")
    policy = Policy({
        "/api/p/{project}/runs": {"GET": Rule("runs:read", in_project), "POST": Rule("runs:write", in_project)},
        "/api/p/{project}/aliases": Rule(lambda view: permission_for_alias(str(view.json.get("alias"))), in_project,
                                         body=True),
        "/api/p/{project}/artifacts/{path:path}": Rule("models:write", in_project),
        "/api/p/{project}/rollouts/abort": Rule("deploy:write", in_project),
        "/api/runs/search": Rule("runs:read", ANY_PROJECT),
        "/api/admin/reindex": Rule("admin", None),
        "/api/runs/create": Rule("runs:write", body_field("project"), body=True),
        "/api/audit": Rule("audit:read", query_param("project")),
    })
    app = Starlette(routes=routes)
    install(app, Guard(policy, TokenCache(store, interval=30, clock=clock), store=store,
                       basic_passwords=basic_passwords))
    return app


@dataclass(frozen=True)
class Case:
    method: str
    path: str
    role: str  # the weakest role allowed: viewer < editor < maintainer < admin
    scope: str
    body: dict | bytes | None = None  # type: ignore[type-arg]
    writes: bool = True


CASES = [
    Case("GET", "/api/p/penguins/runs", "viewer", "runs:read", writes=False),
    Case("HEAD", "/api/p/penguins/runs", "viewer", "runs:read", writes=False),
    Case("POST", "/api/p/penguins/runs", "editor", "runs:write"),
    Case("POST", "/ajax-api/p/penguins/runs", "editor", "runs:write"),
    Case("POST", "/api/p/penguins/aliases", "editor", "models:write", {"alias": "challenger"}),
    Case("POST", "/api/p/penguins/aliases", "maintainer", "models:promote", {"alias": "champion"}),
    Case("PUT", "/api/p/penguins/artifacts/model/model.skops", "editor", "models:write", b"\x00model bytes"),
    Case("POST", "/api/p/penguins/rollouts/abort", "maintainer", "deploy:write"),
    Case("GET", "/api/p/penguins/models/m1", "viewer", "models:read", writes=False),
    Case("GET", "/api/runs/search", "viewer", "runs:read", writes=False),
    Case("POST", "/api/runs/search", "viewer", "runs:read", writes=False),
    Case("POST", "/api/admin/reindex", "admin", "admin"),
    Case("POST", "/api/runs/create", "editor", "runs:write", {"project": "penguins"}),
    Case("GET", "/api/audit?project=penguins", "maintainer", "audit:read", writes=False),
]
RANK = {"viewer": 0, "editor": 1, "maintainer": 2, "admin": 3}


def expected(case: Case, who: str) -> int:
    """The status the declared table promises (written out by hand, not computed by decide)."""
    if who in ("anonymous", "expired", "revoked"):
        return 401
    if who == "wrong_scope":  # a maintainer whose token holds runs:read only
        return 200 if case.scope == "runs:read" else 403
    if who == "other_project":  # a maintainer of iris: only the cross-project listing lets it in
        return 200 if case.path.startswith("/api/runs/search") else 403
    return 200 if RANK[who] >= RANK[case.role] else 403


@pytest.fixture
def world(store) -> Iterator[tuple[TestClient, dict[str, dict[str, str]], object]]:  # type: ignore[no-untyped-def]
    for project in ("penguins", "iris"):
        service.create_project(store, project, actor="ops")
    headers: dict[str, dict[str, str]] = {"anonymous": {}}
    everything = ["runs:read", "runs:write", "models:read", "models:write", "models:promote", "deploy:write",
                  "gateway:invoke", "audit:read"]
    for name, role in (("viewer", "viewer"), ("editor", "editor"), ("maintainer", "maintainer")):
        service.create_user(store, name, actor="ops")
        service.grant(store, "penguins", name, role, actor="ops")
        headers[name] = bearer(credentials.create_token(store, name, scopes=everything, actor="ops")[0])
    service.create_user(store, "olga", actor="ops")
    service.grant(store, "iris", "olga", "maintainer", actor="ops")
    headers["other_project"] = bearer(credentials.create_token(store, "olga", scopes=everything, actor="ops")[0])
    service.create_user(store, "root", admin=True, actor="ops")
    headers["admin"] = bearer(credentials.create_token(store, "root", scopes=["admin"], actor="ops")[0])
    headers["wrong_scope"] = bearer(credentials.create_token(store, "maintainer", scopes=["runs:read"],
                                                             actor="ops")[0])
    headers["expired"] = bearer(credentials.create_token(store, "maintainer", scopes=everything, expires_in=60,
                                                         actor="ops")[0])
    revoked, info = credentials.create_token(store, "maintainer", scopes=everything, actor="ops")
    credentials.revoke_token(store, info["prefix"], actor="ops")
    headers["revoked"] = bearer(revoked)
    later = time.time() + 3600  # the expired token's hour is over; no other token expires
    with TestClient(build_app(store, clock=lambda: later)) as client:
        yield client, headers, store


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def written(store) -> int:  # type: ignore[no-untyped-def]
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(MetaEntry).where(MetaEntry.key.startswith("w:"))) or 0


def send(client: TestClient, method: str, path: str, headers: dict[str, str], body: object = None):  # type: ignore[no-untyped-def]
    if isinstance(body, bytes):
        return client.request(method, path, headers=headers, content=body)
    return client.request(method, path, headers=headers, json=body if body is not None else None)


def test_every_declared_route_and_principal(world) -> None:  # type: ignore[no-untyped-def]
    client, headers, store = world
    problems = []
    for case in CASES:
        for who, creds in headers.items():
            before = written(store)
            response = send(client, case.method, case.path, creds, case.body)
            want = expected(case, who)
            got = 200 if response.status_code in (200, 201) else response.status_code
            if got != want:
                problems.append(f"{case.method} {case.path} as {who}: {response.status_code}, want {want}")
            grew = written(store) - before
            if grew != (1 if want == 200 and case.writes else 0):
                problems.append(f"{case.method} {case.path} as {who}: wrote {grew} rows")
            if want == 401:
                assert "Bearer" in response.headers.get("www-authenticate", ""), case
            if want in (401, 403) and case.method != "HEAD":
                body = response.json()
                assert body["error_code"] == ("UNAUTHENTICATED" if want == 401 else "PERMISSION_DENIED")
                assert body["message"]
    assert not problems, "\n".join(problems)


def test_undeclared_methods_need_credentials_and_write_nothing(world) -> None:  # type: ignore[no-untyped-def]
    client, headers, store = world
    methods = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
    declared = {(c.method, c.path.split("?")[0]) for c in CASES} | {
        ("HEAD", c.path.split("?")[0]) for c in CASES if c.method == "GET"}
    problems = []
    for path in sorted({c.path.split("?")[0] for c in CASES}):
        for method in methods:
            if (method, path) in declared:
                continue
            for who, want in (("anonymous", 401), ("expired", 401), ("admin", 405), ("viewer", 405)):
                status = client.request(method, path, headers=headers[who]).status_code
                if status != want:
                    problems.append(f"{method} {path} as {who}: {status}, want {want}")
    assert not problems, "\n".join(problems)
    assert written(store) == 0


def test_public_allowlist(world) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = world
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/nowhere").status_code == 401  # an unknown path is not public


@pytest.mark.parametrize(("path", "why"), [
    ("/api/p/penguins/runs/", "trailing slash"),
    ("/api//p/penguins/runs", "double slash"),
    ("/API/P/PENGUINS/RUNS", "case"),
    ("/api/p/penguins/%72uns", "percent-encoded segment"),
    ("/AJAX-API/p/penguins/runs", "ajax twin, other case"),
])
def test_path_variants_meet_the_same_rule(world, path: str, why: str) -> None:  # type: ignore[no-untyped-def]
    client, headers, store = world
    assert client.post(path, headers=headers["anonymous"]).status_code == 401, why
    assert client.post(path, headers=headers["viewer"]).status_code == 403, why
    assert written(store) == 0


@pytest.mark.parametrize("path", ["/api/p/penguins%2Fruns", "/api/p/penguins/artifacts/..%2F..%2Fx",
                                  "/api/p/penguins/artifacts/a/%2e%2e/%2e%2e/x", "/api/p/penguins/%252e%252e/runs"])
def test_encoded_separators_and_dot_segments_are_refused(world, path: str) -> None:  # type: ignore[no-untyped-def]
    client, headers, store = world
    response = client.put(path, headers=headers["admin"], content=b"x")
    assert response.status_code == 400 and "path" in response.json()["message"]
    assert written(store) == 0


def test_method_override_and_query_tokens_are_refused(world) -> None:  # type: ignore[no-untyped-def]
    client, headers, store = world
    response = client.get("/api/p/penguins/runs", headers={**headers["editor"], "X-HTTP-Method-Override": "POST"})
    assert response.status_code == 400 and "X-HTTP-Method-Override" in response.json()["message"]
    token = headers["editor"]["Authorization"].split()[1]
    for query in (f"access_token={token}", f"token={token}", f"q={token}"):
        response = client.get(f"/api/p/penguins/runs?{query}")
        assert response.status_code == 400 and "never accepted in a URL" in response.json()["message"]
    assert written(store) == 0


def test_cookies_are_not_credentials_on_the_api(world) -> None:  # type: ignore[no-untyped-def]
    client, headers, _ = world
    token = headers["editor"]["Authorization"].split()[1]
    client.cookies.set("session", token)
    assert client.get("/api/p/penguins/runs").status_code == 401
    client.cookies.clear()


def test_basic_with_a_token_as_password_as_the_mlflow_client_sends(world) -> None:  # type: ignore[no-untyped-def]
    client, headers, store = world
    token = headers["editor"]["Authorization"].split()[1]
    basic = base64.b64encode(f"anything:{token}".encode()).decode()
    response = client.post("/api/p/penguins/runs", headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 201
    with store.read() as session:
        row = session.scalars(select(MetaEntry).where(MetaEntry.key.startswith("w:"))).one()
    assert row.value == f"run by editor via {token[:12]}"  # the actor the endpoint audits
    mistyped = token[:-1] + ("a" if token[-1] != "a" else "b")
    response = client.get("/api/p/penguins/runs", headers=bearer(mistyped))
    assert response.status_code == 401 and "malformed" in response.json()["message"]


def test_basic_passwords_only_when_enabled(store) -> None:  # type: ignore[no-untyped-def]
    service.create_project(store, "penguins", actor="ops")
    service.create_user(store, "alice", password=PASSWORD, actor="ops")
    service.grant(store, "penguins", "alice", "viewer", actor="ops")
    basic = {"Authorization": "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"alice:not the password").decode()}
    with TestClient(build_app(store)) as client:
        response = client.get("/api/p/penguins/runs", headers=basic)
        assert response.status_code == 401 and "password login over Basic is off" in response.json()["message"]
    with TestClient(build_app(store, basic_passwords=True)) as client:
        assert client.get("/api/p/penguins/runs", headers=basic).status_code == 200
        unknown = {"Authorization": "Basic " + base64.b64encode(f"mallory:{PASSWORD}".encode()).decode()}
        assert client.get("/api/p/penguins/runs", headers=wrong).json() == client.get(
            "/api/p/penguins/runs", headers=unknown).json()
        assert client.post("/api/p/penguins/runs", headers=basic).status_code == 403


def test_a_route_without_a_declaration_refuses_to_start(store) -> None:  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        return Response()

    app = Starlette(routes=[Route("/api/declared", endpoint, methods=["GET", "POST"]),
                            Route("/api/forgotten", endpoint, methods=["DELETE"]),
                            Route("/debug", endpoint)])
    policy = Policy({"/api/declared": {"GET": Rule("runs:read", "penguins")}, "/debug": Rule(None)})
    with pytest.raises(UndeclaredRoute) as caught:
        check_routes(app, policy)
    message = str(caught.value)
    assert "POST /api/declared: no permission declared" in message
    assert "DELETE /api/forgotten: no permission declared" in message
    assert "GET /debug: declared public but not in the public allowlist" in message
    assert "GET /api/declared" not in message


def test_an_unknown_permission_is_refused_when_declared() -> None:
    with pytest.raises(ValueError, match="unknown permission 'runs:raed'"):
        Rule("runs:raed")


def test_no_auth_only_on_loopback_with_the_embedded_store() -> None:
    from shipyard.errors import UsageError
    from shipyard.server.security import check_no_auth

    for host in ("127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"):
        assert "OFF" in check_no_auth(host, "sqlite:///x/shipyard.db")
    for host in ("0.0.0.0", "192.168.1.5", "::", "example.com"):
        with pytest.raises(UsageError, match=f"--host {host}"):
            check_no_auth(host, "sqlite:///x/shipyard.db")
    with pytest.raises(UsageError, match="shared store"):
        check_no_auth("127.0.0.1", "postgresql+psycopg://u@db/shipyard")
