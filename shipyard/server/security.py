"""The one HTTP enforcement point: every route declares its permission; anything else is refused.

A route declares what it needs with ``@requires("models:promote", project=path_param("project"))``
on its endpoint, or with a row of a ``Policy`` table keyed by its path (``/ajax-api/`` routes share
the row of their ``/api/`` twin). ``check_routes`` refuses to start an app with a route or a method
that has no declaration, and a public route outside the explicit allowlist (``/health``,
``/ready``, ``/metrics`` when configured). ``AuthMiddleware`` then, on every request:

1. refuses ``X-HTTP-Method-Override`` (and its spellings), a token in the query string, an
   encoded ``/`` or ``%`` and ``.``/``..`` segments in the path (400, naming the header or field);
2. finds the rule of the route Starlette will run; for a path no route matches, the rule of the
   route it normalises to (trailing slash, double slash, case, ``/ajax-api/``), so a variant never
   meets a weaker rule; an unknown path or method still needs a valid credential;
3. authenticates: ``Authorization: Bearer <token>``, or Basic with a token as the password (the
   MLflow client sends Basic when a user name and password are set), or Basic user:password when
   enabled; on a route declared a web page (``page=True``) only, also the browser session cookie
   (``shipyard.server.login``), with the page's CSRF token on every state-changing method. The
   API and the gateway never read a cookie; a token is never accepted from the URL;
4. resolves the project and asks ``shipyard.auth.decide``: 401 with ``WWW-Authenticate`` or 403,
   in MLflow's ``{error_code, message}`` shape, before the endpoint runs (so nothing is written);
5. hands the principal to the endpoint as ``request.state.principal`` (its ``actor`` is what the
   endpoint writes into audit events).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, quote, unquote

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Match, Mount, Route, Router, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shipyard import audit
from shipyard.auth import tokens
from shipyard.auth.cache import TokenCache
from shipyard.auth.model import ALL_PERMISSIONS, ANY_PROJECT, Principal, decide
from shipyard.errors import EXIT_INTERNAL, ShipyardError
from shipyard.server.common import read_body
from shipyard.server.errors import error_response
from shipyard.store import Store

DEFAULT_PUBLIC_PATHS = ("/health", "/ready")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
METHOD_OVERRIDES = {name.lower(): name for name in ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")}
_OVERRIDE_NAMES = frozenset(name.encode("latin-1") for name in METHOD_OVERRIDES)
_X = frozenset(b"xX")  # the first byte of every override name, in either case
TOKEN_QUERY_FIELDS = frozenset({"token", "access_token", "api_key", "apikey", "auth", "authorization"})
ALL_METHODS = "*"
MAX_POLICY_BODY = 1 << 20  # rules that read the body see at most 1 MB (MLflow's JSON limit)
_RULES_ATTR = "__shipyard_rules__"


class UndeclaredRoute(ShipyardError):
    """A route has no permission declaration: the process must not serve it."""

    exit_code = EXIT_INTERNAL
    http_status = 500


@dataclass(frozen=True)
class RequestView:
    """What a rule may look at: method, normalised path, path and query parameters, the JSON body."""

    method: str
    path: str
    path_params: Mapping[str, Any]
    query: Mapping[str, str]
    json: Mapping[str, Any]


ProjectSource = str | Callable[[RequestView], "str | Awaitable[str | None] | None"] | None
PermissionSource = str | Callable[[RequestView], str]


@dataclass(frozen=True)
class Rule:
    """One route's declaration: the permission (None: public) and where its project comes from.

    ``project`` is a project name, None (server-wide: admins only), ``ANY_PROJECT`` (a listing that
    filters itself) or a function of the request. ``body`` makes the JSON body available to it.
    ``page`` marks a web page: it also accepts the browser session cookie (with a CSRF token on
    every state-changing method); every other route accepts only the Authorization header.
    """

    permission: PermissionSource | None
    project: ProjectSource = None
    body: bool = False
    page: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.permission, str) and self.permission not in ALL_PERMISSIONS:
            raise ValueError(f"unknown permission {self.permission!r}; known: {' '.join(sorted(ALL_PERMISSIONS))}")


PUBLIC = Rule(None)


def path_param(name: str) -> Callable[[RequestView], str | None]:
    """The project is the route's path parameter ``name``."""
    return lambda view: _text(view.path_params.get(name))


def query_param(name: str) -> Callable[[RequestView], str | None]:
    """The project is the query parameter ``name``."""
    return lambda view: _text(view.query.get(name))


def body_field(name: str) -> Callable[[RequestView], str | None]:
    """The project is the JSON body's field ``name`` (declare the rule with ``body=True``)."""
    return lambda view: _text(view.json.get(name))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def requires(permission: PermissionSource, project: ProjectSource = None, *, body: bool = False,
             methods: Iterable[str] = (ALL_METHODS,), page: bool = False) -> Callable[[Any], Any]:
    """Declare on an endpoint the permission it needs (for ``methods``, default all of its methods).

    ``page=True`` declares a web page, which a browser session cookie may also authenticate.
    """
    rule = Rule(permission, project, body, page)

    def mark(endpoint: Any) -> Any:
        declared = dict(getattr(endpoint, _RULES_ATTR, {}))
        declared.update({m.upper(): rule for m in methods})
        setattr(endpoint, _RULES_ATTR, declared)
        return endpoint

    return mark


def public(endpoint: Any) -> Any:
    """Declare an endpoint public (its path must also be in the allowlist)."""
    setattr(endpoint, _RULES_ATTR, {ALL_METHODS: PUBLIC})
    return endpoint


def normalise(path: str) -> str:
    """The form paths are compared in: decoded, single slashes, no trailing slash, lower case, /api/."""
    for _ in range(3):  # double encoding (%252F) decodes in two steps
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    path = "/" + "/".join(part for part in path.replace("\\", "/").split("/") if part)
    path = path.lower()
    if path == "/ajax-api" or path.startswith("/ajax-api/"):
        path = "/api" + path[len("/ajax-api"):]
    return path


class Policy:
    """Route declarations: decorators on endpoints first, else this table (path -> {method: Rule})."""

    def __init__(self, table: Mapping[str, Rule | Mapping[str, Rule]] | None = None) -> None:
        self.table: dict[str, dict[str, Rule]] = {}
        for path, rules in (table or {}).items():
            per_method = {ALL_METHODS: rules} if isinstance(rules, Rule) else {m.upper(): r for m, r in rules.items()}
            self.table.setdefault(normalise(path), {}).update(per_method)

    def rules_of(self, route: BaseRoute) -> dict[str, Rule]:
        declared = getattr(getattr(route, "endpoint", None), _RULES_ATTR, None)
        if declared:
            return dict(declared)
        return dict(self.table.get(normalise(getattr(route, "path", "")), {}))

    def rule(self, route: BaseRoute, method: str) -> Rule | None:
        rules = self.rules_of(route)
        method = "GET" if method == "HEAD" else method
        return rules.get(method) or rules.get(ALL_METHODS)


def _methods(route: BaseRoute) -> list[str]:
    if isinstance(route, Route):
        return sorted((route.methods or {"GET"}) - {"HEAD"})
    return [ALL_METHODS]


def route_problems(routes: Iterable[BaseRoute], policy: Policy, public_paths: Iterable[str]) -> list[str]:
    """Every route and method without a declaration, and every public route outside the allowlist."""
    allowed = {normalise(p) for p in public_paths}
    problems = []
    for route in routes:
        path = getattr(route, "path", repr(route))
        for method in _methods(route):
            rule = policy.rule(route, method) if method != ALL_METHODS else policy.rules_of(route).get(ALL_METHODS)
            if rule is None:
                problems.append(f"{method} {path}: no permission declared")
            elif rule.permission is None and normalise(path) not in allowed:
                problems.append(f"{method} {path}: declared public but not in the public allowlist")
    return problems


def check_routes(app: Any, policy: Policy, public_paths: Iterable[str] = DEFAULT_PUBLIC_PATHS) -> None:
    """Refuse to start (UndeclaredRoute) when any route or method of ``app`` declares no permission."""
    problems = route_problems(getattr(app, "routes", app), policy, public_paths)
    if problems:
        raise UndeclaredRoute(f"{len(problems)} route(s) have no permission declaration:\n  " + "\n  ".join(problems),
                              hint="declare each with @requires(...) or a row in the Policy table "
                                   "(shipyard.server.security)")


class Sessions(Protocol):
    """Browser sessions (``shipyard.server.login.SessionCookies``): read only for routes declared pages."""

    login_path: str

    async def principal(self, scope: Scope) -> tuple[Principal | None, str | None]:
        """The logged-in principal of the request's session cookie and its CSRF token (None, None without)."""
        ...


@dataclass
class Guard:
    """What the middleware needs: the policy, the token cache, whether Basic passwords log in, and
    the browser sessions (None: no page accepts a cookie)."""

    policy: Policy
    tokens: TokenCache
    store: Store | None = None
    basic_passwords: bool = False
    public_paths: tuple[str, ...] = DEFAULT_PUBLIC_PATHS
    realm: str = "shipyard"
    sessions: Sessions | None = None
    _compiled: list[tuple[re.Pattern[str], BaseRoute]] | None = field(default=None, repr=False)
    # _find's answers by (root path, path, method): the routes are fixed once installed, so the
    # answer is too; bounded, as the paths come from the network
    _found: dict[tuple[str, str, str], tuple[Rule | None, dict[str, Any], str]] = field(default_factory=dict,
                                                                                        repr=False)
    # the fast path's memo (AuthMiddleware.__call__): (Authorization header, raw path, path, method,
    # root path) -> (token cache generation, valid until, token id, principal, its actor) of a request
    # the full path admitted; bounded
    _admitted: dict[tuple[bytes, bytes, str, str, str], tuple[int, float, int, Principal, str]] = field(
        default_factory=dict, repr=False)


_FOUND_LIMIT = 4096


def install(app: Any, guard: Guard) -> None:
    """Check every route of ``app`` (refusing to start on a gap) and put the middleware in front."""
    check_routes(app, guard.policy, guard.public_paths)
    app.add_middleware(AuthMiddleware, guard=guard, router=app.router)


# The declarations of ``shipyard server``'s routes (create_app passes server_policy(...) to install).
# One permission per verb; MLflow's /ajax-api/ twins share these rows. A route added to the server
# without a row here makes check_routes refuse to start, and tests/auth/test_server_policy.py fail.
_MLFLOW = "/api/2.0/mlflow"
_MLFLOW_ARTIFACTS = ["/api/2.0/mlflow-artifacts/artifacts", "/api/2.0/mlflow-artifacts/artifacts/{path:path}"]
_OPERATIONS = ["/api/v1/triggers/{trigger_id}/approve", "/api/v1/rollouts/{model}/{action}"]
_READ_RUNS = ["/api/v1/runs", "/api/v1/runs/{run_id}", "/api/v1/runs/{run_id}/metrics/{key:path}",
              "/api/v1/runs/{run_id}/artifacts/{path:path}"] + [_MLFLOW + p for p in (
    "/experiments/get", "/experiments/get-by-name", "/experiments/search", "/runs/get", "/runs/search",
    "/metrics/get-history", "/metrics/get-history-bulk", "/metrics/get-history-bulk-interval", "/artifacts/list")]
_WRITE_RUNS = ["/api/v1/runs", "/api/v1/runs/{run_id}/batch", "/api/v1/runs/{run_id}/end",
               "/api/v1/runs/{run_id}/inputs", "/api/v1/runs/{run_id}/artifacts/{path:path}"] + [_MLFLOW + p for p in (
    "/experiments/create", "/experiments/update", "/experiments/delete", "/experiments/restore",
    "/experiments/set-experiment-tag", "/runs/create", "/runs/update", "/runs/delete", "/runs/restore",
    "/runs/log-metric", "/runs/log-parameter", "/runs/set-tag", "/runs/delete-tag", "/runs/log-batch",
    "/runs/log-inputs", "/runs/outputs")]
_READ_MODELS = [_MLFLOW + p for p in (
    "/registered-models/get", "/registered-models/search", "/registered-models/get-latest-versions",
    "/model-versions/get", "/model-versions/search", "/model-versions/get-download-uri", "/registered-models/alias",
    "/logged-models/search", "/logged-models/{model_id}", "/logged-models/{model_id}/artifacts/directories")]
_WRITE_MODELS = [_MLFLOW + p for p in (
    "/registered-models/create", "/registered-models/update", "/registered-models/delete", "/registered-models/rename",
    "/model-versions/delete",
    "/registered-models/set-tag", "/registered-models/delete-tag", "/model-versions/create", "/model-versions/update",
    "/model-versions/set-tag", "/model-versions/delete-tag", "/logged-models", "/logged-models/{model_id}",
    "/logged-models/{model_id}/tags", "/logged-models/{model_id}/tags/{tag_key:path}",
    "/logged-models/{model_id}/params")]
_READ_METHODS = ("GET",)
_WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")


# MLflow lays a logged model's files out as <experiment>/models/<model id>/artifacts/... under the
# artifact proxy (shipyard.server.mlflow_artifacts), a run's as <experiment>/<run id>/artifacts/...
_MODEL_FILES = re.compile(r"^/*[^/]*/+models(?:/|$)")


def _artifact_permission(view: RequestView) -> str:
    """A logged model's files need the models permission, a run's the runs one (read or write by verb)."""
    path = str(view.path_params.get("path") or view.query.get("path") or "")
    area = "models" if _MODEL_FILES.match(path) else "runs"
    return f"{area}:read" if view.method in SAFE_METHODS else f"{area}:write"


def _alias_permission(view: RequestView) -> str:
    """Moving or deleting the champion alias is a promotion; other aliases are model writes."""
    from shipyard.auth.model import permission_for_alias

    return permission_for_alias(str(view.path_params.get("alias") or view.json.get("alias") or view.query.get("alias")
                                    or ""))


# MLflow 3 clients probe server-info before they authenticate (MLflow serves it without a login too)
SERVER_PUBLIC_PATHS = (*DEFAULT_PUBLIC_PATHS, "/api/v1/health", "/api/3.0/mlflow/server-info",
                       "/ajax-api/3.0/mlflow/server-info")

# shipyard.server.api: what remote ``shipyard`` commands read in the project, and the admin routes
# (accounts, tokens, roles: server-wide, so admins only)
_API_READS = {"/api/v1/run-refs/{ref}": "runs:read", "/api/v1/models": "models:read",
              "/api/v1/models/{ref}": "models:read", "/api/v1/rollouts": "models:read",
              "/api/v1/triggers": "models:read", "/api/v1/audit/events": "audit:read",
              "/api/v1/audit/verify": "audit:read"}
_API_ADMIN = {"/api/v1/tokens": ("GET", "POST"), "/api/v1/tokens/{ref}": ("DELETE",),
              "/api/v1/users": ("GET", "POST"), "/api/v1/users/{name}/{action}": ("POST",),
              "/api/v1/projects": ("GET", "POST"), "/api/v1/projects/{project}/members/{user}": ("PUT", "DELETE")}


def server_policy(project: ProjectSource, public_paths: Iterable[str] = SERVER_PUBLIC_PATHS) -> Policy:
    """The declarations of every route of ``shipyard server``, all in ``project``.

    Until experiments and models carry their project, one server serves one project (from config).
    POST on a search route is a read (MLflow searches by POST).
    """
    table: dict[str, dict[str, Rule]] = {}

    def add(paths: list[str], permission: PermissionSource, methods: tuple[str, ...], body: bool = False) -> None:
        for path in paths:
            for method in methods:
                table.setdefault(path, {})[method] = Rule(permission, project, body)

    add(_READ_RUNS, "runs:read", _READ_METHODS)
    add(_WRITE_RUNS, "runs:write", _WRITE_METHODS)
    add([p for p in _READ_RUNS if p.endswith("/search")], "runs:read", ("POST",))
    add(_READ_MODELS, "models:read", _READ_METHODS)
    add(_WRITE_MODELS, "models:write", _WRITE_METHODS)
    add([_MLFLOW + "/logged-models/search", _MLFLOW + "/registered-models/get-latest-versions"], "models:read",
        ("POST",))
    add([_MLFLOW + "/registered-models/alias"], _alias_permission, ("POST", "DELETE"), body=True)
    add(_MLFLOW_ARTIFACTS, _artifact_permission, _READ_METHODS + _WRITE_METHODS)
    # approving a retrain trigger and steering a rollout change what serves: maintainers (deploy:write)
    add(_OPERATIONS, "deploy:write", ("POST",))
    for path, permission in _API_READS.items():
        add([path], permission, _READ_METHODS)
    add(["/api/v1/models/{name}/aliases/{alias}"], _alias_permission, ("PUT", "DELETE"))
    # trusting a version lets its code run in every gateway that serves it: a promotion
    add(["/api/v1/models/{ref}/trust"], "models:promote", ("POST",))
    for path, methods in _API_ADMIN.items():
        table[path] = {method: Rule("admin", None) for method in methods}
    _add_pages(table, project)
    for path in public_paths:
        table[path] = {ALL_METHODS: PUBLIC}
    return Policy(table)


def _add_pages(table: dict[str, dict[str, Rule]], project: ProjectSource) -> None:
    """The web UI's pages (``shipyard.server.ui``: each page module's ``permissions``), cookie allowed."""
    from shipyard.server.ui import page_permissions

    for path, per_method in page_permissions().items():
        for method, permission in per_method.items():
            table.setdefault(path, {})[method] = Rule(permission, project, page=True)


# ``shipyard serve`` (the gateway) with ``serve.auth: token``. Health probes stay open for load
# balancers and Kubernetes; /metrics only when configured public. Predictions and feedback need
# gateway:invoke; metadata needs models:read.
GATEWAY_PUBLIC_PATHS = ("/health", "/ready", "/v2/health/live", "/v2/health/ready", "/ping")
_INVOKE = ["/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer", "/invocations",
           "/v1/models/{name}:predict", "/v1/feedback"]
_METADATA = ["/v2", "/version", "/v2/models/{name}", "/v2/models/{name}/versions/{version}",
             "/v2/models/{name}/ready", "/v2/models/{name}/versions/{version}/ready"]


def gateway_policy(project: ProjectSource, *, metrics_public: bool = False) -> Policy:
    """The declarations of every gateway route; ``project`` names (or finds) the served models' project."""
    table: dict[str, Rule | dict[str, Rule]] = {path: {"POST": Rule("gateway:invoke", project)} for path in _INVOKE}
    table.update({path: {"GET": Rule("models:read", project)} for path in _METADATA})
    table["/metrics"] = PUBLIC if metrics_public else {"GET": Rule("models:read", ANY_PROJECT)}
    table.update({path: PUBLIC for path in GATEWAY_PUBLIC_PATHS})
    return Policy(table)


def gateway_public_paths(*, metrics_public: bool = False) -> tuple[str, ...]:
    """The gateway's allowlist, with /metrics when it is configured public."""
    return (*GATEWAY_PUBLIC_PATHS, "/metrics") if metrics_public else GATEWAY_PUBLIC_PATHS


def secure_gateway(app: Any, store: Store, project: ProjectSource, *, metrics_public: bool = False) -> None:
    """Switch token auth on for the gateway's app (``serve.auth: token``): predictions and feedback
    need gateway:invoke on ``project``, metadata models:read; refuses to start on an undeclared route.

    Tokens are checked against the in-memory cache (``TokenCache``), refreshed from the store every
    poll interval: no database round trip per prediction.
    """
    public_paths = gateway_public_paths(metrics_public=metrics_public)
    tokens = TokenCache(store)
    # loaded before the app starts: a store that cannot be read stops the start, not the first
    # prediction, and the first prediction waits for no query (~5 ms)
    tokens.refresh()
    install(app, Guard(gateway_policy(project, metrics_public=metrics_public), tokens, store=store,
                       public_paths=public_paths))


def check_no_auth(host: str, store_url: str) -> str:
    """Allow ``--no-auth`` only for a laptop: a loopback bind and the embedded SQLite store.

    Returns the warning to print; raises UsageError (exit 2) naming the bind or the store otherwise.
    """
    import ipaddress

    from shipyard.errors import UsageError

    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise UsageError(f"--no-auth with --host {host}: anyone who can reach this address could change models",
                         hint="bind 127.0.0.1 for --no-auth, or keep auth on and use tokens (shipyard tokens create)")
    if not store_url.startswith("sqlite"):
        raise UsageError("--no-auth with a shared store (SHIPYARD_STORE): other servers and users share it",
                         hint="keep auth on and use tokens (shipyard tokens create)")
    return f"authentication is OFF (--no-auth): anyone on this machine can use {host}"


class Denied(Exception):
    """A request refused before its endpoint runs: status, MLflow error code, message."""

    def __init__(self, status: int, code: str, message: str, location: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.location = status, code, message, location


def _send_browser_to_login(scope: Scope, login_path: str) -> None:
    """A browser opening a page without a session goes to the login form (303); others get the 401."""
    headers = Headers(scope=scope)
    if scope["method"] == "GET" and "text/html" in headers.get("accept", "") and not headers.get("hx-request"):
        target = scope["path"] + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
        raise Denied(303, "UNAUTHENTICATED", "log in first", location=f"{login_path}?next={quote(target, safe='')}")


def _refuse_smuggling(scope: Scope) -> None:
    """400 for method overrides, tokens in the URL, encoded separators and dot segments."""
    for name, _ in scope["headers"]:
        override = METHOD_OVERRIDES.get(name.decode("latin-1").lower())
        if override:
            raise Denied(400, "INVALID_PARAMETER_VALUE", f"the header {override} is refused: "
                                                         "send the request with its real method")
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        if key.lower() in TOKEN_QUERY_FIELDS or tokens.looks_like_token(value):
            raise Denied(400, "INVALID_PARAMETER_VALUE", f"query parameter {key!r}: credentials are never accepted "
                                                         "in a URL; send 'Authorization: Bearer <token>'")
    raw = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1").lower()
    if "%2f" in raw or "%5c" in raw or "%25" in raw:
        raise Denied(400, "INVALID_PARAMETER_VALUE", "path: an encoded '/', '\\' or '%' is refused")
    if any(part in (".", "..") for part in unquote(scope["path"]).replace("\\", "/").split("/")):
        raise Denied(400, "INVALID_PARAMETER_VALUE", "path: '.' and '..' segments are refused")


def _find(router: Router, guard: Guard, scope: Scope) -> tuple[Rule | None, dict[str, Any], str]:
    """``_find_route`` and the normalised path, remembered per (root path, path, method): every
    prediction of a model asks the same."""
    key = (scope.get("root_path", ""), scope["path"], scope["method"])
    found = guard._found.get(key)
    if found is None:
        found = (*_find_route(router, guard, scope), normalise(scope["path"]))
        if len(guard._found) >= _FOUND_LIMIT:
            guard._found.clear()
        guard._found[key] = found
    return found[0], dict(found[1]), found[2]


def _find_route(router: Router, guard: Guard, scope: Scope) -> tuple[Rule | None, dict[str, Any]]:
    """The rule of the route Starlette will run; else that of the route the path normalises to.

    Like Starlette's router, a full match (path and method) wins over an earlier partial one (path
    only); a partial match alone means the app answers 405, so there is no rule.
    """
    partial = False
    for route in router.routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            return guard.policy.rule(route, scope["method"]), dict(child.get("path_params", {}))
        partial = partial or match == Match.PARTIAL
    if partial:
        return None, {}
    if guard._compiled is None:
        guard._compiled = [(compile_path(normalise(route.path))[0], route) for route in router.routes
                           if isinstance(route, Route | Mount)]
    path, method = normalise(scope["path"]), scope["method"]
    for regex, route in guard._compiled:
        if isinstance(route, Mount):
            if (path + "/").startswith(normalise(route.path).rstrip("/") + "/"):
                return guard.policy.rule(route, method), {}
            continue
        found = regex.match(path)
        if found and method in (route.methods or {"GET", "HEAD"}):
            return guard.policy.rule(route, method), found.groupdict()
    return None, {}


def _credentials(scope: Scope) -> tuple[str, str, str] | None:
    """("token", token, "") or ("password", password, user) from the Authorization header."""
    values = [v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Denied(400, "INVALID_PARAMETER_VALUE", "Authorization: send one header, not several")
    scheme, _, rest = values[0].strip().partition(" ")
    if scheme.lower() == "bearer" and rest.strip():
        return "token", rest.strip(), ""
    if scheme.lower() == "basic":
        try:
            user, sep, secret = base64.b64decode(rest.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Denied(401, "UNAUTHENTICATED", "Authorization: Basic credentials are not valid base64") from None
        if sep:
            return ("token", secret, user) if tokens.looks_like_token(secret) else ("password", secret, user)
    raise Denied(401, "UNAUTHENTICATED", f"Authorization: the scheme {scheme!r} is not accepted; "
                                         "use 'Bearer <token>' or Basic with a token as the password")


async def authenticate(guard: Guard, scope: Scope) -> Principal | None:
    """The principal of the request's credentials, None without any; Denied(401) when they are bad."""
    found = _credentials(scope)
    if found is None:
        return None
    kind, secret, user = found
    if kind == "password":
        if not guard.basic_passwords or guard.store is None:
            raise Denied(401, "UNAUTHENTICATED", "password login over Basic is off on this server: "
                                                 "send an API token as the password (or as a Bearer token)")
        from shipyard.auth.credentials import login
        from shipyard.auth.service import LoginFailed

        try:
            return await run_in_threadpool(login, guard.store, user, secret, record_success=False)
        except LoginFailed as exc:
            raise Denied(401, "UNAUTHENTICATED", exc.message) from None
    if guard.tokens.stale:
        await run_in_threadpool(guard.tokens.refresh, only_if_stale=True)  # off the event loop
    check = guard.tokens.check(secret)
    if check.principal is None and guard.tokens.may_reload_for(secret):  # a token made since the last load?
        await run_in_threadpool(guard.tokens.refresh)
        check = guard.tokens.check(secret)
    if check.principal is None:
        raise Denied(401, "UNAUTHENTICATED", check.reason)
    return check.principal


async def _view(scope: Scope, receive: Receive, rule: Rule, params: dict[str, Any],
                path: str) -> tuple[RequestView, Receive]:
    """The request as the rule sees it; with ``body``, the body is read once and replayed to the app."""
    query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
    data: dict[str, Any] = {}
    if rule.body:
        raw = await read_body(Request(scope, receive), MAX_POLICY_BODY)
        try:
            parsed = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError:
            parsed = {}  # the endpoint reports the malformed body; the rule sees no fields (fail closed)
        data = parsed if isinstance(parsed, dict) else {}
        receive = _replay(raw)
    return RequestView(scope["method"], path, params, query, data), receive


async def csrf_token_of(scope: Scope, receive: Receive) -> tuple[str | None, Receive]:
    """The CSRF token a request carries (header, else form field) and the receive channel to go on with."""
    for name, value in scope["headers"]:
        if name.decode("latin-1").lower() == CSRF_HEADER.lower():
            return value.decode("latin-1"), receive
    content_type = Headers(scope=scope).get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None, receive
    fields, receive = await read_form(scope, receive, MAX_POLICY_BODY)
    return fields.get(CSRF_FIELD), receive


async def read_form(scope: Scope, receive: Receive, limit: int) -> tuple[dict[str, str], Receive]:
    """A form's text fields (at most ``limit`` bytes, else a 413 naming it) and a receive channel
    that replays the body to whoever reads it next."""
    raw = await read_body(Request(scope, receive), limit)
    async with Request(scope, _replay(raw)).form() as form:
        fields = {key: value for key, value in form.items() if isinstance(value, str)}
    return fields, _replay(raw)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _resolve(rule: Rule, view: RequestView) -> tuple[str, str | None]:
    permission = rule.permission if isinstance(rule.permission, str) else rule.permission(view)  # type: ignore[misc]
    project = rule.project(view) if callable(rule.project) else rule.project
    if isinstance(project, Awaitable):
        project = await project
    return permission, project


class AuthMiddleware:
    """ASGI middleware: authenticate, find the route's rule, decide, and only then call the app."""

    def __init__(self, app: ASGIApp, *, guard: Guard, router: Router) -> None:
        self.app, self.guard, self.router = app, guard, router
        # what the fast path reads, one attribute away (the memo is cleared in place, never replaced)
        self._admitted, self._tokens = guard._admitted, guard.tokens

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        """The fast path, inline; anything else goes to ``_serve`` (lifespan, websockets, the full path).

        A request exactly like one the full path admitted is admitted again from the memo
        (``Guard._admitted``, filled by ``_remember``), with no parsing, hashing or deciding: same
        Authorization header, raw path, path, method and root path (all the decision read: a memo
        rule reads nothing else of the request), no query string, no method override header, one
        Authorization header; the token cache's generation unchanged (no reload or ``expire()``
        since: no revocation or role change missed) and its clock before the decision's end
        (``TokenCache.valid_until``: the load's interval, the token's expiry). The token's use is
        recorded and a background reload started when due, as ``TokenCache.check`` does.

        A plain method with everything inline, not a coroutine calling helpers: an admitted request
        gets the app's own coroutine back, so no frame of ours stays under it, and the check costs
        no Python call of its own (each one ~0.3 µs on the gateway's request path, measured).
        """
        if scope["type"] == "http" and not scope.get("query_string"):
            auth = None
            for name, value in scope["headers"]:
                if name == b"authorization":  # ASGI names are lower case; _credentials reads only this spelling
                    if auth is not None:  # a second one: the full path decides
                        auth = None
                        break
                    auth = value
                elif name and name[0] in _X and name.lower() in _OVERRIDE_NAMES:  # as _refuse_smuggling: any spelling
                    auth = None
                    break
            if auth is not None:
                known = self._admitted.get(
                    (auth, scope.get("raw_path"), scope["path"], scope["method"], scope.get("root_path", "")))
                if known is not None:
                    tokens = self._tokens
                    now = tokens.clock()
                    if known[0] == tokens.generation and now < known[1]:
                        tokens.last_used[known[2]] = now
                        if now >= tokens.reload_due_at:
                            tokens.reload_ahead()
                        state = scope.get("state")
                        if state is None:  # servers pass the lifespan state; only a bare scope lacks it
                            scope["state"] = state = {}
                        state["principal"] = known[3]
                        audit.act_in_task(known[4])
                        return self.app(scope, receive, send)
        return self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Lifespan, refused websockets, and the full path of an HTTP request (``_admit``)."""
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            else:  # no websocket route is declared anywhere: refuse them all
                await send({"type": "websocket.close", "code": 1008})
            return
        try:
            receive = await self._admit(scope, receive)
        except Denied as denied:
            await self._refuse(scope, receive, send, denied)
            return
        except ShipyardError as exc:
            await error_response(exc.http_status, "INVALID_PARAMETER_VALUE" if exc.http_status < 500 else
                                 "TEMPORARILY_UNAVAILABLE", exc.message, exc.hint)(scope, receive, send)
            return
        principal = scope.get("state", {}).get("principal")
        # every audit.record made while serving this request (in the endpoint, in the threadpool,
        # in the store writes it makes) names the principal, not the server's OS user
        with audit.acting_as(principal.actor if principal is not None else None):
            await self.app(scope, receive, send)

    def _remember(self, scope: Scope, rule: Rule, principal: Principal) -> None:
        """Let the fast path (``__call__``) admit the same request again: only for a token, a server
        that gives the raw path, and a rule that reads nothing of the request (a fixed permission and
        project, no body, not a page). Keyed by the raw path as sent, so a percent-encoded twin of an
        admitted path is a new key and takes the full path (which refuses what it must)."""
        raw = scope.get("raw_path")
        if raw is None or not isinstance(rule.permission, str) or callable(rule.project) or rule.body or rule.page:
            return
        cache = self._tokens
        generation = cache.generation  # read first: a reload on another thread after this voids the memo
        found = _credentials(scope)
        entry = cache.entry(found[1]) if found is not None and found[0] == "token" else None
        if entry is None or entry.principal is not principal:  # the table was reloaded since the check
            return
        auth = next(value for name, value in scope["headers"] if name == b"authorization")
        if len(self._admitted) >= _FOUND_LIMIT:
            self._admitted.clear()
        # the key __call__ looks up, in the same order (inline there: no call on the request path)
        self._admitted[(auth, raw, scope["path"], scope["method"], scope.get("root_path", ""))] = (
            generation, cache.valid_until(entry), entry.token_id, principal, principal.actor)

    async def _admit(self, scope: Scope, receive: Receive) -> Receive:
        """Return the receive channel to call the app with, or raise Denied."""
        _refuse_smuggling(scope)
        rule, params, path = _find(self.router, self.guard, scope)
        if rule is not None and rule.permission is None:
            return receive  # an allowlisted public route (check_routes holds the allowlist)
        principal = await authenticate(self.guard, scope)
        if principal is None and rule is not None and rule.page and self.guard.sessions is not None:
            principal, receive = await self._from_session(scope, receive)
        if principal is None and rule is not None and rule.page and self.guard.sessions is not None:
            _send_browser_to_login(scope, self.guard.sessions.login_path)
        if rule is None:
            # unknown path or method: nothing runs but a 404/405, yet even that needs credentials
            if principal is None:
                raise Denied(401, "UNAUTHENTICATED", "no credentials: send 'Authorization: Bearer <token>'")
            self._hand_over(scope, principal)
            return receive
        view, receive = await _view(scope, receive, rule, params, path)
        permission, project = await _resolve(rule, view)
        decision = decide(principal, permission, project)
        if not decision.allowed:
            raise Denied(decision.status or 403, "UNAUTHENTICATED" if decision.status == 401 else "PERMISSION_DENIED",
                         "; ".join(decision.reasons))
        if principal is not None:
            self._remember(scope, rule, principal)
        self._hand_over(scope, principal)
        return receive

    async def _from_session(self, scope: Scope, receive: Receive) -> tuple[Principal | None, Receive]:
        """The session cookie's principal on a page; a state-changing request must carry its CSRF token."""
        assert self.guard.sessions is not None
        principal, csrf = await self.guard.sessions.principal(scope)
        if principal is None or scope["method"] in SAFE_METHODS:
            return principal, receive
        sent, receive = await csrf_token_of(scope, receive)
        if not csrf or not sent or not hmac.compare_digest(sent, csrf):
            raise Denied(403, "PERMISSION_DENIED", f"{CSRF_FIELD}: a cookie-authenticated {scope['method']} needs "
                                                   f"the page's CSRF token (form field {CSRF_FIELD} or header "
                                                   f"{CSRF_HEADER})")
        return principal, receive

    @staticmethod
    def _hand_over(scope: Scope, principal: Principal | None) -> None:
        scope.setdefault("state", {})["principal"] = principal

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, denied: Denied) -> None:
        if denied.location is not None:
            await RedirectResponse(denied.location, status_code=denied.status)(scope, receive, send)
            return
        response = error_response(denied.status, denied.code, denied.message)
        if denied.status == 401:
            response.headers["WWW-Authenticate"] = f'Bearer realm="{self.guard.realm}", Basic realm="{self.guard.realm}"'
        await response(scope, receive, send)


__all__ = [
    "ANY_PROJECT",
    "GATEWAY_PUBLIC_PATHS",
    "PUBLIC",
    "SERVER_PUBLIC_PATHS",
    "AuthMiddleware",
    "Guard",
    "Policy",
    "RequestView",
    "Rule",
    "Sessions",
    "UndeclaredRoute",
    "body_field",
    "check_routes",
    "gateway_policy",
    "gateway_public_paths",
    "install",
    "normalise",
    "path_param",
    "public",
    "query_param",
    "read_form",
    "requires",
    "server_policy",
]
