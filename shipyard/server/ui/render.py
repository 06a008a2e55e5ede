"""Render a page: one Jinja2 environment, the layout's context (who, which project, the CSRF token,
what the viewer may do), and the answers every page shares (404 page, error page).

Templates live in ``shipyard/server/ui/templates``; each page extends ``base.html`` and fills
``title`` and ``content``. A request from htmx (``HX-Request`` header) may render a fragment
template instead of the whole page: pass ``fragment=`` to ``render``.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from shipyard import __version__
from shipyard.auth.model import Principal, decide

TEMPLATES_DIR = Path(__file__).parent / "templates"
# the navigation bar: (path, label); a page marks itself current with ``nav="/runs"``
NAV: tuple[tuple[str, str], ...] = (
    ("/", "Home"), ("/runs", "Runs"), ("/pipeline", "Pipeline"), ("/data", "Data"), ("/models", "Models"),
    ("/rollouts", "Rollouts"), ("/monitoring", "Monitoring"), ("/audit", "Audit"),
)
STATIC = {"htmx": "/static/htmx-2.0.11.min.js", "uplot_js": "/static/uPlot-1.6.32.iife.min.js",
          "uplot_css": "/static/uPlot-1.6.32.min.css", "css": "/static/shipyard.css", "js": "/static/shipyard.js"}


@cache
def environment() -> Any:
    """The one Jinja2 environment (autoescaped; undefined names fail loudly in templates)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES_DIR), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env


def principal_of(request: Request) -> Principal | None:
    """The logged-in principal (None when the server runs without auth)."""
    return getattr(request.state, "principal", None)


def project_of(request: Request) -> str:
    """The project this server serves (its name; the folder's name without auth)."""
    return str(getattr(request.app.state, "project", None) or request.app.state.workspace.project.root.name)


def can(request: Request, permission: str) -> bool:
    """Whether the viewer may do what ``permission`` allows on this server's project (always without auth).

    Pages use it to show an action only to those allowed; the enforcement point still checks the
    POST itself, so a hidden button is a courtesy, not the control.
    """
    if request.app.state.login is None:
        return True
    return decide(principal_of(request), permission, project_of(request)).allowed


def csrf_token(request: Request) -> str:
    """The session's CSRF token for the page's forms and htmx requests ("" without auth)."""
    login = request.app.state.login
    if login is None:
        return ""
    return login.csrf_token(request) or ""


def render(request: Request, template: str, context: Mapping[str, Any] | None = None, *, status: int = 200,
           nav: str = "", fragment: str | None = None, headers: Mapping[str, str] | None = None) -> HTMLResponse:
    """Render ``template`` (or ``fragment`` for an htmx request) with the layout's context added."""
    name = fragment if fragment is not None and request.headers.get("HX-Request") == "true" else template
    principal = principal_of(request)
    values = {
        "request": request, "nav": NAV, "current": nav, "static": STATIC, "version": __version__,
        "project": project_of(request), "principal": principal, "auth": request.app.state.login is not None,
        "csrf_token": csrf_token(request), "can": lambda permission: can(request, permission),
        **(context or {}),
    }
    body = environment().get_template(name).render(values)
    return HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store", **(headers or {})})


def error_page(request: Request, status: int, title: str, message: str, *, nav: str = "") -> HTMLResponse:
    """The error page with ``status``: its ``title`` and the ``message`` saying what went wrong."""
    return render(request, "error.html", {"status": status, "title": title, "message": message}, status=status,
                  nav=nav)


def not_found(request: Request, what: str) -> HTMLResponse:
    """The 404 page: ``what`` names what was asked for and not found (e.g. "run 'abc'")."""
    return error_page(request, 404, "Not found", f"no {what}")


def bad_request(request: Request, message: str) -> HTMLResponse:
    """The 400 page for a malformed filter, parameter or path; ``message`` names what was wrong."""
    return error_page(request, 400, "Bad request", message)


def refused(request: Request, message: str, *, nav: str = "") -> HTMLResponse:
    """The 409 page of an action the current state does not allow (``message`` says why)."""
    return error_page(request, 409, "Refused", message, nav=nav)
