"""Load: 8 processes logging 10,000 metric values each into one fresh SQLite store; none lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

PROCESSES = 8
VALUES = 10_000

WORKER = f"""
import shipyard, sys
worker = int(sys.argv[1])
with shipyard.start_run(f"worker-{{worker}}"):
    shipyard.log_param("worker", worker)
    for i in range({VALUES}):
        shipyard.log_metric("value", float(i), step=i)
"""


@pytest.mark.slow
def test_eight_writers_lose_nothing(tmp_path: Path) -> None:
    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHIPYARD_")}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(w)], cwd=root, env=env, stderr=subprocess.PIPE, text=True)
             for w in range(PROCESSES)]
    errors = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * PROCESSES, errors
    db = sqlite3.connect(root / ".shipyard" / "shipyard.db")
    per_run = db.execute("select r.name, count(m.id), count(distinct m.step) from runs r "
                         "join metrics m on m.run_id = r.id and m.key = 'value' group by r.name order by r.name").fetchall()
    assert per_run == [(f"worker-{w}", VALUES, VALUES) for w in range(PROCESSES)]
    assert db.execute("select count(*) from metrics where key = 'value'").fetchone()[0] == PROCESSES * VALUES
    assert db.execute("select count(*) from runs where status = 'FINISHED'").fetchone()[0] == PROCESSES
