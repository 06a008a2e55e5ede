"""The web UI's test app: ``create_app`` as ``shipyard server`` wires it, on a scratch project, driven
by Starlette's ``TestClient`` (cookie jar, no network).

``ui_app`` (module scope, auth on, project ``penguins``): ``ui_app.client`` is logged in as the
global admin ``ada`` with the browser's session cookie (and its CSRF token), ``ui_app.viewer()`` as
``vera`` (viewer on the project), ``ui_app.outsider()`` as ``otto`` (no role on the project: 403
everywhere), ``ui_app.anonymous()`` has no cookie (a page sends it to /login, other routes 401). ``ui_app_noauth`` is the
same project served with ``--no-auth``. Seed data through ``ui_app.workspace`` / ``ui_app.store``;
both fixtures share one project per test module, so tests add their own rows and look them up by id.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.testclient import TestClient

from shipyard.project import Project
from shipyard.store import Store
from shipyard.workspace import Workspace

PROJECT = "penguins"
USERS = {"admin": "ada", "viewer": "vera", "outsider": "otto"}


@dataclass
class UIApp:
    """A served project and the browsers that visit it."""

    app: Starlette
    workspace: Workspace
    client: TestClient
    auth: bool
    _clients: dict[str, TestClient] = field(default_factory=dict)

    @property
    def store(self) -> Store:
        return self.workspace.store

    def login(self, name: str) -> TestClient:
        """A new client holding ``name``'s session cookie (cached per name).

        The cookie is the one the login form sets after a password login (a server-side session from
        ``credentials.start_session``, saved by ``SessionCookies.save`` with a fresh CSRF token): each
        page looks the user and the session up again, as for a real browser. The form
        itself is tested in tests/auth/test_login.py; skipping it here skips two password hashes
        (about a second each on a loaded two-core machine) per user and module.
        """
        if name in self._clients:
            return self._clients[name]
        client = TestClient(self.app, raise_server_exceptions=True, follow_redirects=False)
        client.__enter__()
        from shipyard.auth import credentials

        sessions = self.app.state.login.sessions
        sid = credentials.start_session(self.store, name, "password", sessions.max_age)  # kept server-side, as at login
        response = Response()
        scope = {"type": "http", "scheme": "http", "server": ("testserver", 80), "path": "/login",
                 "query_string": b"", "headers": []}
        sessions.save(response, Request(scope), {"user": {"name": name, "via": "password", "sid": sid},
                                                 "csrf": secrets.token_urlsafe(32)})
        cookie = SimpleCookie(response.headers["set-cookie"])
        for key, morsel in cookie.items():
            client.cookies.set(key, morsel.value)
        self._clients[name] = client
        return client

    def viewer(self) -> TestClient:
        """Logged in as ``vera``, a viewer of the project."""
        return self.login(USERS["viewer"])

    def outsider(self) -> TestClient:
        """Logged in as ``otto``, who holds no role on the project."""
        return self.login(USERS["outsider"])

    def anonymous(self) -> TestClient:
        """No session cookie at all."""
        if "" not in self._clients:
            self._clients[""] = TestClient(self.app, raise_server_exceptions=True, follow_redirects=False)
            self._clients[""].__enter__()
        return self._clients[""]

    def csrf(self, client: TestClient | None = None) -> str:
        """The CSRF token of ``client``'s session (what pages put in forms and htmx headers; "" without auth)."""
        login = self.app.state.login
        if login is None:
            return ""
        cookies = "; ".join(f"{k}={v}" for k, v in (client or self.client).cookies.items())
        return login.csrf_token(Request({"type": "http", "headers": [(b"cookie", cookies.encode())]})) or ""

    def close(self) -> None:
        for client in self._clients.values():
            client.__exit__(None, None, None)
        self.client.__exit__(None, None, None)
        self.workspace.close()


def make_ui_app(root: Path, *, auth: bool) -> UIApp:
    """Serve a fresh empty project under ``root`` (with the users above when ``auth``)."""
    from shipyard.auth import service
    from shipyard.server.app import create_app

    root.mkdir(parents=True)
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    workspace = Workspace(Project(root))
    if auth:
        store = workspace.store
        service.create_project(store, PROJECT, actor="ops")
        service.create_user(store, USERS["admin"], admin=True, actor="ops")
        for name in (USERS["viewer"], USERS["outsider"]):
            service.create_user(store, name, actor="ops")
        service.grant(store, PROJECT, USERS["viewer"], "viewer", actor="ops")
    app = create_app(workspace, auth_project=PROJECT if auth else None)
    client = TestClient(app, raise_server_exceptions=True, follow_redirects=False)
    client.__enter__()
    ui = UIApp(app=app, workspace=workspace, client=client, auth=auth)
    if auth:
        admin = ui.login(USERS["admin"])
        ui._clients.pop(USERS["admin"])
        client.__exit__(None, None, None)
        ui.client = admin
    return ui


def _served(tmp_path_factory: pytest.TempPathFactory, *, auth: bool) -> Iterator[UIApp]:
    """A module's UI app on the embedded store (whatever store the environment names)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("SHIPYARD_STORE", raising=False)
        mp.delenv("SHIPYARD_OBJECTS", raising=False)
        ui = make_ui_app(tmp_path_factory.mktemp("ui") / "proj", auth=auth)
        yield ui
        ui.close()


@pytest.fixture(scope="module")
def ui_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIApp]:
    """The UI with auth on; ``.client`` is logged in as a global admin (see the module docstring)."""
    yield from _served(tmp_path_factory, auth=True)


@pytest.fixture(scope="module")
def ui_app_noauth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UIApp]:
    """The UI served without auth (``shipyard server --no-auth``); ``.client`` needs no login."""
    yield from _served(tmp_path_factory, auth=False)
