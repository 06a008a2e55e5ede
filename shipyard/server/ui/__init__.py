"""The web UI of ``shipyard server``: server-rendered pages (Jinja2), htmx for partial updates,
uPlot for charts. The server decides what to send: pages, keyset pagination and downsampled series.

Each module of ``shipyard.server.ui.pages`` is one area of the UI and exposes two names:

- ``routes``: its Starlette routes (endpoints render with ``shipyard.server.ui.render.render``);
- ``permissions``: route path -> permission for every method (``"runs:read"``), or
  path -> {method: permission}. ``shipyard.server.security.server_policy`` declares each as a web
  page of the server's project, so the browser's session cookie (with a CSRF token on every POST)
  or a token opens it, and nobody else.

To add an area, write ``pages/<area>.py``; this package collects every module found there, in name
order, so no list needs editing. Vendored static files (versions and licenses in
``static/VENDORED.md``) are served by ``static_file`` with a year-long cache, their names carry
their versions.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Mapping
from functools import cache
from types import ModuleType

from starlette.routing import BaseRoute, Route

from shipyard.server.ui.static import static_file

STATIC_PERMISSION = "runs:read"


@cache
def page_modules() -> tuple[ModuleType, ...]:
    """Every page module of ``shipyard.server.ui.pages``, in name order."""
    from shipyard.server.ui import pages

    names = sorted(info.name for info in pkgutil.iter_modules(pages.__path__) if not info.name.startswith("_"))
    return tuple(importlib.import_module(f"{pages.__name__}.{name}") for name in names)


def page_permissions() -> dict[str, Mapping[str, str]]:
    """Path -> {method or "*": permission} of every UI route, static files included."""
    table: dict[str, Mapping[str, str]] = {"/static/{name}": {"*": STATIC_PERMISSION}}
    for module in page_modules():
        for path, permission in module.permissions.items():
            table[path] = {"*": permission} if isinstance(permission, str) else dict(permission)
    return table


def _routes() -> list[BaseRoute]:
    found: list[BaseRoute] = [Route("/static/{name}", static_file, methods=["GET"])]
    for module in page_modules():
        found.extend(module.routes)
    return found


routes: list[BaseRoute] = _routes()
