"""The Dask executor against a real LocalCluster with worker processes and a shared object folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from shipyard.errors import CheckFailed
from shipyard.pipeline.runner import Context, RunOptions, run
from tests.pipeline.helpers import py, two_stage, write_config


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      worker_dashboard_address=None) as local:
        yield local


@pytest.mark.slow
def test_pipeline_runs_on_dask_workers(cluster, tmp_path, monkeypatch):
    from distributed import Client

    shared = tmp_path / "shared-objects"
    monkeypatch.setenv("SHIPYARD_OBJECTS", str(shared))
    root = tmp_path / "proj"
    root.mkdir()
    two_stage(root)
    # the stage's process tree: a Dask worker process must be among its ancestors
    code = ("import os, json, psutil; json.dump({'pid': os.getpid(), 'stage': os.environ['SHIPYARD_STAGE'], "
            "'ancestors': [p.pid for p in psutil.Process().parents()]}, open('where.json', 'w'))")
    config = (root / "shipyard.yaml").read_text()
    config += f"    where:\n      cmd: {json.dumps(py(code))}\n      outs: [where.json]\n"
    (root / "shipyard.yaml").write_text(config)
    address = cluster.scheduler_address.replace("tcp://", "dask://")
    lines: list[str] = []
    ctx = Context(root, root / ".shipyard")
    ctx.echo = lines.append
    summary = run(ctx, RunOptions(jobs=2, executor=address))
    assert sorted(summary.ran) == ["prepare", "train", "where"]
    assert (root / "model.txt").read_text() == "1" + "hello\n" * 3
    where = json.loads((root / "where.json").read_text())
    assert where["stage"] == "where"
    with Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
    assert os.getpid() not in worker_pids and len(worker_pids) == 2
    # the stage ran under one of the worker processes, not under this test process's runner
    assert worker_pids & set(where["ancestors"]), (where, worker_pids)
    # the workers committed the outs to the shared store: a fresh state folder restores them all
    for out in ("model.txt", "prepared.txt", "where.json"):
        (root / out).unlink()
    import shutil

    shutil.rmtree(root / ".shipyard")
    again = run(Context(root, root / ".shipyard"), RunOptions(jobs=2, executor=address))
    assert sorted(again.restored) == ["prepare", "train", "where"] and again.ran == []
    assert (root / "model.txt").read_text() == "1" + "hello\n" * 3


@pytest.mark.slow
def test_failure_on_a_worker_is_reported(cluster, tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    write_config(root, {"bad": {"cmd": py("import sys; print('boom on worker', file=sys.stderr); sys.exit(4)"),
                                "outs": ["x.txt"]}})
    lines: list[str] = []
    ctx = Context(root, root / ".shipyard")
    ctx.echo = lines.append
    with pytest.raises(CheckFailed):
        run(ctx, RunOptions(executor=cluster.scheduler_address))
    assert any("exited with code 4" in line for line in lines)
    assert any("boom on worker" in line for line in lines)


@pytest.mark.slow
def test_unreachable_scheduler_is_a_clear_error(tmp_path):
    from shipyard.errors import ShipyardError

    root = tmp_path / "proj"
    root.mkdir()
    write_config(root, {"s": {"cmd": "true", "outs": ["x"]}})
    with pytest.raises(ShipyardError, match="Dask scheduler"):
        run(Context(root, root / ".shipyard"), RunOptions(executor="dask://127.0.0.1:1"))


@pytest.mark.slow
def test_dask_workers_build_and_use_the_stage_environment(cluster, tmp_path, monkeypatch):
    # the workers were started before this test: they build into their own (default) cache
    monkeypatch.setenv("SHIPYARD_OBJECTS", str(tmp_path / "shared-objects"))
    root = tmp_path / "proj"
    root.mkdir()
    (root / "requirements.txt").write_text("six==1.16.0\n")
    probe = "import json, os, six, sys; json.dump([sys.prefix, six.__version__, os.getpid()], open('where.json', 'w'))"
    write_config(root, {"probe": {"cmd": f"python -c {json.dumps(probe)}", "outs": ["where.json"],
                                  "environment": {"requirements": "requirements.txt"}}})
    ctx = Context(root, root / ".shipyard")
    ctx.echo = lambda line: None
    summary = run(ctx, RunOptions(jobs=1, executor=cluster.scheduler_address.replace("tcp://", "dask://")))
    assert summary.ran == ["probe"]
    prefix, version, _ = json.loads((root / "where.json").read_text())
    assert version == "1.16.0" and (Path(prefix) / ".shipyard-env-complete").exists()
    assert Path(prefix).parent.name == "envs"
