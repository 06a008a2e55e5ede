"""Running pipelines in process against a real project folder, store and object store."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from shipyard.errors import CheckFailed, InputError
from shipyard.pipeline.runner import Context, RunOptions, explain, run
from tests.pipeline.helpers import py, two_stage, write_config, write_params


def ctx_of(root: Path, lines: list[str] | None = None) -> Context:
    ctx = Context(root, root / ".shipyard")
    if lines is not None:
        ctx.echo = lines.append
    return ctx


def go(root: Path, lines: list[str] | None = None, **options):  # type: ignore[no-untyped-def]
    return run(ctx_of(root, lines), RunOptions(**options))


def test_second_run_is_a_no_op_and_a_param_change_reruns_only_its_stage(project):
    root = project.project.root
    two_stage(root)
    first = go(root)
    assert first.ran == ["prepare", "train"]
    assert (root / "model.txt").read_text() == "1" + "hello\n" * 3
    lines: list[str] = []
    again = go(root, lines)
    assert again.ran == [] and again.restored == [] and again.up_to_date == ["prepare", "train"]
    assert any("Everything is up to date" in line for line in lines)
    write_params(root, {"prepare": {"n": 3}, "train": {"k": 2, "unused": 0}})
    changed = go(root)
    assert changed.ran == ["train"] and changed.up_to_date == ["prepare"]
    write_params(root, {"prepare": {"n": 3}, "train": {"k": 2, "unused": 99}})  # untracked key
    assert go(root).ran == []


def test_switching_back_restores_from_the_run_cache(project):
    root = project.project.root
    two_stage(root)
    go(root)
    original = (root / "model.txt").read_text()
    write_params(root, {"prepare": {"n": 3}, "train": {"k": 5, "unused": 0}})
    go(root)
    write_params(root, {"prepare": {"n": 3}, "train": {"k": 1, "unused": 0}})
    lines: list[str] = []
    back = go(root, lines)
    assert back.restored == ["train"] and back.ran == []
    assert (root / "model.txt").read_text() == original
    assert json.loads((root / "metrics.json").read_text()) == {"k": 1}
    assert any("restored from the run cache" in line and "another machine" in line for line in lines)
    assert go(root).ran == []  # the restore wrote the lock
    write_params(root, {"prepare": {"n": 3}, "train": {"k": 5, "unused": 0}})
    assert go(root, no_cache=True).ran == ["train"]


def test_run_cache_is_shared_through_the_object_store(project, tmp_path, monkeypatch):
    """A second clone with its own state folder, sharing only SHIPYARD_OBJECTS, restores instead of running."""
    shared = tmp_path / "shared-objects"
    monkeypatch.setenv("SHIPYARD_OBJECTS", str(shared))
    root = project.project.root
    two_stage(root)
    go(root)
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("shipyard.yaml", "params.yaml", "raw.txt"):
        (clone / name).write_text((root / name).read_text())
    summary = go(clone)
    assert summary.restored == ["prepare", "train"] and summary.ran == []
    assert (clone / "model.txt").read_text() == (root / "model.txt").read_text()


def test_removing_a_dep_reruns_and_explain_says_so(project):
    root = project.project.root
    two_stage(root)
    (root / "extra.txt").write_text("x")
    config = (root / "shipyard.yaml").read_text()
    write_config(root, {"only": {"cmd": py("open('o.txt','w').write('1')"), "deps": ["raw.txt", "extra.txt"],
                                 "outs": ["o.txt"]}})
    go(root)
    write_config(root, {"only": {"cmd": py("open('o.txt','w').write('1')"), "deps": ["raw.txt"], "outs": ["o.txt"]}})
    ctx = ctx_of(root)
    report = explain(ctx, "only")
    assert report["state"] == "changed"
    assert any(c["kind"] == "dep" and c["name"] == "extra.txt" and c["new"] is None for c in report["changes"])
    assert config  # the two-stage config was replaced on purpose


def test_modified_or_deleted_out_is_rebuilt(project):
    root = project.project.root
    two_stage(root)
    go(root)
    (root / "model.txt").write_text("tampered")
    status = {s.name: s for s in ctx_of(root).status()}
    assert status["train"].state == "changed" and "modified" in status["train"].reasons[0]
    summary = go(root)
    assert summary.restored == ["train"]  # same inputs: the run cache has the real output
    assert (root / "model.txt").read_text() != "tampered"


def test_failing_command_shows_exit_code_and_stderr_and_skips_dependents(project):
    root = project.project.root
    write_config(root, {
        "bad": {"cmd": py("import sys; print('about to fail', file=sys.stderr); sys.exit(3)"), "outs": ["bad.txt"]},
        "after_bad": {"cmd": py("open('c.txt','w').write('c')"), "deps": ["bad.txt"], "outs": ["c.txt"]},
        "good": {"cmd": py("import time; time.sleep(0.3); open('g.txt','w').write('g')"), "outs": ["g.txt"]},
    })
    lines: list[str] = []
    with pytest.raises(CheckFailed) as err:
        go(root, lines, jobs=1, keep_going=True)
    assert "bad" in err.value.message and "after_bad" in err.value.message
    text = "\n".join(lines)
    assert "exited with code 3" in text and "about to fail" in text
    assert "Skipping stage 'after_bad'" in text
    assert (root / "g.txt").exists()  # the independent branch finished
    assert "bad" not in ctx_of(root).lock.stages


def test_without_keep_going_nothing_new_starts_after_a_failure(project):
    root = project.project.root
    write_config(root, {
        "bad": {"cmd": "exit 1", "outs": ["bad.txt"]},
        "later": {"cmd": py("open('l.txt','w').write('l')"), "outs": ["l.txt"]},
    })
    with pytest.raises(CheckFailed):
        go(root, [], jobs=1)
    assert not (root / "l.txt").exists()


def test_command_that_does_not_write_its_out_fails(project):
    root = project.project.root
    write_config(root, {"lazy": {"cmd": "true", "outs": ["never.txt"]}})
    lines: list[str] = []
    with pytest.raises(CheckFailed):
        go(root, lines)
    assert any("did not create never.txt" in line for line in lines)


def test_missing_dep_that_no_stage_produces(project):
    root = project.project.root
    write_config(root, {"train": {"cmd": "true", "deps": ["data/nope.csv"]}})
    with pytest.raises(InputError) as err:
        go(root)
    assert "'train'" in err.value.message and "data/nope.csv" in err.value.message


def test_independent_stages_run_in_parallel(project):
    """Each stage waits for the other's marker file: this only finishes when both run at once."""
    root = project.project.root
    wait_for = ("import pathlib, sys, time; pathlib.Path(sys.argv[1]).write_text('1'); t = time.time()\n"
                "while not pathlib.Path(sys.argv[2]).exists():\n"
                "    time.sleep(0.02)\n"
                "    if time.time() - t > 20: sys.exit('the other stage never ran alongside')\n"
                "pathlib.Path(sys.argv[3]).write_text('done')")
    write_config(root, {
        "left": {"cmd": py(wait_for) + " l.mark r.mark left.txt", "outs": ["left.txt"]},
        "right": {"cmd": py(wait_for) + " r.mark l.mark right.txt", "outs": ["right.txt"]},
    })
    summary = go(root, jobs=2)
    assert sorted(summary.ran) == ["left", "right"]


def test_stage_environment_and_tracking_records(project):
    root = project.project.root
    code = ("import os, json; json.dump({k: os.environ.get(k) for k in "
            "('SHIPYARD_RUN_ID', 'SHIPYARD_STAGE', 'SHIPYARD_PROJECT_ROOT', 'EXTRA')}, open('env.json', 'w')); "
            "print('to stdout'); x = bytearray(30_000_000)")
    write_config(root, {"env": {"cmd": py(code), "outs": ["env.json"], "env": {"EXTRA": "yes"}}})
    summary = go(root)
    seen = json.loads((root / "env.json").read_text())
    assert seen["SHIPYARD_STAGE"] == "env" and seen["EXTRA"] == "yes"
    assert Path(seen["SHIPYARD_PROJECT_ROOT"]) == root.resolve()
    from shipyard.store import open_store
    from shipyard.store import pipeline as repo
    from shipyard.store.runs import get_run

    store = open_store(root / ".shipyard")
    with store.read() as session:
        (execution,) = repo.stage_executions(session, summary.run_id)
        assert execution.status == "SUCCEEDED" and execution.exit_code == 0 and not execution.cache_hit
        assert execution.run_id == seen["SHIPYARD_RUN_ID"]
        assert execution.peak_memory_bytes > 30_000_000 and execution.cpu_seconds > 0
        child = get_run(session, execution.run_id)
        assert child.parent_run_id == summary.run_id and child.source == "pipeline" and child.status == "FINISHED"
        parent = get_run(session, summary.run_id)
        assert parent.status == "FINISHED"
        log = project.objects.get_bytes(execution.log_oid).decode()
        assert "to stdout" in log
    store.close()


def test_status_and_dry_run_change_nothing(project):
    root = project.project.root
    two_stage(root)
    ctx = ctx_of(root, [])
    assert [s.state for s in ctx.status()] == ["never-run", "upstream"]
    summary = run(ctx, RunOptions(dry_run=True))
    assert summary.would_run == ["prepare", "train"]
    assert not (root / "shipyard.lock").exists() and not (root / ".shipyard" / "shipyard.db").exists()


def test_persist_out_is_kept_and_outs_are_removed_before_a_run(project):
    root = project.project.root
    append = "import os; open('log.txt','a').write('x'); print(os.path.exists('o.txt'))"
    write_config(root, {"s": {"cmd": py(append) + " && echo > o.txt", "outs": [{"log.txt": {"persist": True}}, "o.txt"],
                              "always_changed": True}})
    go(root)
    go(root)
    assert (root / "log.txt").read_text() == "xx"


def test_frozen_stage_never_runs(project):
    root = project.project.root
    write_config(root, {"f": {"cmd": "touch f.txt", "outs": ["f.txt"], "frozen": True}})
    summary = go(root)
    assert summary.ran == [] and not (root / "f.txt").exists()


def test_another_runner_holds_the_lock(project):
    from shipyard.errors import StoreBusy
    from shipyard.pipeline.runner import RunLock

    root = project.project.root
    two_stage(root)
    held = RunLock(root / ".shipyard")
    try:
        with pytest.raises(StoreBusy, match=str(os.getpid())):
            go(root)
    finally:
        held.release()


def test_lock_file_is_deterministic(project):
    root = project.project.root
    two_stage(root)
    go(root)
    first = (root / "shipyard.lock").read_text()
    time.sleep(0.01)
    go(root, force=True)
    assert (root / "shipyard.lock").read_text() == first
    assert first.index("  prepare:") < first.index("  train:")
    assert sys.version.split()[0] in first


def test_metrics_logged_inside_a_stage_attach_to_its_run(project):
    root = project.project.root
    code = "import shipyard; shipyard.log_metric('loss', 0.25); open('done.txt', 'w').write('1')"
    write_config(root, {"fit": {"cmd": py(code), "outs": ["done.txt"]}})
    summary = go(root)
    from shipyard.store import open_store
    from shipyard.store import pipeline as repo
    from shipyard.store.runs import LatestMetric

    store = open_store(root / ".shipyard")
    with store.read() as session:
        (execution,) = repo.stage_executions(session, summary.run_id)
        metric = session.get(LatestMetric, (execution.run_id, "loss"))
        assert metric is not None and metric.value == 0.25
    store.close()
