"""Schema migrations with alembic, applied under a lock so concurrent first opens all succeed.

SQLite: an exclusive ``flock`` on ``<db>.migrate-lock``. PostgreSQL: a session advisory lock. Each
aggregate owns a branch of migrations off the base revision; we always upgrade to ``heads``. The
check "already at heads?" runs before taking the lock, so opening a current store costs one query.

That check does not import alembic (importing it and scanning the script folder costs more than a
whole run-cache restore): the heads are read from the migration files' ``revision`` and
``down_revision`` lines, and the database's revisions from ``alembic_version`` with one query.
Anything unexpected (a file the reader does not understand, no ``alembic_version`` table) falls
back to alembic, which decides.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from shipyard.errors import ShipyardError
from shipyard.store.engine import Store, resolve_url, translate_db_error
from shipyard.store.lite import file_heads  # the reader the runner's restore records use too

if TYPE_CHECKING:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

MIGRATIONS = Path(__file__).with_name("migrations")
_PG_LOCK_KEY = 0x5317_9A2D  # arbitrary, stable: "shipyard migrations"


@cache
def _script() -> ScriptDirectory:
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(MIGRATIONS))


def _config(connection: Connection) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def heads() -> set[str]:
    """The newest revision of every migration branch."""
    return set(_script().get_heads())


def _at_heads_without_alembic(store: Store) -> bool:
    """True when ``alembic_version`` holds exactly the files' heads (one query, no alembic import)."""
    wanted = file_heads()
    if wanted is None:
        return False
    try:
        with store.engine.connect() as conn:
            found = frozenset(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    except SQLAlchemyError:
        return False  # no table yet (a new store) or not readable: alembic decides
    return found == wanted


def current(connection: Connection) -> set[str]:
    """The revisions the database is at."""
    from alembic.runtime.migration import MigrationContext

    return set(MigrationContext.configure(connection).get_current_heads())


def upgrade(store: Store, lock_dir: Path | None = None) -> None:
    """Bring the store's schema to the newest revision of every branch."""
    if _at_heads_without_alembic(store):
        return
    from alembic import command

    wanted = heads()
    with store.engine.connect() as conn:
        if current(conn) == wanted:
            return
    with schema_lock(store, lock_dir), store.engine.begin() as conn:
        if current(conn) != wanted:
            command.upgrade(_config(conn), "heads")


@contextmanager
def schema_lock(store: Store, lock_dir: Path | None = None) -> Iterator[None]:
    """The lock every schema change of the store's database runs under (ours, and Optuna's tables
    for sweeps): concurrent first opens wait for one another instead of racing on CREATE TABLE."""
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


def open_store(state_dir: Path, url: str | None = None, *, migrate: bool = True) -> Store:
    """Open (and on first use create and migrate) the store for a project's state folder."""
    store = Store(resolve_url(state_dir, url))
    if migrate:
        try:
            upgrade(store, lock_dir=state_dir)
        except SQLAlchemyError as exc:
            store.close()
            raise translate_db_error(exc, store.url) from exc
        except ShipyardError:
            store.close()
            raise
    return store
