"""A run-cache restore records its runs through sqlite3 (store.lite), the same rows the full store writes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from shipyard.pipeline.runner import Context, RunOptions, run
from shipyard.store.lite import open_lite
from tests.pipeline.helpers import py, write_config, write_params

TRAIN = ("import yaml, json; k = yaml.safe_load(open('params.yaml'))['train']['k']; "
         "open('model.txt', 'w').write(str(k) + open('raw.txt').read()); "
         "json.dump({'acc': k / 10, 'loss': 1.0 / k}, open('m.json', 'w'))")
PROBE = textwrap.dedent("""
    import sys
    from pathlib import Path
    from shipyard.pipeline.runner import Context, RunOptions, run
    summary = run(Context(Path.cwd(), Path.cwd() / ".shipyard", echo=lambda m: None), RunOptions())
    print("RESTORED", summary.restored, summary.run_id)
    print("SQLALCHEMY", "sqlalchemy" in sys.modules)
    """)


def _train(root: Path, k: int) -> Any:
    write_params(root, {"train": {"k": k}})
    return run(Context(root, root / ".shipyard", echo=lambda m: None), RunOptions())


@pytest.fixture
def restorable(project: Any) -> Path:
    """One stage with a cached metrics file, run with k=1 and k=2 (two run-cache entries)."""
    root = project.project.root
    (root / "raw.txt").write_text("hello\n")
    write_config(root, {"train": {"cmd": py(TRAIN), "deps": ["raw.txt"], "params": ["train.k"], "outs": ["model.txt"],
                                  "metrics": ["m.json"]}})
    for k in (1, 2):
        assert _train(root, k).ran == ["train"]
    return root


def _recorded(db: Path, pipeline_run: str) -> dict[str, Any]:
    """What the store holds of a pipeline run and its one stage, without ids and times."""
    conn = sqlite3.connect(db)
    try:
        status, end = conn.execute("SELECT status, end_time IS NOT NULL FROM runs WHERE id = ?",
                                   (pipeline_run,)).fetchone()
        child, child_status, source, exp = conn.execute(
            "SELECT id, status, source, experiment_id FROM runs WHERE parent_run_id = ?", (pipeline_run,)).fetchone()
        tags = dict(conn.execute("SELECT key, value FROM tags WHERE run_id = ?", (child,)).fetchall())
        tags.pop("shipyard.fingerprint")
        return {
            "pipeline": (status, end, conn.execute("SELECT status, targets, executor, jobs FROM pipeline_runs "
                                                   "WHERE id = ?", (pipeline_run,)).fetchone()),
            "pipeline_tags": dict(conn.execute("SELECT key, value FROM tags WHERE run_id = ?", (pipeline_run,))),
            "child": (child_status, source, exp),
            "tags": tags,
            "params": dict(conn.execute("SELECT key, value FROM params WHERE run_id = ?", (child,)).fetchall()),
            "metrics": sorted(conn.execute("SELECT key, value, step, is_nan FROM metrics WHERE run_id = ?", (child,))),
            "latest": sorted(conn.execute("SELECT key, value, step, is_nan FROM latest_metrics WHERE run_id = ?",
                                          (child,))),
            "execution": conn.execute("SELECT stage, status, cache_hit, reason, ended_at IS NOT NULL FROM "
                                      "stage_executions WHERE run_id = ?", (child,)).fetchone(),
        }
    finally:
        conn.close()


def test_restore_records_through_sqlite3_the_rows_the_full_store_writes(restorable, monkeypatch):  # type: ignore[no-untyped-def]
    root = restorable
    db = root / ".shipyard" / "shipyard.db"
    write_params(root, {"train": {"k": 1}})
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=root, capture_output=True, text=True, timeout=120)
    assert "RESTORED ['train']" in out.stdout, out.stdout + out.stderr
    assert "SQLALCHEMY False" in out.stdout, out.stdout  # the restore's records went through sqlite3
    lite = _recorded(db, out.stdout.split("RESTORED ['train'] ")[1].split()[0])

    # the same restore through the full store (SHIPYARD_STORE named: store.lite steps aside)
    monkeypatch.setenv("SHIPYARD_STORE", f"sqlite:///{db}")
    assert open_lite(root / ".shipyard") is None
    full_summary = _train(root, 2)
    assert full_summary.restored == ["train"]
    full = _recorded(db, full_summary.run_id)

    assert lite["metrics"] == [("acc", 0.1, 0, 0), ("loss", 1.0, 0, 0)]
    assert full["metrics"] == [("acc", 0.2, 0, 0), ("loss", 0.5, 0, 0)]
    assert lite["latest"] == lite["metrics"] and full["latest"] == full["metrics"]
    assert lite["params"] == {"train.k": "1"} and full["params"] == {"train.k": "2"}
    for key in ("pipeline", "pipeline_tags", "child", "tags", "execution"):
        assert lite[key] == full[key], key
    assert lite["execution"] == ("train", "RESTORED", 1, "restored from the run cache", 1)
    assert lite["child"][0] == "FINISHED" and lite["pipeline"][0] == "FINISHED"


def test_lite_store_steps_aside_for_a_schema_it_does_not_know(restorable):  # type: ignore[no-untyped-def]
    state = restorable / ".shipyard"
    assert open_lite(state) is not None
    conn = sqlite3.connect(state / "shipyard.db")
    with conn:
        conn.execute("INSERT INTO alembic_version (version_num) VALUES ('9999_newer')")
    conn.close()
    assert open_lite(state) is None  # a newer (or older) schema: the full store and alembic decide
    assert open_lite(state.parent / "elsewhere") is None  # no store yet


def test_restore_that_reads_a_dataset_version_links_it(project):  # type: ignore[no-untyped-def]
    """A restored stage whose dep is a versioned dataset goes through the full store, which links it."""
    from shipyard.data.versions import add_dataset

    root = project.project.root
    (root / "raw.csv").write_text("a,b\n1,2\n")
    write_config(root, {"train": {"cmd": py(TRAIN.replace("raw.txt", "raw.csv")), "deps": ["raw.csv"],
                                  "params": ["train.k"], "outs": ["model.txt"], "metrics": ["m.json"]}})
    for k in (1, 2):
        _train(root, k)
    add_dataset(project.store, project.objects, project.hasher, "raw.csv", name="raw")
    summary = _train(root, 1)
    assert summary.restored == ["train"]
    conn = sqlite3.connect(root / ".shipyard" / "shipyard.db")
    child = conn.execute("SELECT id FROM runs WHERE parent_run_id = ?", (summary.run_id,)).fetchone()[0]
    inputs = conn.execute("SELECT name, context FROM dataset_inputs WHERE run_id = ?", (child,)).fetchall()
    conn.close()
    assert inputs == [("raw@1", "input")] or (inputs and inputs[0][1] == "input"), json.dumps(inputs)


def test_lite_closes_only_runs_whose_runner_is_gone(restorable):  # type: ignore[no-untyped-def]
    """The sqlite3 path decides as the full store does (tests/pipeline/test_store.py)."""
    import os

    from shipyard.processes import this_host
    from shipyard.store import lite

    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    writer = open_lite(restorable / ".shipyard")
    assert writer is not None
    with writer.write() as conn:
        for run_id, pid, host in (("d" * 32, done.pid, this_host()), ("l" * 32, os.getpid(), this_host()),
                                  ("o" * 32, done.pid, "another-machine")):
            lite.create_run(conn, run_id=run_id, experiment_id=writer.default_experiment_id, name="pipeline",
                            parent_run_id=None, source="pipeline", tags={}, git={}, host=host)
            lite.start_pipeline_run(conn, run_id, targets=[], executor="local", jobs=1, pid=pid)
    with writer.write() as conn:
        assert lite.mark_interrupted(conn) == ["d" * 32]
    rows = sqlite3.connect(restorable / ".shipyard" / "shipyard.db").execute(
        "SELECT id, status FROM runs WHERE id IN (?, ?, ?)", ("d" * 32, "l" * 32, "o" * 32)).fetchall()
    assert dict(rows) == {"d" * 32: "KILLED", "l" * 32: "RUNNING", "o" * 32: "RUNNING"}
