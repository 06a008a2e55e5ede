"""SIGKILL in the middle of object writes and store transactions leaves everything consistent.

A worker process writes objects (bytes and files, up to a few MB, so a kill often lands inside a
write or its fsync) and store transactions (an audit event plus a store_meta row, which must commit
together) in a loop. We kill it with SIGKILL at a random moment, several times over the same store
and object folder, including during its first open (migrations). After every kill the store opens,
the audit chain verifies, every audit event has its companion row and vice versa, and every object
visible under an id hashes to that id (temp files from the killed write are not objects).
"""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKER = r"""
import os, random, sys
from pathlib import Path
from sqlalchemy import select
from shipyard import audit
from shipyard.objects import ObjectStore
from shipyard.store import open_store
from shipyard.store.tables import MetaEntry

state, url, objects_dir, scratch = Path(sys.argv[1]), sys.argv[2] or None, sys.argv[3], Path(sys.argv[4])
rng = random.Random(int(sys.argv[5]))
store = open_store(state, url)
objects = ObjectStore.open(objects_dir)
scratch.mkdir(parents=True, exist_ok=True)
print("ready", flush=True)
n = 0
while True:
    n += 1
    tag = f"{sys.argv[5]}-{n}"
    choice = rng.random()
    if choice < 0.4:
        objects.put_bytes_many([os.urandom(rng.choice((100, 10_000, 300_000, 2_000_000))) for _ in range(2)])
    elif choice < 0.6:
        src = scratch / f"f-{tag}"
        src.write_bytes(os.urandom(rng.choice((5_000, 2_000_000))))
        objects.put_path(src)
        src.unlink()
    else:
        with store.write() as session:
            audit.record(session, "test.crash", tag, {"n": n})
            session.add(MetaEntry(key=f"crash:{tag}", value=str(n)))
"""


def check_consistent(state: Path, url: str, objects_dir: Path) -> tuple[int, int]:
    """Open everything after a kill and check it; returns (events, objects)."""
    from sqlalchemy import select

    from shipyard import audit
    from shipyard.objects import ObjectStore
    from shipyard.store import open_store
    from shipyard.store.tables import AuditEvent, MetaEntry

    store = open_store(state, url)
    try:
        with store.read() as session:
            result = audit.verify(session)
            subjects = set(session.scalars(select(AuditEvent.subject).where(AuditEvent.kind == "test.crash")))
            metas = {k.removeprefix("crash:") for k in session.scalars(
                select(MetaEntry.key).where(MetaEntry.key.startswith("crash:")))}
    finally:
        store.close()
    assert result.ok, result.problem
    assert subjects == metas, f"half-committed transactions: {sorted(subjects ^ metas)[:5]}"
    objects = ObjectStore.open(objects_dir)
    keys = list(objects.backend.list())
    assert all(not Path(k).name.startswith(".tmp-") for k in keys)
    assert objects.verify_all() == []
    for key in random.sample(keys, min(10, len(keys))):  # and reads back verified under its id
        algorithm, shard, rest = key.split("/")
        objects.get_bytes(f"{algorithm}:{shard}{rest}")
    return len(subjects), len(keys)


def kill_loop(tmp_path: Path, url: str | None, rounds: int) -> None:
    state = tmp_path / "state"
    objects_dir = tmp_path / "objects"
    rng = random.Random(os.getpid())
    db_url = url or f"sqlite:///{state / 'shipyard.db'}"
    events = stored = 0
    for i in range(rounds):
        proc = subprocess.Popen([sys.executable, "-c", WORKER, str(state), url or "", str(objects_dir),
                                 str(tmp_path / "scratch"), str(i)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        if i == 0:  # the first kill may land in the imports or the first migration
            time.sleep(rng.uniform(0.3, 2.0))
        else:  # later ones in the write loop, at a random point
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            assert ready and proc.stdout.readline().strip() == "ready", proc.stderr.read()[-2000:]
            time.sleep(rng.uniform(0.05, 1.5))
        if proc.poll() is not None:
            pytest.fail(f"worker exited on its own ({proc.returncode}): {proc.stderr.read()[-2000:]}")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stdout.close()
        proc.stderr.close()
        events, stored = check_consistent(state, db_url, objects_dir)
    # The test means something only if the worker got work done between kills.
    assert events > 0 and stored > 0, (events, stored)
    leftovers = [p for p in objects_dir.rglob(".tmp-*")]
    print(f"{rounds} kills: {events} committed events, {stored} objects, {len(leftovers)} temp files ignored")


@pytest.mark.slow
def test_sigkill_during_writes_sqlite(tmp_path: Path) -> None:
    kill_loop(tmp_path, None, rounds=5)


@pytest.mark.slow
@pytest.mark.postgres
def test_sigkill_during_writes_postgres(tmp_path: Path, pg_url: str) -> None:
    kill_loop(tmp_path, pg_url, rounds=3)
