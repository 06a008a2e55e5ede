"""Pipeline tables on SQLite and PostgreSQL: runs, stage executions, interrupted runs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from shipyard.errors import InputError
from shipyard.processes import this_host
from shipyard.store import pipeline as repo
from shipyard.store import runs


def _dead_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def _pipeline_run(session, run_id="p" * 32, pid=None, host=None):  # type: ignore[no-untyped-def]
    experiment = runs.experiment_by_name(session, runs.DEFAULT_EXPERIMENT)
    runs.create_run(session, experiment_id=experiment.id, run_id=run_id, source="pipeline", host=host)
    repo.start_pipeline_run(session, run_id, targets=["train"], executor="local", jobs=2,
                            pid=_dead_pid() if pid is None else pid)
    return experiment


def test_stage_executions_round_trip(store):
    with store.write() as session:
        experiment = _pipeline_run(session)
        runs.create_run(session, experiment_id=experiment.id, run_id="c" * 32, parent_run_id="p" * 32, source="pipeline")
        ids = repo.start_stages(session, "p" * 32, [("train", "c" * 32, "xxh128:" + "f" * 32)])
        repo.record_skipped(session, "p" * 32, "report", "", "upstream stage 'train' failed")
    with store.write() as session:
        repo.finish_stage(session, ids["train"], repo.StageOutcome("FAILED", exit_code=3, cpu_seconds=1.5,
                                                                  peak_memory_bytes=10 << 20, log_oid="xxh128:" + "a" * 32,
                                                                  reason="command exited with code 3"))
        repo.finish_pipeline_run(session, "p" * 32, "FAILED")
    with store.read() as session:
        rows = repo.stage_executions(session, "p" * 32)
        assert [(r.stage, r.status, r.exit_code) for r in rows] == [("train", "FAILED", 3), ("report", "SKIPPED", None)]
        assert rows[0].peak_memory_bytes == 10 << 20 and rows[0].cpu_seconds == 1.5
        assert repo.list_pipeline_runs(session)[0].status == "FAILED"


def test_interrupted_runs_are_closed(store):
    with store.write() as session:
        experiment = _pipeline_run(session)
        runs.create_run(session, experiment_id=experiment.id, run_id="c" * 32, parent_run_id="p" * 32, source="pipeline")
        repo.start_stages(session, "p" * 32, [("train", "c" * 32, "fp")])
    with store.write() as session:
        assert repo.mark_interrupted(session) == ["p" * 32]
    with store.read() as session:
        assert repo.stage_executions(session, "p" * 32)[0].status == "KILLED"
        assert runs.get_run(session, "c" * 32).status == "KILLED"
        assert runs.get_run(session, "p" * 32).status == "KILLED"
    with store.write() as session:
        assert repo.mark_interrupted(session) == []


def test_a_shared_store_closes_only_runs_whose_runner_is_gone(store):
    """Two machines, or two projects, on one store: a run of a live process or of another host stays."""
    with store.write() as session:
        _pipeline_run(session, "d" * 32, host=this_host())                 # its runner died here
        _pipeline_run(session, "l" * 32, pid=os.getpid(), host=this_host())  # still running here
        _pipeline_run(session, "o" * 32, pid=os.getpid(), host="another-machine")
        _pipeline_run(session, "x" * 32, host="another-machine")            # its pid means nothing here
    with store.write() as session:
        assert repo.mark_interrupted(session) == ["d" * 32]
    with store.read() as session:
        assert [runs.get_run(session, r * 32).status for r in "dlox"] == ["KILLED", "RUNNING", "RUNNING", "RUNNING"]


def test_bad_status_is_refused(store):
    with store.write() as session:
        _pipeline_run(session)
        with pytest.raises(InputError, match="DONE"):
            repo.finish_pipeline_run(session, "p" * 32, "DONE")
