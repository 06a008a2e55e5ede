"""``shipyard sweep`` end to end on a tiny two-stage project: trials are pipeline runs.

The swept stage logs an intermediate score per step (for pruning) and a final score in
metrics.json; ``prepare`` is upstream and reads no swept param, so after the first trials it is
restored from the run cache, never run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.conftest import PG_URL, pg_unavailable, run_cli, shipyard_bin

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sweep")]

CONFIG = """\
pipeline:
  stages:
    prepare:
      cmd: python prepare.py
      deps: [prepare.py]
      params: [prepare]
      outs: [data.json]
    train:
      cmd: python train.py
      deps: [train.py, data.json]
      params: [train]
      metrics: [{metrics.json: {cache: false}}]
"""
TRAIN = """\
import json, os, yaml
p = yaml.safe_load(open("params.yaml"))["train"]
score = -(p["x"] - 3.0) ** 2 - 0.1 * p["depth"]
if os.environ.get("SLOW_TRIAL"):
    import time; time.sleep(float(os.environ["SLOW_TRIAL"]))
json.dump({"score": score}, open("metrics.json", "w"))
"""


@pytest.fixture
def tiny(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "tiny"
    root.mkdir()
    (root / "shipyard.yaml").write_text(CONFIG)
    (root / "params.yaml").write_text("prepare:\n  n: 5\ntrain:\n  x: 0.0  # tuned by sweeps\n  depth: 2\n"
                                      "unused:\n  k: 1\n")
    (root / "prepare.py").write_text("import json\njson.dump(list(range(5)), open('data.json', 'w'))\n")
    (root / "train.py").write_text(TRAIN)
    # the stages' `python` is this interpreter (its folder first on PATH), as in a venv
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("SHIPYARD_STORE", raising=False)
    return root


def _store(root: Path):  # type: ignore[no-untyped-def]
    from shipyard.store import open_store

    return open_store(root / ".shipyard")


def _trial_stage_runs(root: Path, sweep_run: str) -> list[dict[str, str]]:
    """Every stage run of every trial of a sweep, with its tags."""
    from shipyard.store.runs import Run, Tag

    store = _store(root)
    with store.read() as session:
        pipelines = list(session.scalars(select(Run.id).where(Run.parent_run_id == sweep_run)))
        stages = list(session.execute(select(Run.id, Run.name).where(Run.parent_run_id.in_(pipelines))))
        tags = {rid: dict(session.execute(select(Tag.key, Tag.value).where(Tag.run_id == rid)).all()) for rid, _ in stages}
    store.close()
    return [{"name": name, **tags[rid]} for rid, name in stages]


def _sweep(root: Path, *args: str) -> dict:  # type: ignore[type-arg]
    done = run_cli("sweep", "train", "-p", "train.x=[2,3]", "-p", "train.depth=[1,2]", "--metric", "score",
                   "--sampler", "grid", "--seed", "0", "--json", *args, cwd=root, timeout=240)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_grid_sweep_runs_each_trial_as_a_child_pipeline_run_and_applies_the_best(tiny: Path) -> None:
    report = _sweep(tiny, "--trials", "4", "--jobs", "2", "--name", "grid", "--apply")
    assert report["complete"] + report["pruned"] == 4 and report["failed"] == 0
    assert report["best_params"] == {"train.x": 3, "train.depth": 1} and report["best_value"] == pytest.approx(-0.1)
    stage_runs = _trial_stage_runs(tiny, report["run_id"])
    trains = [r for r in stage_runs if r["name"] == "train"]
    assert len(trains) == 4 and all(r["shipyard.restored"] == "false" for r in trains)
    prepared = [r for r in stage_runs if r["name"] == "prepare"]
    assert len(prepared) == 4 and sum(r["shipyard.restored"] == "false" for r in prepared) <= 2  # the rest: run cache
    assert "x: 3  # tuned by sweeps" in (tiny / "params.yaml").read_text()  # comments kept
    again = _sweep(tiny, "--trials", "4", "--jobs", "2", "--name", "again")  # the same four params
    repeated = [r for r in _trial_stage_runs(tiny, again["run_id"]) if r["name"] == "train"]
    assert len(repeated) == 4 and all(r["shipyard.restored"] == "true" for r in repeated)  # never run twice


def _running_trial(root: Path, name: str) -> bool:
    from shipyard.sweep.study import open_study

    if not (root / ".shipyard" / "sweeps.db").exists():
        return False
    store = _store(root)
    try:
        study = open_study(store, root / ".shipyard", name, create=False)
        return any(t.state.name == "RUNNING" for t in study.trials)
    except Exception:
        return False
    finally:
        store.close()


def test_a_sweep_killed_with_sigkill_resumes_where_it_was(tiny: Path) -> None:
    command = [shipyard_bin(), "sweep", "train", "-p", "train.x=uniform(0,6)", "-p", "train.depth=[1,2]",
               "--metric", "score", "--trials", "2", "--seed", "1", "--name", "cut"]
    sweep = subprocess.Popen(command, cwd=tiny, env={**os.environ, "CI": "true", "SLOW_TRIAL": "3"},
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not _running_trial(tiny, "cut"):
        assert sweep.poll() is None and time.monotonic() < deadline, "the sweep never started a trial"
        time.sleep(0.2)
    sweep.send_signal(signal.SIGKILL)
    sweep.wait()
    done = run_cli("sweep", "resume", "cut", "--json", cwd=tiny, timeout=240)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert "was cut short by a killed sweep" in done.stderr
    assert report["complete"] + report["pruned"] == 2 and report["failed"] == 1 and report["state"] == "FINISHED"
    status = run_cli("sweep", "status", "cut", cwd=tiny)
    assert "sweep cut (FINISHED)" in status.stdout
    stop = run_cli("sweep", "stop", "cut", cwd=tiny)  # an ended sweep is not marked, and says so
    assert stop.returncode == 0 and "already ended (FINISHED); nothing to stop" in stop.stdout
    assert "requested by shipyard sweep stop" not in run_cli("sweep", "status", "cut", cwd=tiny).stdout


def test_a_metric_the_stage_never_logs_stops_the_sweep_after_one_trial(tiny: Path) -> None:
    done = run_cli("sweep", "train", "-p", "train.x=uniform(0,6)", "--metric", "accuracy", "--trials", "5",
                   "--name", "typo", cwd=tiny, timeout=240)
    assert done.returncode == 1
    assert "never logged the metric 'accuracy'" in done.stderr
    assert done.stderr.count("trial ") <= 2  # one trial ran, then the sweep stopped
    bad = run_cli("sweep", "train", "-p", "unused.k=int(1,9)", "--metric", "score", cwd=tiny)
    assert bad.returncode == 2 and "stage 'train' does not read this param" in bad.stderr
    assert [p.name for p in (tiny / ".shipyard" / "sweeps").iterdir()] == ["typo"]  # the refused one made nothing


OPEN = textwrap.dedent("""
    import sys
    from pathlib import Path
    from shipyard.store import open_store
    from shipyard.sweep.study import open_study
    state = Path(sys.argv[1])
    store = open_store(state, sys.argv[2] or None)
    study = open_study(store, state, "fresh", direction="minimize")
    study.tell(study.ask(), 1.0)
    print("ok")
""")


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def test_eight_workers_opening_a_fresh_study_all_succeed(tmp_path: Path, backend: str) -> None:
    url = ""
    if backend == "postgresql":
        if pg_unavailable():
            pytest.skip(pg_unavailable() or "")
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_URL)
        with engine.begin() as conn:  # a fresh Optuna schema: the race is on creating its tables
            conn.execute(sqlalchemy.text("DROP SCHEMA IF EXISTS shipyard_optuna CASCADE"))
        engine.dispose()
        url = PG_URL
    workers = [subprocess.Popen([sys.executable, "-c", OPEN, str(tmp_path / "state"), url], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(8)]
    results = [worker.communicate(timeout=180) for worker in workers]
    assert [w.returncode for w in workers] == [0] * 8, [err[-400:] for _, err in results if err]
    assert all(out.strip() == "ok" for out, _ in results)


def test_a_spent_daily_budget_starts_no_new_trial(tiny: Path) -> None:
    config = tiny / "shipyard.yaml"
    config.write_text(config.read_text() + "cost: {cpu_hour: 100}\nbudget: {per_day: 0.000001}\n")
    report = _sweep(tiny, "--trials", "3", "--jobs", "1", "--name", "thrifty")
    assert report["complete"] + report["pruned"] == 1  # the first trial spent the day's budget
    assert report["stop_reason"].startswith("over budget: per_day budget: spent")


def test_a_sweep_declared_in_shipyard_yaml_needs_only_its_stage(tiny: Path) -> None:
    config = tiny / "shipyard.yaml"
    config.write_text(config.read_text() + "sweeps:\n  train:\n    params: {train.x: '[2,3]', train.depth: '[1,2]'}\n"
                                           "    metric: score\n    sampler: grid\n    trials: 4\n    jobs: 2\n")
    done = run_cli("sweep", "train", "--json", "--name", "declared", cwd=tiny, timeout=240)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["spec"]["space"] == ["train.x=[2,3]", "train.depth=[1,2]"] and report["spec"]["trials"] == 4
    assert report["best_params"] == {"train.x": 3, "train.depth": 1}
    missing = run_cli("sweep", "prepare", "-p", "prepare.n=int(1,9)", cwd=tiny)
    assert missing.returncode == 2 and "which metric?" in missing.stderr


WHERE = """\
import json, os, psutil
with open(os.environ["TRIAL_WHERE"], "a") as log:
    log.write(json.dumps([p.pid for p in psutil.Process().parents()]) + "\\n")
"""


def _twenty_trials(root: Path, name: str, *args: str) -> dict:  # type: ignore[type-arg]
    """A 20-trial random sweep, 2 at once; every trial's train stage notes its process ancestors."""
    (root / "train.py").write_text(TRAIN + WHERE)
    done = run_cli("sweep", "train", "-p", "train.x=uniform(0,6)", "-p", "train.depth=int(1,4)", "--metric", "score",
                   "--sampler", "random", "--seed", "7", "--trials", "20", "--jobs", "2", "--name", name, "--json",
                   *args, cwd=root, timeout=900)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["complete"] + report["pruned"] == 20 and report["failed"] == 0, report
    trains = [r for r in _trial_stage_runs(root, report["run_id"]) if r["name"] == "train"]
    assert len(trains) == 20  # every trial is a tracked pipeline run, a child of the sweep
    return report


def test_twenty_trials_two_at_a_time_locally(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    where = tmp_path / "where.jsonl"
    monkeypatch.setenv("TRIAL_WHERE", str(where))
    report = _twenty_trials(tiny, "local")
    assert len(where.read_text().splitlines()) == 20
    assert -0.5 < report["best_value"] <= -0.1  # x near 3, depth 1: random search gets close in 20 trials


def test_twenty_trials_on_a_dask_local_cluster(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("distributed")
    from distributed import Client, LocalCluster

    where = tmp_path / "where.jsonl"
    monkeypatch.setenv("TRIAL_WHERE", str(where))  # before the cluster starts: its workers inherit it
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                      worker_dashboard_address=None) as cluster, Client(cluster) as client:
        worker_pids = set(client.run(os.getpid).values())
        _twenty_trials(tiny, "dask", "--executor", cluster.scheduler_address.replace("tcp://", "dask://"))
    ancestors = [set(json.loads(line)) for line in where.read_text().splitlines()]
    assert len(ancestors) == 20
    assert all(found & worker_pids for found in ancestors)  # every train stage ran under a Dask worker
