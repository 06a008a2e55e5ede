"""The token cache: no database round trip per check; revocation seen within the poll interval."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from shipyard.auth import credentials, service, tokens
from shipyard.auth.cache import TokenCache


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def counting(store) -> Iterator[list[str]]:  # type: ignore[no-untyped-def]
    statements: list[str] = []

    def seen(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(store.engine, "before_cursor_execute", seen)
    try:
        yield statements
    finally:
        event.remove(store.engine, "before_cursor_execute", seen)


def setup(store) -> str:  # type: ignore[no-untyped-def]
    service.create_project(store, "penguins", actor="ops")
    service.create_user(store, "alice", actor="ops")
    service.grant(store, "penguins", "alice", "viewer", actor="ops")
    secret, _ = credentials.create_token(store, "alice", scopes=["runs:read"], project="penguins", actor="ops")
    return secret


def test_checks_cost_no_query_between_reloads(store) -> None:  # type: ignore[no-untyped-def]
    secret = setup(store)
    cache = TokenCache(store, interval=30, clock=Clock())
    cache.refresh()
    with counting(store) as statements:
        for _ in range(100):
            assert cache.check(secret).ok
        assert not cache.check(tokens.new_token()).ok
    assert statements == []


def test_revocation_is_seen_within_the_interval(store) -> None:  # type: ignore[no-untyped-def]
    secret = setup(store)
    clock = Clock()
    cache = TokenCache(store, interval=30, clock=clock)
    check = cache.check(secret)
    assert check.principal is not None and check.principal.roles == {"penguins": "viewer"}
    credentials.revoke_token(store, secret[:12], actor="ops")
    clock.now += 30
    assert cache.check(secret).reason == "the token is unknown or was revoked"


def test_role_changes_and_disabling_reach_the_cache_on_reload(store) -> None:  # type: ignore[no-untyped-def]
    secret = setup(store)
    clock = Clock()
    cache = TokenCache(store, interval=10, clock=clock)
    assert cache.check(secret).principal.roles == {"penguins": "viewer"}  # type: ignore[union-attr]
    service.grant(store, "penguins", "alice", "editor", actor="ops")
    clock.now += 10
    assert cache.check(secret).principal.roles == {"penguins": "editor"}  # type: ignore[union-attr]
    service.disable_user(store, "alice", actor="ops")
    clock.now += 10
    assert not cache.check(secret).ok


def test_expired_and_malformed_tokens_say_why(store) -> None:  # type: ignore[no-untyped-def]
    setup(store)
    clock = Clock()
    secret, _ = credentials.create_token(store, "alice", scopes=["runs:read"], expires_in=60, actor="ops")
    cache = TokenCache(store, interval=3600, clock=clock)
    import time

    clock.now = time.time() + 61  # past its expiry; the cache's own reload does not hide it
    assert cache.check(secret).reason == "the token has expired"
    assert "malformed" in cache.check(secret[:-1] + ("a" if secret[-1] != "a" else "b")).reason


def test_last_use_is_written_in_one_batch_at_reload(store) -> None:  # type: ignore[no-untyped-def]
    secret = setup(store)
    clock = Clock()
    cache = TokenCache(store, interval=5, clock=clock)
    cache.check(secret)
    assert credentials.list_tokens(store)[0]["last_used_at"] is None
    clock.now += 5
    cache.check(secret)
    assert credentials.list_tokens(store)[0]["last_used_at"] == 1_000_000.0
