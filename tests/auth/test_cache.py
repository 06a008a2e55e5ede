"""The token cache: no database round trip per check; revocation seen within the poll interval."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event

from shipyard.auth import credentials, service, tokens
from shipyard.auth.cache import TokenCache
from tests.auth.people import wait_until


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


def test_a_lookup_near_the_interval_reloads_in_the_background_without_waiting(store) -> None:  # type: ignore[no-untyped-def]
    secret = setup(store)
    clock = Clock()
    cache = TokenCache(store, interval=10, clock=clock)
    assert cache.check(secret).ok
    first = cache.generation
    credentials.revoke_token(store, secret[:12], actor="ops")
    clock.now += 8.5  # past the reload-ahead point, within the interval
    with cache._lock:  # a reload already running holds the lock: the lookup must not wait for it
        assert cache.check(secret).ok  # the loaded table answers, within the interval
    assert wait_until(lambda: cache.generation != first and not cache._reloading)
    # the fake clock stayed at +8.5 s: the revocation was seen within the 10 s interval
    assert cache.check(secret).reason == "the token is unknown or was revoked"


def test_a_revocation_by_this_process_while_a_reload_waits_is_seen(store) -> None:  # type: ignore[no-untyped-def]
    secret = setup(store)
    clock = Clock()
    cache = TokenCache(store, interval=10, clock=clock)
    assert cache.check(secret).ok
    clock.now += 9
    with cache._lock:
        assert cache.check(secret).ok  # starts a background reload, which waits for the lock
        credentials.revoke_token(store, secret[:12], actor="ops")
        cache.expire()  # as the admin routes do after a change: the next lookup must see it
    assert cache.check(secret).reason == "the token is unknown or was revoked"
    assert wait_until(lambda: not cache._reloading)
    assert cache.check(secret).reason == "the token is unknown or was revoked"


def test_an_expire_while_a_reload_reads_the_store_is_not_lost(store) -> None:  # type: ignore[no-untyped-def]
    secret = setup(store)
    cache = TokenCache(store, interval=30, clock=Clock())
    assert cache.check(secret).ok
    fired: list[str] = []

    def expire_mid_reload(conn, cursor, statement, *args) -> None:  # type: ignore[no-untyped-def]
        if not fired:  # the reload's first query: the change expire() announces may come after it
            fired.append(statement)
            cache.expire()

    event.listen(store.engine, "before_cursor_execute", expire_mid_reload)
    try:
        cache.refresh()
    finally:
        event.remove(store.engine, "before_cursor_execute", expire_mid_reload)
    assert fired and cache.stale  # that load does not count as fresh: the next lookup reloads again
