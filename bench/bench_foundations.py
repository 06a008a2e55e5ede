"""Foundations suite: CLI start-up, hashing + storing files, and eight concurrent first opens.

1. ``shipyard --help`` against ``dvc --help`` and ``mlflow --help`` (fresh processes, wall time).
2. Hashing and storing a 1 GiB file and a folder of 10,000 small files, against ``dvc add`` (MD5,
   copy into ``.dvc/cache``). No ``shipyard`` command adds arbitrary files yet (``shipyard data add``
   also profiles tabular data), so our side is the Python API doing the same work in a fresh
   process: ``Hasher`` (with a fresh stat cache) + ``ObjectStore.put_path`` (hash, then an atomic,
   fsync'ed copy into ``.shipyard/objects``). Both sides start cold: no stat cache, empty cache
   folder, and DVC gets a fresh site cache dir so its own hash cache cannot skip work.
3. Eight processes opening one fresh store at the same instant, three trials: ours (``open_store``,
   then one audited write) against MLflow (``MlflowClient`` on a fresh ``sqlite:///`` tracking URI,
   then ``search_experiments``); we count processes that succeeded.

Both sides of each timing run alternately (``bench.harness.compare``) on a machine shared with
other work, so the ratio of medians is the figure to read.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import WORK, commands, ours_bin, peer_bin, peer_env

DIR = WORK / "foundations"
BIG = 1 << 30
SMALL_FILES = 10_000

OURS_ADD = """
import sys
from pathlib import Path
from shipyard.hashing import Hasher, StatCache
from shipyard.objects import ObjectStore
root, rel = Path(sys.argv[1]), sys.argv[2]
hasher = Hasher(root, StatCache(root / ".shipyard" / "statcache.db"))
oid = ObjectStore.open(root / ".shipyard" / "objects").put_path(root / rel, hasher)
hasher.cache.close()
print(oid)
"""

OURS_OPEN = """
import sys, time
from pathlib import Path
from shipyard import audit
from shipyard.store import open_store
state, go = Path(sys.argv[1]), Path(sys.argv[2])
Path(sys.argv[4]).touch()
while not go.exists():
    time.sleep(0.001)
store = open_store(state)
with store.write() as session:
    audit.record(session, "bench.open", sys.argv[3])
store.close()
"""

MLFLOW_OPEN = """
import sys, time
from pathlib import Path
from mlflow.tracking import MlflowClient
uri, go = sys.argv[1], Path(sys.argv[2])
Path(sys.argv[3]).touch()
while not go.exists():
    time.sleep(0.001)
MlflowClient(tracking_uri=uri).search_experiments()
"""


def make_data() -> None:
    """A 1 GiB file of random bytes and 10,000 files of 1-8 KiB, made once."""
    big = DIR / "big" / "data" / "big.bin"
    if not big.exists() or big.stat().st_size != BIG:
        big.parent.mkdir(parents=True, exist_ok=True)
        with open(big, "wb") as handle:
            for _ in range(BIG // (64 << 20)):
                handle.write(os.urandom(64 << 20))
    small = DIR / "small" / "data" / "files"
    if not small.exists() or sum(1 for _ in small.rglob("*.txt")) != SMALL_FILES:
        shutil.rmtree(small, ignore_errors=True)
        for i in range(SMALL_FILES):
            path = small / f"d{i % 100:02d}" / f"f{i:05d}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(os.urandom(1024 + (i * 7919) % 7168))


def reset_ours(root: Path) -> None:
    shutil.rmtree(root / ".shipyard", ignore_errors=True)


def reset_dvc(root: Path) -> None:
    dvc = peer_bin("dvc")
    for name in (".dvc", ".dvcignore"):
        target = root / name
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    for meta in root.rglob("*.dvc"):
        meta.unlink()
    (root / "data" / ".gitignore").unlink(missing_ok=True)
    site = root.parent / f"{root.name}-dvc-site"
    shutil.rmtree(site, ignore_errors=True)
    subprocess.run([dvc, "init", "--no-scm", "-q"], cwd=root, check=True)
    subprocess.run([dvc, "config", "core.site_cache_dir", str(site)], cwd=root, check=True)
    subprocess.run([dvc, "config", "core.analytics", "false"], cwd=root, check=True)


def help_startup(n: int) -> None:
    ours = [ours_bin(), "--help"]
    commands("`shipyard --help` vs `dvc --help`", ours, [peer_bin("dvc"), "--help"], "dvc 3.67.1", n=n)
    commands("`shipyard --help` vs `mlflow --help`", ours, [peer_bin("mlflow"), "--help"], "mlflow 3.17.2", n=n)


def hashing(n: int) -> None:
    make_data()
    for label, root, rel in (("hash + store a 1 GiB file", DIR / "big", "data/big.bin"),
                             (f"hash + store {SMALL_FILES:,} small files (1-8 KiB)", DIR / "small", "data/files")):
        ours = [sys.executable, "-c", OURS_ADD, str(root), rel]
        peer = [peer_bin("dvc"), "add", "-q", rel]
        commands(f"{label}: Python API vs `dvc add` (cold)", ours, peer, "dvc 3.67.1", cwd=root, n=n,
                 setup=lambda r=root: reset_ours(r), peer_setup=lambda r=root: reset_dvc(r))


def race(cmd_for: list[list[str]], go: Path) -> tuple[int, float]:
    """Start every command (its last argument is its ready file), release them together once all
    have finished importing, return (successes, wall seconds from the release)."""
    go.unlink(missing_ok=True)
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for cmd in cmd_for]
    deadline = time.monotonic() + 300
    while not all(Path(cmd[-1]).exists() or p.poll() is not None for cmd, p in zip(cmd_for, procs, strict=True)):
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    start = time.perf_counter()
    go.touch()
    codes = [p.wait(timeout=300) for p in procs]
    for p in procs:
        p.stderr.close()
    return sum(1 for c in codes if c == 0), time.perf_counter() - start


def concurrent_open(trials: int = 3) -> None:
    mlflow_python = str(peer_env("mlflow") / "bin" / "python")
    ours_results, peer_results = [], []
    for trial in range(trials):
        base = DIR / f"race-{trial}"
        shutil.rmtree(base, ignore_errors=True)
        base.mkdir(parents=True)
        ok, seconds = race([[sys.executable, "-c", OURS_OPEN, str(base / "state"), str(base / "go"), f"p{i}",
                             str(base / f"ready-{i}")] for i in range(8)], base / "go")
        ours_results.append((ok, seconds))
        uri = f"sqlite:///{base / 'mlflow.db'}"
        ok, seconds = race([[mlflow_python, "-c", MLFLOW_OPEN, uri, str(base / "go-mlflow"),
                             str(base / f"mlflow-ready-{i}")] for i in range(8)], base / "go-mlflow")
        peer_results.append((ok, seconds))
    ours = ", ".join(f"{ok}/8" for ok, _ in ours_results)
    peer = ", ".join(f"{ok}/8" for ok, _ in peer_results)
    print(f"| 8 processes open a fresh store at once ({trials} trials; successes) | {ours} | {peer} (mlflow 3.17.2) "
          f"| {'8/8 every time' if all(ok == 8 for ok, _ in ours_results) else 'FAILED'} |", flush=True)


def run(n: int) -> None:
    DIR.mkdir(parents=True, exist_ok=True)
    help_startup(max(n, 5))
    hashing(n)
    concurrent_open()

