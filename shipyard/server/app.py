"""The one ASGI app of ``shipyard server``.

Routes come from the modules named in ``ROUTE_MODULES``; each module exposes ``routes``, a list of
Starlette routes whose endpoints find the project through ``request.app.state.workspace``. To add an
area (the registry room adds ``shipyard.server.mlflow_registry``), write the module and append its
name to ``ROUTE_MODULES``: nothing else changes. Errors of every route go through one set of
handlers (``errors.HANDLERS``), which answer in MLflow's ``{error_code, message}`` shape.
"""

from __future__ import annotations

import importlib
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from shipyard import __version__
from shipyard.server.errors import HANDLERS, json_response
from shipyard.workspace import Workspace

# Route modules mounted in this order; each exposes ``routes: list[BaseRoute]``.
ROUTE_MODULES: list[str] = [
    "shipyard.server.tracking",
    "shipyard.server.mlflow",
    "shipyard.server.mlflow_artifacts",
    "shipyard.server.mlflow_registry",
    "shipyard.server.mlflow_logged_models",
    "shipyard.server.operations",
    "shipyard.server.api",
    "shipyard.server.ui",
]


async def health(request: Request) -> Response:
    return json_response({"status": "ok", "version": __version__})


def collect_routes(modules: list[str] | None = None) -> list[BaseRoute]:
    routes: list[BaseRoute] = [Route("/health", health), Route("/api/v1/health", health)]
    for name in modules if modules is not None else ROUTE_MODULES:
        routes.extend(importlib.import_module(name).routes)
    return routes


def create_app(workspace: Workspace, *, modules: list[str] | None = None, auth_project: str | None = None) -> Starlette:
    """The server app for a project (its store and object store are opened before serving).

    A route module may also define ``on_startup(workspace)``, run once here (the MLflow module
    creates MLflow's Default experiment, which its clients expect to exist). With ``auth_project``,
    authentication is on: the login routes are added and every route goes through the enforcement
    point with the server's policy for that project (``shipyard.server.login.secure``), which
    refuses to start on a route without a declaration; ``app.state.login`` is the browser login.
    """

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        workspace.close()

    workspace.store  # noqa: B018 - open (and migrate) before the first request, not during it
    workspace.objects  # noqa: B018
    for name in modules if modules is not None else ROUTE_MODULES:
        startup = getattr(importlib.import_module(name), "on_startup", None)
        if startup is not None:
            startup(workspace)
    app = Starlette(routes=collect_routes(modules), exception_handlers=HANDLERS, lifespan=lifespan)  # type: ignore[arg-type]
    app.state.workspace = workspace
    app.state.login = None
    app.state.project = auth_project or workspace.project.root.name
    if auth_project is not None:
        from shipyard.server.login import secure

        app.state.login = secure(app, workspace.store, auth_project)
    return app
