"""Browser login on a real server (uvicorn on 127.0.0.1) with httpx as the browser (cookie jar,
redirects): password login, single sign-on against a real oidc-provider-mock process, CSRF on every
cookie-authenticated write, logout, and the cookie refused everywhere but on web pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shipyard import audit
from shipyard.auth import service
from shipyard.auth.cache import TokenCache
from shipyard.auth.settings import auth_settings
from shipyard.server.login import COOKIE, LOGIN_PUBLIC_PATHS, Throttle, WebLogin, safe_next
from shipyard.server.security import DEFAULT_PUBLIC_PATHS, Guard, Policy, Rule, install
from tests.auth.live import serve

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    from oidc_provider_mock import User, run_server_in_thread

    users = [User(sub="carol", claims={"preferred_username": "carol", "groups": ["ml-team"]}),
             User(sub="dave", claims={"preferred_username": "dave", "groups": ["unrelated"]})]
    with run_server_in_thread(require_nonce=True, user_claims=users) as server:
        yield f"http://localhost:{server.server_port}"


def build(store, env: dict[str, str], throttle: Throttle | None = None) -> Starlette:  # type: ignore[no-untyped-def]
    login = WebLogin(store, auth_settings(env), throttle=throttle)

    async def runs_page(request: Request) -> JSONResponse:
        return JSONResponse({"user": request.state.principal.name, "csrf": login.csrf_token(request)})

    def tag_run(request: Request) -> JSONResponse:
        with store.write() as session:
            audit.record(session, "test.page_write", request.path_params["name"])
        return JSONResponse({"ok": True})

    async def runs_api(request: Request) -> JSONResponse:
        return JSONResponse({"runs": []})

    app = Starlette(routes=[Route("/ui/runs", runs_page), Route("/ui/runs/{name}", tag_run, methods=["POST"]),
                            Route("/api/runs", runs_api, methods=["GET", "POST"]), *login.routes()])
    policy = Policy({"/ui/runs": Rule("runs:read", "penguins", page=True),
                     "/ui/runs/{name}": Rule("runs:write", "penguins", page=True),
                     "/api/runs": Rule("runs:read", "penguins")})
    install(app, Guard(policy, TokenCache(store), public_paths=(*DEFAULT_PUBLIC_PATHS, *LOGIN_PUBLIC_PATHS),
                       sessions=login.sessions))
    return app


@pytest.fixture
def site(store, provider) -> Iterator[str]:  # type: ignore[no-untyped-def]
    service.create_project(store, "penguins", actor="ops")
    service.create_user(store, "alice", password=PASSWORD, actor="ops")
    service.grant(store, "penguins", "alice", "editor", actor="ops")
    env = {"SHIPYARD_OIDC_ISSUER": provider, "SHIPYARD_OIDC_CLIENT_ID": "shipyard",
           "SHIPYARD_OIDC_CLIENT_SECRET": "any", "SHIPYARD_OIDC_GROUP_MAP": "ml-team=penguins:editor"}
    with serve(build(store, env)) as url:
        yield url


def form_csrf(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, page.text
    return found.group(1)


def password_login(browser: httpx.Client, user: str, password: str, next_path: str = "/ui/runs") -> httpx.Response:
    csrf = form_csrf(browser.get(f"/login?next={next_path}"))
    return browser.post("/login", data={"csrf_token": csrf, "username": user, "password": password,
                                        "next": next_path})


def events(store, kind: str) -> list[audit.AuditEvent]:  # type: ignore[no-untyped-def,name-defined]
    with store.read() as session:
        return audit.events(session, kind=kind, limit=1000)


def test_password_login_csrf_and_logout(site, store) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=site, follow_redirects=True, timeout=20) as browser:
        assert browser.get("/ui/runs").status_code == 401  # not logged in
        # a browser opening the page is sent to the form, and back to the page after login
        sent = browser.get("/ui/runs?tab=all", headers={"Accept": "text/html"}, follow_redirects=False)
        assert sent.status_code == 303 and sent.headers["location"] == "/login?next=%2Fui%2Fruns%3Ftab%3Dall"
        assert 'name="next" value="/ui/runs?tab=all"' in browser.get(sent.headers["location"]).text
        assert browser.get("/api/runs", headers={"Accept": "text/html"}).status_code == 401  # the API never
        answered = password_login(browser, "alice", PASSWORD)
        assert answered.status_code == 200 and answered.json()["user"] == "alice"
        cookie = next(h for h in answered.history[0].headers.get_list("set-cookie") if h.startswith(COOKIE))
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower() and "path=/" in cookie.lower()
        csrf = answered.json()["csrf"]
        # a cookie-authenticated write without the page's CSRF token is refused, and writes nothing
        refused = browser.post("/ui/runs/r1", data={"note": "x"})
        assert refused.status_code == 403 and "csrf_token" in refused.json()["message"]
        assert browser.post("/ui/runs/r1", data={"csrf_token": "forged"}).status_code == 403
        assert events(store, "test.page_write") == []
        assert browser.post("/ui/runs/r1", data={"csrf_token": csrf}).status_code == 200
        assert browser.post("/ui/runs/r2", headers={"X-CSRF-Token": csrf}).status_code == 200
        assert [(e.subject, e.actor) for e in events(store, "test.page_write")] == [("r2", "alice"), ("r1", "alice")]
        # the cookie is never accepted on the API
        assert browser.get("/api/runs").status_code == 401
        assert browser.post("/api/runs", headers={"X-CSRF-Token": csrf}).status_code == 401
        # logging out needs the token too, then the session is gone
        assert browser.post("/logout").status_code == 403
        assert browser.get("/ui/runs").status_code == 200
        out = browser.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 200 and out.url.path == "/login"
        assert browser.get("/ui/runs").status_code == 401


def test_logout_ends_the_session_for_every_copy_of_the_cookie_on_every_server(site, store) -> None:  # type: ignore[no-untyped-def]
    with serve(build(store, {})) as other, httpx.Client(base_url=site, follow_redirects=True, timeout=20) as browser:
        answered = password_login(browser, "alice", PASSWORD)
        assert answered.status_code == 200
        stolen = {COOKIE: browser.cookies[COOKIE]}  # a copy of the cookie, used from elsewhere
        for url in (site, other):  # a second server process on the same store takes it too
            assert httpx.get(url + "/ui/runs", cookies=stolen).status_code == 200
        assert browser.post("/logout", data={"csrf_token": answered.json()["csrf"]}).url.path == "/login"
        for url in (site, other):  # refused at once, everywhere: the session ended on the server
            assert httpx.get(url + "/ui/runs", cookies=stolen).status_code == 401
        assert [e.actor for e in events(store, "auth.logout")] == ["alice"]
        # a new password ends every session of the user too
        assert password_login(browser, "alice", PASSWORD).status_code == 200
        again = {COOKIE: browser.cookies[COOKIE]}
        assert httpx.get(other + "/ui/runs", cookies=again).status_code == 200
        service.set_password(store, "alice", PASSWORD + "!", actor="ops")
        assert httpx.get(other + "/ui/runs", cookies=again).status_code == 401


def test_one_answer_for_unknown_user_and_wrong_password_then_lockout(site, store) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=site, follow_redirects=True, timeout=20) as browser:
        wrong = password_login(browser, "alice", "not the password")
        unknown = password_login(browser, "mallory", "not the password")
        assert (wrong.status_code, unknown.status_code) == (401, 401)
        assert wrong.text.replace(form_csrf(wrong), "") == unknown.text.replace(form_csrf(unknown), "")
        assert COOKIE not in browser.cookies or browser.get("/ui/runs").status_code == 401
        for _ in range(4):
            password_login(browser, "alice", "still wrong")
        locked = password_login(browser, "alice", PASSWORD)  # the right password, but locked now
        assert locked.status_code == 401 and locked.text.replace(form_csrf(locked), "") == wrong.text.replace(
            form_csrf(wrong), "")
        csrf = form_csrf(browser.get("/login"))
        no_csrf = browser.post("/login", data={"username": "alice", "password": PASSWORD})
        assert no_csrf.status_code == 403 and "csrf_token" in no_csrf.text
        assert browser.post("/login", data={"csrf_token": csrf, "username": "alice"}).status_code == 400
    assert len(events(store, "auth.login_failed")) == 7 and len(events(store, "auth.lockout")) == 1


def test_a_session_ends_when_the_user_is_disabled_and_a_forged_cookie_is_nothing(site, store) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=site, follow_redirects=True, timeout=20) as browser:
        assert password_login(browser, "alice", PASSWORD).status_code == 200
        value = browser.cookies[COOKIE]
        service.disable_user(store, "alice", actor="ops")
        assert browser.get("/ui/runs").status_code == 401
    with httpx.Client(base_url=site, timeout=20) as forger:
        forger.cookies.set(COOKIE, value[:-3] + ("AAA" if not value.endswith("AAA") else "BBB"))
        assert forger.get("/ui/runs").status_code == 401


def test_redirects_stay_on_the_site_and_tokens_stay_out_of_urls(site) -> None:  # type: ignore[no-untyped-def]
    assert [safe_next(t) for t in ("//evil.example/x", "https://evil.example", "/\\evil", "ui", "/ui/runs")] == [
        "/", "/", "/", "/", "/ui/runs"]
    with httpx.Client(base_url=site, timeout=20) as browser:
        first = password_login(browser, "alice", PASSWORD, next_path="//evil.example/")
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert browser.get("/ui/runs", params={"access_token": "x"}).status_code == 400


def test_single_sign_on_with_pkce_maps_groups_to_roles(site, store, provider) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=site, timeout=20) as browser:
        start = browser.get("/login/oidc", params={"next": "/ui/runs"})
        assert start.status_code == 302
        query = parse_qs(urlparse(start.headers["location"]).query)
        assert start.headers["location"].startswith(provider)
        assert query["code_challenge_method"] == ["S256"] and query["code_challenge"] and query["nonce"]
        # the user signs in at the provider, which sends the browser back to the callback
        back = browser.post(start.headers["location"], data={"sub": "carol"})
        assert back.status_code in (302, 303) and back.headers["location"].startswith(site + "/login/oidc/callback")
        landed = browser.get(back.headers["location"], follow_redirects=True)
        assert landed.status_code == 200 and landed.json()["user"] == "carol"
        csrf = landed.json()["csrf"]
        assert browser.post("/ui/runs/sso", data={"csrf_token": csrf}).status_code == 200
        assert browser.post("/ui/runs/sso2").status_code == 403
        assert browser.get("/api/runs").status_code == 401
        # replaying the callback (its state is used up) does not log anyone in
        browser.cookies.clear()
        assert browser.get(back.headers["location"]).status_code == 401
    assert [e.actor for e in events(store, "test.page_write")] == ["carol via oidc"]
    assert [e.subject for e in events(store, "auth.login")] == ["user:carol"]


def test_single_sign_on_without_a_mapped_group_grants_nothing(site, provider) -> None:  # type: ignore[no-untyped-def]
    with httpx.Client(base_url=site, timeout=20) as browser:
        start = browser.get("/login/oidc")
        back = browser.post(start.headers["location"], data={"sub": "dave"})
        landed = browser.get(back.headers["location"], follow_redirects=True)
        assert landed.url.path == "/"  # logged in (no page at / in this app) ...
        assert browser.get("/ui/runs").status_code == 403  # ... but with no role on the project


def test_single_sign_on_end_to_end_on_the_wired_server(project, provider, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """shipyard server's own app (create_app with auth on) against the mock provider: the OIDC code
    flow logs carol in with her group's role, audited; the API still refuses her cookie."""
    from shipyard.server.app import create_app

    for name, value in {"SHIPYARD_OIDC_ISSUER": provider, "SHIPYARD_OIDC_CLIENT_ID": "shipyard",
                        "SHIPYARD_OIDC_CLIENT_SECRET": "any", "SHIPYARD_OIDC_GROUP_MAP": "ml-team=penguins:editor"}.items():
        monkeypatch.setenv(name, value)
    store = project.store
    service.create_project(store, "penguins", actor="ops")
    with serve(create_app(project, auth_project="penguins")) as url, httpx.Client(base_url=url, timeout=20) as browser:
        start = browser.get("/login/oidc", params={"next": "/api/2.0/mlflow/experiments/search"})
        assert start.status_code == 302 and start.headers["location"].startswith(provider)
        back = browser.post(start.headers["location"], data={"sub": "carol"})
        assert back.headers["location"].startswith(url + "/login/oidc/callback")
        landed = browser.get(back.headers["location"])
        assert landed.status_code == 303 and landed.headers["location"] == "/api/2.0/mlflow/experiments/search"
        assert COOKIE in browser.cookies
        assert browser.get(landed.headers["location"]).status_code == 401  # a cookie never opens the API
    assert [e.subject for e in events(store, "auth.login")] == ["user:carol"]


def test_one_address_is_throttled_across_user_names(store) -> None:  # type: ignore[no-untyped-def]
    service.create_user(store, "alice", password=PASSWORD, actor="ops")
    with serve(build(store, {}, throttle=Throttle(limit=3, window=3600))) as url, \
            httpx.Client(base_url=url, timeout=20) as browser:
        assert [password_login(browser, name, "guess").status_code for name in ("u1", "u2", "u3")] == [401] * 3
        throttled = password_login(browser, "alice", PASSWORD)  # even the right password waits
        assert throttled.status_code == 429 and int(throttled.headers["Retry-After"]) > 0
        assert "too many sign-in attempts" in throttled.text


def test_the_throttle_forgets_attempts_older_than_its_window() -> None:
    now = [0.0]
    throttle = Throttle(limit=2, window=60, clock=lambda: now[0])
    assert throttle.admit("a") is None and throttle.admit("a") is None
    assert throttle.admit("a") == 60 and throttle.admit("b") is None
    now[0] = 59.0
    assert throttle.admit("a") == 1
    now[0] = 60.0
    assert throttle.admit("a") is None


def test_the_session_key_is_kept_in_the_store_unless_configured(store) -> None:  # type: ignore[no-untyped-def]
    from shipyard.auth.settings import AuthSettings, session_secret

    first = session_secret(store, AuthSettings())
    assert len(first) >= 40 and session_secret(store, AuthSettings()) == first  # every server on the store agrees
    assert session_secret(store, AuthSettings(session_secret="from-the-env")) == "from-the-env"
    # so a cookie one server process signed is good on another process on the same store
    one, two = WebLogin(store, auth_settings({})), WebLogin(store, auth_settings({}))
    signed = one.sessions._signer.dumps({"user": {"name": "x", "via": "oidc"}})
    assert two.sessions.load({"type": "http", "headers": [(b"cookie", f"{COOKIE}={signed}".encode())]})["user"]
    other = WebLogin(store, auth_settings({"SHIPYARD_SESSION_SECRET": "another-key"}))
    assert other.sessions.load({"type": "http", "headers": [(b"cookie", f"{COOKIE}={signed}".encode())]}) == {}


def test_the_server_app_takes_the_session_cookie_on_none_of_its_api_routes(project) -> None:  # type: ignore[no-untyped-def]
    from starlette.routing import Route as StarletteRoute

    from shipyard.server.app import collect_routes, create_app
    from shipyard.server.security import server_policy
    from tests.auth.test_server_routes import concrete

    store = project.store
    service.create_project(store, "penguins", actor="ops")
    service.create_user(store, "alice", password=PASSWORD, admin=True, actor="ops")  # even an admin's cookie
    app = create_app(project, auth_project="penguins")  # what shipyard server builds
    policy = server_policy("penguins")
    api = [r for r in collect_routes() if isinstance(r, StarletteRoute) and "health" not in r.path
           and not any(rule.page or rule.permission is None for rule in policy.rules_of(r).values())]
    # (web pages take the cookie; public routes need nothing)
    with serve(app) as url, httpx.Client(base_url=url, timeout=20) as browser:
        assert password_login(browser, "alice", PASSWORD).status_code == 303
        csrf = form_csrf(browser.get("/login"))
        for route in api:
            for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
                answer = browser.request(method, concrete(route.path), headers={"X-CSRF-Token": csrf})
                assert answer.status_code == 401, (method, route.path, answer.status_code)
