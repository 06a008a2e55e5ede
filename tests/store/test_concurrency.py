"""Eight processes opening one fresh store at the same instant all succeed (SQLite and PostgreSQL).

Each child imports everything first, says it is ready, then waits for one shared "go" file, so the
eight first opens (and their migration attempts) really race. Afterwards the schema is at heads and
every child's audit event is there, in one unbroken chain.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = r"""
import os, sys, time
from pathlib import Path
from shipyard import audit
from shipyard.store import open_store
state, url, ready, go, name = sys.argv[1], sys.argv[2] or None, Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5]
ready.touch()
while not go.exists():
    time.sleep(0.001)
store = open_store(Path(state), url)
with store.write() as session:
    audit.record(session, "test.open", name)
store.close()
print("ok", name)
"""

PROCESSES = 8


def race(tmp_path: Path, url: str | None) -> list[subprocess.CompletedProcess[str]]:
    """Start PROCESSES children, release them at once, return their results."""
    state = tmp_path / "state"
    go = tmp_path / "go"
    procs = []
    for i in range(PROCESSES):
        ready = tmp_path / f"ready-{i}"
        procs.append((ready, subprocess.Popen(
            [sys.executable, "-c", CHILD, str(state), url or "", str(ready), str(go), f"p{i}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
    deadline = time.monotonic() + 120
    while not all(r.exists() for r, _ in procs):
        assert time.monotonic() < deadline, "children never got ready"
        assert all(p.poll() is None for _, p in procs), "a child died before the start"
        time.sleep(0.01)
    go.touch()
    results = []
    for _, proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
    return results


def check(tmp_path: Path, url: str) -> None:
    from shipyard import audit
    from shipyard.store import open_store
    from shipyard.store.migrate import current, heads

    store = open_store(tmp_path / "state", url, migrate=False)
    try:
        with store.engine.connect() as conn:
            assert current(conn) == heads()
        with store.read() as session:
            result = audit.verify(session)
            subjects = sorted(e.subject for e in audit.events(session, kind="test.open"))
    finally:
        store.close()
    assert result.ok, result.problem
    assert subjects == sorted(f"p{i}" for i in range(PROCESSES))


@pytest.mark.slow
def test_eight_processes_open_a_fresh_sqlite_store(tmp_path: Path) -> None:
    results = race(tmp_path, None)
    failures = [r.stderr[-1500:] for r in results if r.returncode != 0]
    assert not failures, failures
    check(tmp_path, f"sqlite:///{tmp_path / 'state' / 'shipyard.db'}")


@pytest.mark.slow
@pytest.mark.postgres
def test_eight_processes_open_a_fresh_postgres_schema(tmp_path: Path, pg_url: str) -> None:
    results = race(tmp_path, pg_url)
    failures = [r.stderr[-1500:] for r in results if r.returncode != 0]
    assert not failures, failures
    check(tmp_path, pg_url)
