"""Opening the metadata store: SQLite by default, PostgreSQL when SHIPYARD_STORE says so.

SQLite runs in WAL mode with a busy timeout and foreign keys on; write transactions start with
BEGIN IMMEDIATE so two writers queue instead of failing on a stale snapshot. PostgreSQL connects
with a 5 s timeout so an unreachable server is an error, not a hang. Migrations run on open, under
a lock (see migrate.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from shipyard.errors import InputError, ShipyardError, StorageFull, StoreBusy, StoreError

SUPPORTED_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg")
CONNECT_TIMEOUT_S = 5


def resolve_url(state_dir: Path, url: str | None = None) -> str:
    """The store URL: explicit, else SHIPYARD_STORE, else ``.shipyard/shipyard.db``."""
    url = url or os.environ.get("SHIPYARD_STORE")
    if not url:
        return f"sqlite:///{state_dir / 'shipyard.db'}"
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(f"SHIPYARD_STORE={url!r} is not a database URL",
                         hint="use postgresql+psycopg://user@host:5432/db or sqlite:///path/shipyard.db") from exc
    if parsed.drivername not in SUPPORTED_SCHEMES:
        raise InputError(
            f"SHIPYARD_STORE uses the unknown scheme {parsed.drivername!r}",
            hint="supported: " + ", ".join(SUPPORTED_SCHEMES) + " (e.g. postgresql+psycopg://user@host:5432/db, "
                 "or unset SHIPYARD_STORE for the embedded .shipyard/shipyard.db)",
        )
    if parsed.drivername == "postgresql":
        url = str(parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False))
    return url


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _begin)
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin(conn) -> None:  # type: ignore[no-untyped-def]
    immediate = conn.get_execution_options().get("shipyard_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    """An Engine with Shipyard's connection settings for the URL's dialect."""
    if url.startswith("sqlite"):
        db_file = make_url(url).database
        if db_file and db_file != ":memory:":
            folder = Path(db_file).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the store folder {folder}: {exc.strerror}",
                                 hint="check that the project folder is writable") from exc
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin)
        return engine
    try:
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    except ImportError as exc:
        raise InputError("PostgreSQL support is not installed", hint='pip install "shipyard[postgres]"') from exc


def translate_db_error(exc: SQLAlchemyError, url: str) -> ShipyardError:
    """Map a driver error to a Shipyard error that says what to do."""
    orig = getattr(exc, "orig", exc)
    text = str(orig)
    where = make_url(url).render_as_string(hide_password=True)
    code = getattr(orig, "sqlite_errorname", "") or ""
    if code == "SQLITE_FULL" or (code.startswith("SQLITE_IOERR") and _sqlite_disk_full(url)):
        return StorageFull(f"the store {where} is out of space ({text}); nothing was changed",
                           hint="free some disk space and retry")
    if "readonly" in text or "read-only" in text or "unable to open database" in text:
        return StoreError(f"the store {where} cannot be opened for writing ({text}); nothing was changed",
                          hint="SQLite needs write access to the store's folder for its journal: make "
                               ".shipyard/ writable, or point SHIPYARD_STORE at a writable location")
    if "database or disk is full" in text or "No space left" in text:
        return StorageFull(f"the store {where} is out of space ({text}); the transaction was rolled back",
                           hint="free some disk space and retry")
    if "database is locked" in text:
        return StoreBusy(f"the store {where} stayed locked for 30 s by another process",
                         hint="wait for the other shipyard command to finish and retry")
    if isinstance(exc, OperationalError) and url.startswith("postgresql") and _is_connect_error(text):
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return StoreError(f"cannot connect to PostgreSQL at {where} (connect timeout {CONNECT_TIMEOUT_S} s): {first}",
                          hint="check that the server is running and reachable, and that SHIPYARD_STORE is right")
    return StoreError(f"store error on {where}: {text}")


def _sqlite_disk_full(url: str) -> bool:
    """SQLite reports a full disk while creating its journal as a plain I/O error: look at the disk."""
    import shutil

    database = make_url(url).database
    if not database or database == ":memory:":
        return False
    try:
        return shutil.disk_usage(Path(database).parent).free < 1 << 20
    except OSError:
        return False


def _is_connect_error(text: str) -> bool:
    lowered = text.lower()
    return any(word in lowered for word in ("connection", "connect", "timeout", "timed out", "could not translate",
                                            "name or service", "server closed"))


class Store:
    """The metadata store: an engine, and sessions for reads and for writes."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.engine.execution_options(shipyard_write=True), expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction for one state change (and its audit event); commits or rolls back."""
        try:
            with self._write.begin() as session:
                yield session
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, self.url) from exc

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading; nothing it does is committed."""
        try:
            with self._read() as session:
                yield session
        except SQLAlchemyError as exc:
            raise translate_db_error(exc, self.url) from exc

    def close(self) -> None:
        self.engine.dispose()
