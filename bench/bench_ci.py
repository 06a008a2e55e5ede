"""CI suite: sharing the cache through a remote, ``shipyard push``/``pull`` against ``dvc push``/``fetch``.

The same 10,000 random 1 KiB files (in 1,000-file subfolders) are tracked on both sides: ours in
``.shipyard/objects`` (via ``ObjectStore.put_path``), DVC's with ``dvc add``. The remote is a local
folder on the same disk for both, so the figures measure the tools, not a network.

1. push of everything to an empty remote (the remote is wiped before each run);
2. push again when the remote already has everything (the CI case on every later job);
3. pull of everything into an empty local cache (ours ``shipyard pull``; DVC ``dvc fetch``, which
   also only fills the cache and does not check files out).

Both sides run alternately (``bench.harness.commands``) on a machine shared with other work.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from bench.harness import WORK, compare, ours_bin, peer_bin, time_command

DIR = WORK / "ci"
FILES = 10_000


def _make_files(folder: Path) -> None:
    rng = os.urandom
    for i in range(FILES):
        sub = folder / f"part{i // 1000:02d}"
        sub.mkdir(parents=True, exist_ok=True)
        (sub / f"f{i:05d}.bin").write_bytes(rng(1024))


def _prepare() -> tuple[Path, Path]:
    shutil.rmtree(DIR, ignore_errors=True)
    ours = DIR / "ours"
    peer = DIR / "dvc"
    (ours / "data").mkdir(parents=True)
    _make_files(ours / "data" / "many")
    shutil.copytree(ours / "data", peer / "data")
    (ours / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    from shipyard.hashing import Hasher
    from shipyard.objects import ObjectStore

    ObjectStore.open(ours / ".shipyard" / "objects").put_path(ours / "data" / "many", Hasher(ours))
    dvc = peer_bin("dvc")
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    for cmd in (["git", "init", "-q"], [dvc, "init", "-q"],
                [dvc, "config", "core.site_cache_dir", str(peer / ".dvc-site")],
                [dvc, "remote", "add", "-d", "local", str(DIR / "dvc-remote")],
                [dvc, "add", "-q", "data/many"]):
        subprocess.run(cmd, cwd=peer, env=env, check=True, capture_output=True)
    return ours, peer


def run(n: int) -> None:
    ours, peer = _prepare()
    ours_remote, peer_remote = DIR / "ours-remote", DIR / "dvc-remote"
    env = {"DVC_NO_ANALYTICS": "1", "SHIPYARD_OBJECTS": "", "CI": "true"}
    push_ours = [ours_bin(), "push", "--remote", str(ours_remote)]
    pull_ours = [ours_bin(), "pull", "--remote", str(ours_remote)]
    dvc = peer_bin("dvc")

    def wipe(path: Path) -> Callable[[], None]:
        return lambda: shutil.rmtree(path, ignore_errors=True)

    def side(cmd: list[str], cwd: Path, setup: Callable[[], None] | None = None) -> Callable[[], tuple[float, float]]:
        return lambda: time_command(cmd, cwd, env, setup)

    compare(f"push {FILES} objects to an empty folder remote", side(push_ours, ours, wipe(ours_remote)),
            side([dvc, "push", "-q"], peer, wipe(peer_remote)), "dvc push", n=n)
    compare(f"push again, the remote has all {FILES}", side(push_ours, ours), side([dvc, "push", "-q"], peer),
            "dvc push", n=n)
    compare(f"pull {FILES} objects into an empty cache", side(pull_ours, ours, wipe(ours / ".shipyard" / "objects")),
            side([dvc, "fetch", "-q"], peer, wipe(peer / ".dvc" / "cache")), "dvc fetch", n=n)
