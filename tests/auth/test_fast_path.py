"""The enforcement point's fast path: a request like one it admitted before costs a few lookups, and
is still refused at once when the token cache reloads (revocation, role change) or the token expires;
anything the full path would refuse or read never takes the short way."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from shipyard import audit
from shipyard.auth import credentials, service
from shipyard.auth.cache import TokenCache
from shipyard.server.security import (
    AuthMiddleware,
    Guard,
    gateway_policy,
    gateway_public_paths,
    install,
)
from tests.auth.people import gateway_tokens, wait_until


class Clock:
    """A clock the test moves (the token cache's reload interval and the tokens' expiry read it)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def gateway(store, clock: Clock, interval: float = 30.0) -> tuple[TestClient, Guard]:  # type: ignore[no-untyped-def]
    async def invoke(request: Request) -> JSONResponse:
        return JSONResponse({"who": request.state.principal.actor})

    app = Starlette(routes=[Route("/invocations", invoke, methods=["POST"])])
    guard = Guard(gateway_policy("penguins"), TokenCache(store, interval=interval, clock=clock),
                  public_paths=gateway_public_paths())
    install(app, guard)
    return TestClient(app), guard


def test_a_remembered_decision_ends_with_the_next_reload(store) -> None:  # type: ignore[no-untyped-def]
    made, clock = gateway_tokens(store), Clock()
    client, guard = gateway(store, clock)
    bearer = {"Authorization": f"Bearer {made['invoke']}"}
    first = client.post("/invocations", headers=bearer)
    assert first.status_code == 200 and first.json()["who"].startswith("app via shp_")
    assert len(guard._admitted) == 1  # remembered: the next identical request takes the short way
    assert client.post("/invocations", headers=bearer).json() == first.json()
    assert client.post("/invocations", headers={"Authorization": f"Bearer {made['read_only']}"}).status_code == 403
    assert len(guard._admitted) == 1  # a refusal is never remembered
    service.revoke(store, "penguins", "app", actor="ops")  # the role goes: seen at the next reload
    assert client.post("/invocations", headers=bearer).status_code == 200  # within the poll interval
    clock.now += 30
    refused = client.post("/invocations", headers=bearer)
    assert refused.status_code == 403 and "no role" in refused.json()["message"], refused.json()
    service.grant(store, "penguins", "app", "viewer", actor="ops")
    guard.tokens.expire()  # this process changed something (as the admin routes do): at once
    assert client.post("/invocations", headers=bearer).status_code == 200
    credentials.revoke_token(store, made["invoke"], actor="ops")
    guard.tokens.expire()
    assert client.post("/invocations", headers=bearer).status_code == 401


def test_an_expired_token_is_refused_even_when_remembered(store) -> None:  # type: ignore[no-untyped-def]
    gateway_tokens(store)
    token = credentials.create_token(store, "app", scopes=["gateway:invoke"], expires_in=60, actor="ops")[0]
    clock = Clock()
    client, _ = gateway(store, clock, interval=3600)  # no reload: the memo's own expiry check decides
    bearer = {"Authorization": f"Bearer {token}"}
    assert client.post("/invocations", headers=bearer).status_code == 200
    clock.now += 61
    expired = client.post("/invocations", headers=bearer)
    assert expired.status_code == 401 and "expired" in expired.json()["message"]


@pytest.mark.parametrize(("path", "extra"), [
    ("/invocations?access_token=x", {}),
    ("/invocations", {"X-HTTP-Method-Override": "DELETE"}),
])
def test_what_the_full_path_refuses_never_takes_the_short_way(store, path: str, extra: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    made = gateway_tokens(store)
    client, _ = gateway(store, Clock())
    bearer = {"Authorization": f"Bearer {made['invoke']}"}
    assert client.post("/invocations", headers=bearer).status_code == 200  # remembered
    assert client.post(path, headers={**bearer, **extra}).status_code == 400


def test_a_revocation_reaches_the_fast_path_through_the_background_reload(store) -> None:  # type: ignore[no-untyped-def]
    made, clock = gateway_tokens(store), Clock()
    client, guard = gateway(store, clock, interval=10)
    bearer = {"Authorization": f"Bearer {made['invoke']}"}
    assert client.post("/invocations", headers=bearer).status_code == 200
    remembered = guard.tokens.generation
    service.revoke(store, "penguins", "app", actor="ops")
    clock.now += 9  # past the reload-ahead point: the memo still answers and starts a reload
    with guard.tokens._lock:  # held as a running reload holds it: the request does not wait
        assert client.post("/invocations", headers=bearer).status_code == 200
    # the reload runs on its own thread: wait for it, not for a clock
    assert wait_until(lambda: guard.tokens.generation != remembered and not guard.tokens._reloading)
    refused = client.post("/invocations", headers=bearer)  # still within the 10 s interval
    assert refused.status_code == 403 and "no role" in refused.json()["message"], refused.json()


def test_the_fast_path_names_the_principal_in_audit_events_for_that_request_only(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The fast path hands the request on without staying under it: the audit actor is set for the
    request's own task (an ASGI server runs each request in one), not for whoever awaits it next."""
    made = gateway_tokens(store)

    async def invoke(request: Request) -> JSONResponse:
        return JSONResponse({"who": request.state.principal.actor, "audit": audit.current_actor()})

    app = Starlette(routes=[Route("/invocations", invoke, methods=["POST"])])
    guard = Guard(gateway_policy("penguins"), TokenCache(store), public_paths=gateway_public_paths())
    install(app, guard)
    auth = f"Bearer {made['invoke']}".encode()
    full_checks: list[str] = []
    admit = AuthMiddleware._admit

    async def counted(self, scope, receive):  # type: ignore[no-untyped-def]
        full_checks.append(scope["path"])
        return await admit(self, scope, receive)

    monkeypatch.setattr(AuthMiddleware, "_admit", counted)

    async def call(extra: tuple[tuple[bytes, bytes], ...] = ()) -> dict[str, str]:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "http", "path": "/invocations", "raw_path": b"/invocations", "query_string": b"",
                 "root_path": "", "headers": [*extra, (b"authorization", auth)], "client": ("127.0.0.1", 1),
                 "server": ("127.0.0.1", 2), "state": {}}
        sent: list[bytes] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.body":
                sent.append(message["body"])  # type: ignore[arg-type]

        await app(scope, receive, send)
        return json.loads(b"".join(sent))

    async def requests() -> tuple[dict[str, str], dict[str, str], str]:
        loop = asyncio.get_running_loop()
        full = await loop.create_task(call())  # each in a task of its own, as uvicorn runs them
        fast = await loop.create_task(call())
        nameless = await loop.create_task(call(((b"", b"x"),)))  # a bare scope's empty header name: no crash
        assert nameless == full
        return full, fast, audit.current_actor()

    outside = audit.current_actor()
    full, fast, after = asyncio.run(requests())
    assert len(full_checks) == 1  # only the first request took the full path; the others the fast one
    assert full["who"].startswith("app via shp_") and full["audit"] == full["who"]
    assert fast == full  # the fast path's endpoint writes events as the principal too
    assert after == outside  # and the caller's own task is not acting as it


def test_the_memo_is_keyed_by_the_raw_path_as_sent(store, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A percent-encoded twin of an admitted path, an encoded separator and a scope without a raw
    path are new requests to the memo: each goes through the full path, which decides it (the
    twin is admitted and remembered in its own right, the refused ones never are)."""
    made = gateway_tokens(store)
    client, guard = gateway(store, Clock())
    full_checks: list[bytes] = []
    admit = AuthMiddleware._admit

    async def counted(self, scope, receive):  # type: ignore[no-untyped-def]
        full_checks.append(scope.get("raw_path"))
        return await admit(self, scope, receive)

    monkeypatch.setattr(AuthMiddleware, "_admit", counted)
    bearer = {"Authorization": f"Bearer {made['invoke']}"}
    for _ in range(2):
        assert client.post("/invocations", headers=bearer).status_code == 200
    assert full_checks == [b"/invocations"]  # the second one came from the memo
    for _ in range(2):
        assert client.post("/invoc%61tions", headers=bearer).status_code == 200
    assert full_checks == [b"/invocations", b"/invoc%61tions"]  # the twin took the full path once
    for _ in range(2):  # an encoded separator: refused by the full path each time, never remembered
        assert client.post("/invocations%2f", headers=bearer).status_code == 400
    assert len(full_checks) == 4 and len(guard._admitted) == 2

    async def bare() -> None:  # a server that gives no raw path: never remembered, always decided in full
        scope = {"type": "http", "method": "POST", "path": "/invocations", "query_string": b"", "root_path": "",
                 "headers": [(b"authorization", f"Bearer {made['invoke']}".encode())], "state": {}}

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, object]) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200

        for _ in range(2):
            await client.app(dict(scope), receive, send)

    asyncio.run(bare())
    assert full_checks[4:] == [None, None] and len(guard._admitted) == 2
