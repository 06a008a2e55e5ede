"""Every audit event written while serving a request names the request's principal.

A small app with sync and async endpoints that write through the real store, behind ``install``,
driven over real HTTP (uvicorn on 127.0.0.1) by two principals at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shipyard import audit
from shipyard.auth import credentials, service
from shipyard.auth.cache import TokenCache
from shipyard.server.security import Guard, Policy, Rule, install
from tests.auth.live import serve


def build(store) -> Starlette:  # type: ignore[no-untyped-def]
    def write_sync(request: Request) -> JSONResponse:  # Starlette runs it in its threadpool
        with store.write() as session:
            event = audit.record(session, "test.sync", request.path_params["name"])
        return JSONResponse({"actor": event.actor, "thread": threading.current_thread().name})

    async def write_async(request: Request) -> JSONResponse:
        def work() -> str:
            with store.write() as session:
                return audit.record(session, "test.async", request.path_params["name"]).actor

        return JSONResponse({"actor": await run_in_threadpool(work)})

    async def whoami(request: Request) -> JSONResponse:
        return JSONResponse({"actor": audit.current_actor()})

    app = Starlette(routes=[Route("/sync/{name}", write_sync, methods=["POST"]),
                            Route("/async/{name}", write_async, methods=["POST"]),
                            Route("/health", whoami)])
    policy = Policy({"/sync/{name}": {"POST": Rule("runs:write", "penguins")},
                     "/async/{name}": {"POST": Rule("runs:write", "penguins")},
                     "/health": Rule(None)})
    install(app, Guard(policy, TokenCache(store)))
    return app


@pytest.fixture
def tokens(store):  # type: ignore[no-untyped-def]
    service.create_project(store, "penguins", actor="ops")
    made = {}
    for name in ("alice", "bob"):
        service.create_user(store, name, actor="ops")
        service.grant(store, "penguins", name, "editor", actor="ops")
        made[name] = credentials.create_token(store, name, scopes=["runs:write"], actor="ops")
    return made


def test_events_written_by_endpoints_name_the_principal(store, tokens, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SHIPYARD_ACTOR", "the-server-process")
    with serve(build(store)) as url:
        def call(who: str, kind: str, n: int) -> str:
            secret, info = tokens[who]
            answer = httpx.post(f"{url}/{kind}/{who}-{n}", headers={"Authorization": f"Bearer {secret}"}, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["actor"] == f"{who} via {info['prefix']}"
            return who

        jobs = [(who, kind, n) for n in range(6) for who in ("alice", "bob") for kind in ("sync", "async")]
        with ThreadPoolExecutor(8) as pool:  # both principals at once: no request sees another's actor
            list(pool.map(lambda job: call(*job), jobs))
        # a public route has no principal: the process's own actor, not a leftover from a request
        assert httpx.get(f"{url}/health", timeout=10).json()["actor"] == "the-server-process"
    with store.read() as session:
        written = audit.events(session, limit=1000)
        assert audit.verify(session).ok
    mine = [e for e in written if e.kind in ("test.sync", "test.async")]
    assert len(mine) == len(jobs)
    for event in mine:
        who = event.subject.split("-")[0]
        assert event.actor == f"{who} via {tokens[who][1]['prefix']}"
    with store.read() as session:
        assert {e.subject for e in audit.events(session, actor="alice", limit=1000)
                if e.kind.startswith("test.")} == {f"alice-{n}" for n in range(6)}


def test_acting_as_is_scoped_to_its_block(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SHIPYARD_ACTOR", "cli-user")
    with audit.acting_as("alice via shp_x"):
        assert audit.current_actor() == "alice via shp_x"
        with audit.acting_as(None):
            assert audit.current_actor() == "cli-user"
    assert audit.current_actor() == "cli-user"
