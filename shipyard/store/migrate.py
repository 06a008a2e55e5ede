"""Schema migrations with alembic, applied under a lock so concurrent first opens all succeed.

SQLite: an exclusive ``flock`` on ``<db>.migrate-lock``. PostgreSQL: a session advisory lock. Each
aggregate owns a branch of migrations off the base revision; we always upgrade to ``heads``. The
check "already at heads?" runs before taking the lock, so opening a current store costs one query.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url

from shipyard.store.engine import Store

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x5317_9A2D  # arbitrary, stable: "shipyard migrations"


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def heads() -> set[str]:
    """The newest revision of every migration branch."""
    return set(_script().get_heads())


def current(connection: Connection) -> set[str]:
    """The revisions the database is at."""
    return set(MigrationContext.configure(connection).get_current_heads())


def upgrade(store: Store, lock_dir: Path | None = None) -> None:
    """Bring the store's schema to the newest revision of every branch."""
    wanted = heads()
    with store.engine.connect() as conn:
        if current(conn) == wanted:
            return
    with _lock(store, lock_dir), store.engine.begin() as conn:
        if current(conn) != wanted:
            command.upgrade(_config(conn), "heads")


@contextmanager
def _lock(store: Store, lock_dir: Path | None) -> Iterator[None]:
    if store.dialect == "postgresql":
        with store.engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_LOCK_KEY})
            conn.commit()
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_LOCK_KEY})
                conn.commit()
        return
    database = make_url(store.url).database
    if not database or database == ":memory:":
        yield
        return
    lock_path = Path(database).with_name(Path(database).name + ".migrate-lock")
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
