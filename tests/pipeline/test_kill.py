"""SIGKILL the runner at random moments, again and again; the next run always finishes correctly."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli, shipyard_bin
from tests.pipeline.helpers import py, write_config, write_params

MAKE_SHARDS = ("import pathlib, time, yaml; n = yaml.safe_load(open('params.yaml'))['n']\n"
               "out = pathlib.Path('shards'); out.mkdir(exist_ok=True)\n"
               "for i in range(n):\n"
               "    (out / f'{i:03}.txt').write_text(str(i * i) * 200); time.sleep(0.01)")
COMBINE = ("import pathlib, time\n"
           "parts = sorted(pathlib.Path('shards').iterdir()); time.sleep(0.2)\n"
           "with open('combined.txt', 'w') as h:\n"
           "    for p in parts:\n"
           "        h.write(p.read_text()[:5] + chr(10)); h.flush(); time.sleep(0.005)")
SIDE = "import time; time.sleep(0.3); open('side.txt', 'w').write('side')"


def expected_combined(n: int) -> str:
    return "".join((str(i * i) * 200)[:5] + "\n" for i in range(n))


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    write_config(root, {
        "shards": {"cmd": py(MAKE_SHARDS), "params": ["n"], "outs": ["shards"]},
        "combine": {"cmd": py(COMBINE), "deps": ["shards"], "outs": ["combined.txt"]},
        "side": {"cmd": py(SIDE), "outs": ["side.txt"]},
    })
    rng = random.Random(int(os.environ.get("SHIPYARD_KILL_SEED", "7")))
    env = {**os.environ, "CI": "true"}
    for attempt in range(4):
        n = 20 + attempt  # a new input each round, so every round has real work to interrupt
        write_params(root, {"n": n})
        proc = subprocess.Popen([shipyard_bin(), "run", "--jobs", "2"], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(rng.uniform(0.0, 2.0))
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its stage processes, all at once
        except ProcessLookupError:
            pass
        proc.wait()
        resumed = run_cli("run", "--jobs", "2", cwd=root)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert (root / "combined.txt").read_text() == expected_combined(n)
        assert len(list((root / "shards").iterdir())) == n
        status = run_cli("status", cwd=root)
        assert "Everything is up to date" in status.stdout, status.stdout
    from shipyard.store import open_store
    from shipyard.store import pipeline as repo

    store = open_store(Path(root) / ".shipyard")
    with store.read() as session:
        statuses = {r.status for r in repo.list_pipeline_runs(session, limit=100)}
    store.close()
    assert "RUNNING" not in statuses
    assert sys.executable  # the stages ran with this interpreter
