"""Browser login for the web pages: password or single sign-on, a signed session cookie, CSRF tokens.

- ``GET /login`` shows the form; ``POST /login`` checks the password with
  ``shipyard.auth.credentials.login`` (one answer for an unknown user and a wrong password, lockout
  after repeated failures, both audited); ``POST /logout`` ends the session.
- ``GET /login/oidc`` starts single sign-on with Authlib's Starlette client (authorization code
  with PKCE S256, the provider found from its ``server_metadata_url``); ``GET /login/oidc/callback``
  takes the verified ID token's claims and maps its groups to roles (``shipyard.auth.oidc``).
- The session is one cookie, ``shipyard_session``: JSON signed with itsdangerous (timestamped, so
  it expires), HttpOnly, SameSite=Lax, Secure over HTTPS. It carries the user (a password user is
  looked up again on every page, so disabling takes effect at once; an SSO user's roles are the
  ones mapped at login), a CSRF token, and the OIDC flow's state while a login is under way.
- ``AuthMiddleware`` reads the cookie only on routes declared pages (``requires(..., page=True)``)
  and then wants the CSRF token on every state-changing method; the API and the gateway never
  accept it. The login routes themselves are public (``LOGIN_PUBLIC_PATHS``) and check the CSRF
  token of the session they are given.
"""

from __future__ import annotations

import hmac
import html
import secrets
import time
from collections import deque
from collections.abc import Callable
from types import MappingProxyType
from typing import Any
from urllib.parse import quote

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import URL
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import Scope

from shipyard.auth import credentials
from shipyard.auth.model import Principal
from shipyard.auth.oidc import principal_from_claims
from shipyard.auth.service import LoginFailed
from shipyard.auth.settings import AuthSettings, session_secret
from shipyard.errors import InputError
from shipyard.server.security import CSRF_FIELD, public, read_form
from shipyard.store import Store

COOKIE = "shipyard_session"
LOGIN_PUBLIC_PATHS = ("/login", "/logout", "/login/oidc", "/login/oidc/callback")
MAX_FORM_BYTES = 64 * 1024
_SALT = "shipyard.session"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in - Shipyard</title></head>
<body><main>
<h1>Sign in to Shipyard</h1>
{message}
<form method="post" action="/login">
  <input type="hidden" name="{csrf_field}" value="{csrf}">
  <input type="hidden" name="next" value="{next}">
  <label>User name <input name="username" autocomplete="username" required></label>
  <label>Password <input name="password" type="password" autocomplete="current-password" required></label>
  <button type="submit">Sign in</button>
</form>
{sso}
</main></body></html>
"""


def safe_next(target: str | None) -> str:
    """A local path to go to after login; anything else (another host, a scheme) goes to ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


class SessionCookies:
    """Signs, reads and writes the session cookie; gives the middleware a page request's principal."""

    login_path = "/login"

    def __init__(self, store: Store, settings: AuthSettings) -> None:
        self.store = store
        self.max_age = int(settings.session_hours * 3600)
        self._signer = URLSafeTimedSerializer(session_secret(store, settings), salt=_SALT)

    def load(self, scope: Scope) -> dict[str, Any]:
        """The session's data; an empty dict without a cookie or with a bad, forged or expired one."""
        value = Request(scope).cookies.get(COOKIE)
        if not value:
            return {}
        try:
            data = self._signer.loads(value, max_age=self.max_age)
        except BadSignature:  # includes SignatureExpired
            return {}
        return data if isinstance(data, dict) else {}

    def save(self, response: Response, request: Request, data: dict[str, Any]) -> None:
        response.set_cookie(COOKIE, self._signer.dumps(data), max_age=self.max_age, path="/", httponly=True,
                            samesite="lax", secure=request.url.scheme == "https")

    @staticmethod
    def clear(response: Response, request: Request) -> None:
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=request.url.scheme == "https")

    async def principal(self, scope: Scope) -> tuple[Principal | None, str | None]:
        """The logged-in principal and the session's CSRF token (for ``AuthMiddleware``, on pages only)."""
        data = self.load(scope)
        user = data.get("user")
        if not isinstance(user, dict) or not isinstance(user.get("name"), str) or not isinstance(user.get("sid"), str):
            return None, None  # no session, or a cookie without a server-side session: log in again
        if user.get("via") == "password":
            found = await run_in_threadpool(credentials.session_user, self.store, user["name"], user["sid"])
        elif not await run_in_threadpool(credentials.session_alive, self.store, user["sid"]):
            found = None  # logged out (this cookie may be a copy): refused at once, by every server process
        else:
            found = Principal(name=user["name"], admin=bool(user.get("admin")),
                              roles=MappingProxyType(dict(user.get("roles") or {})), via="oidc")
        return found, data.get("csrf") if found is not None else None


def _csrf(data: dict[str, Any]) -> str:
    if not isinstance(data.get("csrf"), str):
        data["csrf"] = secrets.token_urlsafe(32)
    return data["csrf"]


def _csrf_matches(data: dict[str, Any], sent: Any) -> bool:
    expected = data.get("csrf")
    return isinstance(expected, str) and isinstance(sent, str) and hmac.compare_digest(expected, sent)


async def _form(request: Request) -> dict[str, str]:
    fields, _ = await read_form(request.scope, request.receive, MAX_FORM_BYTES)  # bounded: a 413 naming the limit
    return fields


class Throttle:
    """At most ``limit`` attempts per client address in any ``window`` seconds (in this process).

    The account lockout stops guessing one user's password; this stops one address from trying
    many users (and from making the server do Argon2 work without end).
    """

    def __init__(self, limit: int = 20, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._seen: dict[str, deque[float]] = {}

    def admit(self, client: str) -> float | None:
        """None when ``client`` may try now (and count it), else the seconds until it may."""
        now = self._clock()
        recent = self._seen.setdefault(client, deque())
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        if len(recent) >= self.limit:
            return recent[0] + self.window - now
        recent.append(now)
        if len(self._seen) > 10_000:  # forget idle addresses so the table stays small
            self._seen = {k: v for k, v in self._seen.items() if v and v[-1] > now - self.window}
        return None


class WebLogin:
    """The login routes of one server: password login, OIDC (when configured) and logout."""

    def __init__(self, store: Store, settings: AuthSettings, *, throttle: Throttle | None = None) -> None:
        self.store = store
        self.settings = settings
        self.sessions = SessionCookies(store, settings)
        self.throttle = throttle or Throttle()
        self._oidc = self._register_oidc() if settings.oidc is not None else None

    def _register_oidc(self) -> Any:
        from authlib.integrations.starlette_client import OAuth

        assert self.settings.oidc is not None
        oidc = self.settings.oidc
        oauth = OAuth()
        return oauth.register("shipyard", client_id=oidc.client_id, client_secret=oidc.client_secret,
                              server_metadata_url=oidc.metadata_url,
                              client_kwargs={"scope": oidc.scopes, "code_challenge_method": "S256"})

    def routes(self) -> list[Route]:
        """The routes to add to the app (before ``security.install``, which checks them)."""
        return [Route("/login", self.login_form, methods=["GET"]),
                Route("/login", self.login_submit, methods=["POST"]),
                Route("/logout", self.logout, methods=["POST"]),
                Route("/login/oidc", self.oidc_start, methods=["GET"]),
                Route("/login/oidc/callback", self.oidc_callback, methods=["GET"])]

    def _page(self, request: Request, data: dict[str, Any], *, next_path: str, message: str = "",
              status: int = 200) -> Response:
        sso = ""
        if self._oidc is not None:
            sso = f'<p><a href="/login/oidc?next={html.escape(quote(next_path))}">Sign in with single sign-on</a></p>'
        body = _PAGE.format(message=f'<p role="alert">{html.escape(message)}</p>' if message else "",
                            csrf_field=CSRF_FIELD, csrf=html.escape(_csrf(data)), next=html.escape(next_path), sso=sso)
        response = HTMLResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
        self.sessions.save(response, request, data)
        return response

    def csrf_token(self, request: Request) -> str | None:
        """The CSRF token a page embeds in its forms (``csrf_token`` field) or htmx headers."""
        token = self.sessions.load(request.scope).get("csrf")
        return token if isinstance(token, str) else None

    @public
    async def login_form(self, request: Request) -> Response:
        data = self.sessions.load(request.scope)
        return self._page(request, data, next_path=safe_next(request.query_params.get("next")))

    @public
    async def login_submit(self, request: Request) -> Response:
        data = self.sessions.load(request.scope)
        form = await _form(request)
        next_path = safe_next(form.get("next"))
        if not _csrf_matches(data, form.get(CSRF_FIELD)):
            return self._page(request, data, next_path=next_path, status=403,
                              message=f"{CSRF_FIELD}: the form has expired or came from another site; try again")
        username, password = form.get("username", ""), form.get("password", "")
        wait = self.throttle.admit(request.client.host if request.client else "?")
        if wait is not None:
            response = self._page(request, data, next_path=next_path, status=429,
                                  message=f"too many sign-in attempts from your address: wait {wait:.0f} s")
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response
        if not username or not password:
            return self._page(request, data, next_path=next_path, status=400,
                              message="username and password: both are required")
        try:
            principal = await run_in_threadpool(credentials.login, self.store, username, password)
        except LoginFailed as exc:
            return self._page(request, data, next_path=next_path, status=401, message=exc.message)
        return await self._start_session(request, principal, "password", next_path)

    async def _start_session(self, request: Request, principal: Principal, via: str, next_path: str) -> Response:
        # a fresh session and CSRF token at login: a token planted before login is worth nothing after;
        # the session id is also kept on the server, so logging out ends it for every copy of the cookie
        sid = await run_in_threadpool(credentials.start_session, self.store, principal.name, via,
                                      self.sessions.max_age)
        user: dict[str, Any] = {"name": principal.name, "via": via, "sid": sid}
        if via != "password":
            user.update(admin=principal.admin, roles=dict(principal.roles))
        response = RedirectResponse(next_path, status_code=303)
        self.sessions.save(response, request, {"user": user, "csrf": secrets.token_urlsafe(32)})
        return response

    @public
    async def logout(self, request: Request) -> Response:
        data = self.sessions.load(request.scope)
        form = await _form(request)
        if data.get("user") and not _csrf_matches(data, form.get(CSRF_FIELD) or request.headers.get("x-csrf-token")):
            return HTMLResponse(f"<p>{CSRF_FIELD}: logging out needs the page's CSRF token</p>", status_code=403)
        user = data.get("user")
        if isinstance(user, dict) and isinstance(user.get("sid"), str):
            await run_in_threadpool(credentials.end_session, self.store, user["sid"], actor=str(user.get("name")))
        response = RedirectResponse("/login", status_code=303)
        self.sessions.clear(response, request)
        return response

    @public
    async def oidc_start(self, request: Request) -> Response:
        if self._oidc is None:
            return HTMLResponse("<p>single sign-on is not configured on this server (SHIPYARD_OIDC_ISSUER)</p>",
                                status_code=404)
        data = self.sessions.load(request.scope)
        data["next"] = safe_next(request.query_params.get("next"))
        request.scope["session"] = data.setdefault("flow", {})  # Authlib keeps state, nonce, PKCE verifier here
        response = await self._oidc.authorize_redirect(request, str(URL(str(request.base_url)).replace(
            path="/login/oidc/callback")))
        data["flow"] = request.scope["session"]
        self.sessions.save(response, request, data)
        return response

    @public
    async def oidc_callback(self, request: Request) -> Response:
        from authlib.integrations.base_client import OAuthError

        if self._oidc is None or self.settings.oidc is None:
            return HTMLResponse("<p>single sign-on is not configured on this server</p>", status_code=404)
        data = self.sessions.load(request.scope)
        request.scope["session"] = data.get("flow") or {}
        try:
            token = await self._oidc.authorize_access_token(request)  # checks state, PKCE; verifies the ID token
        except OAuthError as exc:
            return self._page(request, {}, next_path="/", status=401, message=f"single sign-on failed: {exc}")
        claims = token.get("userinfo")
        if not claims:
            return self._page(request, {}, next_path="/", status=401,
                              message="single sign-on failed: the provider sent no ID token")
        oidc = self.settings.oidc
        try:
            principal = principal_from_claims(claims, oidc.group_mapping, group_claim=oidc.groups_claim)
        except InputError as exc:
            return self._page(request, {}, next_path="/", status=401, message=f"single sign-on failed: {exc.message}")
        await run_in_threadpool(credentials.record_sso_login, self.store, principal, oidc.issuer)
        return await self._start_session(request, principal, "oidc", safe_next(data.get("next")))


def secure(app: Any, store: Store, project: str, settings: AuthSettings | None = None) -> WebLogin:
    """Switch authentication on for ``shipyard server``'s app (what ``create_app(auth_project=...)`` calls).

    Adds the login routes, then installs the enforcement point with the server's policy for
    ``project``, the token cache and the browser sessions; refuses to start on an undeclared route.
    """
    from shipyard.auth.cache import TokenCache
    from shipyard.auth.settings import auth_settings
    from shipyard.server.security import SERVER_PUBLIC_PATHS, Guard, install, server_policy

    login = WebLogin(store, settings or auth_settings())
    app.router.routes.extend(login.routes())
    app.state.tokens = TokenCache(store)  # the admin routes (shipyard.server.api) expire it after a change
    install(app, Guard(server_policy(project), app.state.tokens, store=store,
                       public_paths=(*SERVER_PUBLIC_PATHS, *LOGIN_PUBLIC_PATHS), sessions=login.sessions))
    return login
