"""Shared fixtures: real stores on SQLite and PostgreSQL, scratch projects, the CLI runner.

PostgreSQL tests use the server at SHIPYARD_TEST_PG_URL (default 127.0.0.1:5432, database test);
each test gets its own schema, so parallel test processes never see each other's rows. Where no
server answers, only the tests marked ``postgres`` are skipped, with the reason printed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

# Two pytest workers on a two-core machine: OpenMP pools (scikit-learn, lightgbm, xgboost) that
# each spin up one thread per core oversubscribe it badly, so tests use one thread per worker.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from shipyard.project import Project  # noqa: E402  (after the thread settings above)
from shipyard.workspace import Workspace  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "penguins"
PG_URL = os.environ.get("SHIPYARD_TEST_PG_URL", "postgresql+psycopg://root@127.0.0.1:5432/test")


@cache
def pg_unavailable() -> str | None:
    """Why PostgreSQL tests cannot run here, or None when they can."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    try:
        psycopg.connect(dsn, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {dsn}: {str(exc).strip().splitlines()[0]}"
    return None


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a fresh schema, dropped after the test."""
    reason = pg_unavailable()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    dsn = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'shipyard.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def store(store_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A migrated, empty store on each backend."""
    from shipyard.store import open_store

    opened = open_store(tmp_path / "state", store_url)
    yield opened
    opened.close()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """An empty initialised project as the working directory."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    monkeypatch.chdir(root)
    monkeypatch.delenv("SHIPYARD_STORE", raising=False)
    monkeypatch.delenv("SHIPYARD_OBJECTS", raising=False)
    ws = Workspace(Project(root))
    yield ws
    ws.close()


@pytest.fixture
def penguins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A scratch copy of examples/penguins as the working directory."""
    root = tmp_path / "penguins"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".shipyard", "model", "plots", "prepared"))
    monkeypatch.chdir(root)
    return root


def shipyard_bin() -> str:
    """The installed console script next to this interpreter."""
    return str(Path(sys.executable).with_name("shipyard"))


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the real ``shipyard`` binary as a user would."""
    full_env = {**os.environ, "CI": "true", **(env or {})}
    return subprocess.run([shipyard_bin(), *args], cwd=cwd, env=full_env, capture_output=True,
                          text=True, timeout=timeout)
