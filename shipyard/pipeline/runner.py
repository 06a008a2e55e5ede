"""Deciding what is out of date, and running it: status, run, explain.

The runner is the bookkeeping around executors (STYLE.md D1): it takes the project lock, computes
each stage's fingerprint once its upstream stages are done, skips stages that are up to date,
restores outputs from the run cache, removes outs before a stage runs (unless ``persist``), submits
up to ``--jobs`` independent stages to the executor, and after each success commits the outs, writes
the run-cache entry and the lock entry, and records the stage execution. It never records a stage
before its outs are stored, so a runner killed at any point leaves nothing half-recorded: the next
run sees outs that do not match the lock and runs (or restores) the stage again.

The store (SQLAlchemy) is opened only once something is going to run or be restored: ``status`` and
a no-op ``run`` use nothing but the standard library, xxhash, the parse cache and the lock file.
"""

from __future__ import annotations

import fcntl
import math
import os
import posixpath
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.dotted import flatten, numeric_leaves
from shipyard.errors import CheckFailed, InputError, ShipyardError, StoreBusy
from shipyard.pipeline import lockfile as lockmod
from shipyard.pipeline import runcache
from shipyard.pipeline.dag import Dag, StageSpec
from shipyard.pipeline.fingerprint import Inputs, diff, environment, stage_inputs
from shipyard.pipeline.hashcache import HashCache, PathHash
from shipyard.pipeline.loader import LoadedPipeline, load_pipeline
from shipyard.processes import this_host

Echo = Callable[[str], None]


def _print(message: str) -> None:
    print(message, flush=True)


@dataclass
class StageStatus:
    """Whether a stage would run, and why."""

    name: str
    state: str  # up-to-date | changed | never-run | always | frozen | upstream | missing-deps
    reasons: list[str] = field(default_factory=list)
    inputs: Inputs | None = None
    deps: dict[str, PathHash | None] = field(default_factory=dict)

    @property
    def stale(self) -> bool:
        return self.state not in ("up-to-date", "frozen")

    def to_dict(self) -> dict[str, Any]:
        return {"stage": self.name, "state": self.state, "reasons": self.reasons,
                "fingerprint": self.inputs.fingerprint if self.inputs else None}


class Context:
    """A project's pipeline, lock file and hashes, opened without the store."""

    def __init__(self, root: Path, state_dir: Path, *, echo: Echo = _print) -> None:
        self.root = Path(root).resolve()
        self.state_dir = Path(state_dir)
        self.echo = echo
        self.pipeline: LoadedPipeline = load_pipeline(self.root, self.state_dir)
        self.dag: Dag = self.pipeline.dag
        self.hashes = HashCache(self.root, self.state_dir / "pipeline" / "hashes")
        self.lock = lockmod.Lockfile(self.root, self.state_dir)
        self._env: dict[str, str] | None = None
        self._objects: Any = None
        self._features: Any = None  # the Feast repo's definitions, read when a stage uses features
        self._environments: dict[str, Any] = {}  # stage -> its resolved environment (envs.Resolved)

    @property
    def env(self) -> dict[str, str]:
        if self._env is None:
            self._env = environment(self.root, self.pipeline.environment, self.hashes)
        return self._env

    def dvc_env(self, stage: StageSpec) -> dict[str, str]:
        """What ``dvc repro`` adds to a stage's environment (dvc/stage/run.py), for a DVC project.

        dvclive reads DVC_ROOT to know it runs inside a pipeline: without it, it calls
        ``dvc exp save``, which creates refs/exps/... and rewrites dvc.lock behind our back."""
        if self.pipeline.source != "dvc.yaml" and not (self.root / ".dvc").is_dir():
            return {}
        return {"DVC_ROOT": os.environ.get("DVC_ROOT") or str(self.root), "DVC_STAGE": stage.name}

    @property
    def features(self) -> Any:
        """The feature repository's definitions (shipyard.features; imports nothing of Feast while the
        repository's files are unchanged since they were last read)."""
        if self._features is None:
            from shipyard.features.stage import load, repo_path

            self._features = load(self.root, self.state_dir, repo_path(self.root, self.pipeline.features_repo))
        return self._features

    def feature_inputs(self, stage: StageSpec) -> dict[str, Any] | None:
        """The feature part of a stage's fingerprint, or None for a stage without ``features:``."""
        if stage.features is None:
            return None
        from shipyard.features.stage import fingerprint_part

        return fingerprint_part(self.features, self.root, stage.features.refs, self.hashes.hash_many)

    def environment_of(self, stage: StageSpec) -> Any:
        """The stage's resolved environment (shipyard.pipeline.envs.Resolved), or None without one."""
        if stage.environment is None:
            return None
        if stage.name not in self._environments:
            from shipyard.pipeline import envs

            where = f"{self.pipeline.source}: stage {stage.name}: environment"
            self._environments[stage.name] = envs.resolve(self.root, self.state_dir, stage.environment, where)
        return self._environments[stage.name]

    @property
    def objects(self) -> Any:
        if self._objects is None:
            from shipyard.objects import ObjectStore

            self._objects = ObjectStore.open(self.objects_url)
        return self._objects

    @property
    def objects_url(self) -> str:
        from shipyard.project import objects_location

        return objects_location(self.state_dir)

    # -- checks ---------------------------------------------------------------------------
    def check_missing_deps(self, dag: Dag) -> None:
        """A dep that does not exist and that no stage produces is an error before anything runs."""
        problems = []
        for stage in dag.stages.values():
            for dep in stage.deps:
                if self.dag.producer_of(dep) is None and not os.path.exists(self.root / dep):
                    problems.append(f"stage {stage.name!r}: dep {dep!r} does not exist and no stage produces it")
        if problems:
            raise InputError("\n".join(problems),
                             hint="create the file, fix the path in the config, or add a stage whose outs include it")

    def check(self, stage: StageSpec, upstream_stale: Iterable[str] = ()) -> StageStatus:
        """Compare a stage's current inputs and outs with its lock entry."""
        deps = self.hashes.hash_many(list(stage.deps))
        environment = self.environment_of(stage)
        inputs = stage_inputs(stage, {p: (h.oid if h else None) for p, h in deps.items()}, self.pipeline.params, self.env,
                              self.feature_inputs(stage), environment.key if environment is not None else None)
        entry = self.lock.get(stage.name)
        status = StageStatus(stage.name, "up-to-date", [], inputs, deps)
        ups = list(upstream_stale)
        if stage.frozen:
            status.state = "frozen"
            status.reasons = ["frozen: never run by 'shipyard run' (unfreeze it in the config to run it)"]
            return status
        missing = [p for p, h in deps.items() if h is None]
        if ups:
            status.state = "upstream"
            status.reasons = [f"upstream stage {u!r} will run" for u in ups]
        elif missing:
            status.state = "missing-deps"
            status.reasons = [f"dep {p} is missing (its stage has not run)" for p in missing]
        elif entry is None:
            status.state = "never-run"
            status.reasons = ["never run (no entry in shipyard.lock)"]
        elif stage.always_changed:
            status.state = "always"
            status.reasons = ["always_changed: runs every time"]
        elif entry.get("fingerprint") != inputs.fingerprint:
            status.state = "changed"
            status.reasons = [c.describe() for c in diff(lockmod.document_of(entry), inputs.document())] or [
                "fingerprint changed"]
        else:
            reasons = []
            current = self.hashes.hash_many([o["path"] for o in entry.get("outs") or []])
            for out in entry.get("outs") or []:
                found = current.get(out["path"])
                if found is None:
                    reasons.append(f"out {out['path']} is missing")
                elif found.oid != out.get("hash"):
                    reasons.append(f"out {out['path']} was modified ({out.get('hash')} -> {found.oid})")
            if reasons:
                status.state = "changed"
                status.reasons = reasons
        return status

    def status(self, targets: Iterable[str] = ()) -> list[StageStatus]:
        dag = self.dag.select(targets)
        results: dict[str, StageStatus] = {}
        for name in dag.order:
            ups = [u for u in dag.upstream[name] if results[u].stale]
            results[name] = self.check(dag.stages[name], ups)
        return [results[n] for n in dag.order]


# -- the run lock -------------------------------------------------------------------------------

class RunLock:
    """One ``shipyard run`` per project at a time (released by the kernel even on SIGKILL)."""

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / "pipeline" / "run.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(self.fd)
            raise StoreBusy(f"another 'shipyard run' (pid {holder}) is running in this project",
                            hint="wait for it to finish; a killed runner releases the lock by itself") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


# -- recording ----------------------------------------------------------------------------------

# set by ``shipyard sweep`` for each trial's ``shipyard run``: the sweep's run and the trial number
SWEEP_RUN_ENV = "SHIPYARD_SWEEP_RUN_ID"
SWEEP_TRIAL_ENV = "SHIPYARD_SWEEP_TRIAL"


class Recorder:
    """Writes the pipeline run, stage executions and tracking runs; opens the store on first use."""

    def __init__(self, ctx: Context, targets: list[str], executor: str, jobs: int) -> None:
        self.ctx = ctx
        self.targets = targets
        self.executor = executor
        self.jobs = jobs
        self._store: Any = None
        # Restore records go through sqlite3 (store.lite) until something needs the full store:
        # importing SQLAlchemy would cost more than the restore itself.
        self._lite: Any = None
        self._lite_tried = False
        self.run_id: str | None = None
        self.executions: dict[str, int] = {}
        self.child_runs: dict[str, str] = {}
        self.git: dict[str, Any] = {}

    @property
    def store(self) -> Any:
        """The full store (SQLAlchemy), opened on first use; from then on every record goes through it."""
        if self._store is None:
            from shipyard.store import open_store

            self._store = open_store(self.ctx.state_dir)
            if self._lite is not None:
                self._lite.close()
                self._lite = None
            self._lite_tried = True
        return self._store

    def _lite_store(self) -> Any:
        """The sqlite3 writer of restore records while the full store is not open, else None."""
        if not self._lite_tried:
            from shipyard.store.lite import open_lite

            self._lite_tried = True
            self._lite = open_lite(self.ctx.state_dir)
        return self._lite

    def open(self, lite: bool = False) -> str:
        if self.run_id is not None:
            return self.run_id
        from shipyard.tracking.gitinfo import git_info

        git = git_info(self.ctx.root)
        self.git = {"git_commit": git.get("commit"), "git_branch": git.get("branch"), "git_dirty": git.get("dirty")}
        run_id = uuid.uuid4().hex
        writer = self._lite_store() if lite else None
        if writer is not None:
            from shipyard.store import lite as records

            with writer.write() as conn:
                closed = records.mark_interrupted(conn)
                records.create_run(conn, run_id=run_id, experiment_id=writer.default_experiment_id, name="pipeline",
                                   parent_run_id=os.environ.get(SWEEP_RUN_ENV) or None, source="pipeline",
                                   tags=self._tags(), git=self.git, host=this_host())
                records.start_pipeline_run(conn, run_id, targets=self.targets, executor=self.executor, jobs=self.jobs,
                                           pid=os.getpid())
            self._opened(run_id, writer.default_experiment_id, closed)
            return run_id
        from shipyard.store import pipeline as repo
        from shipyard.store import runs

        with self.store.write() as session:
            closed = repo.mark_interrupted(session)
            experiment = runs.experiment_by_name(session, runs.DEFAULT_EXPERIMENT)
            runs.create_run(session, experiment_id=experiment.id, run_id=run_id, name="pipeline", source="pipeline",
                            parent_run_id=os.environ.get(SWEEP_RUN_ENV) or None, tags=self._tags(), host=this_host(),
                            **self.git)
            repo.start_pipeline_run(session, run_id, targets=self.targets, executor=self.executor, jobs=self.jobs,
                                    pid=os.getpid())
        self._opened(run_id, experiment.id, closed)
        return run_id

    def _opened(self, run_id: str, experiment_id: int, closed: list[str]) -> None:
        if closed:
            self.ctx.echo(f"note: {len(closed)} earlier pipeline run(s) were interrupted; marked KILLED")
        self.run_id = run_id
        self.experiment_id = experiment_id

    def _tags(self) -> dict[str, str]:
        tags = {"shipyard.pipeline": self.ctx.pipeline.source}
        if os.environ.get(SWEEP_RUN_ENV):  # a sweep's trial: a child run of the sweep's run
            tags["shipyard.sweep.trial"] = os.environ.get(SWEEP_TRIAL_ENV, "")
        return tags

    def start_stage(self, name: str, fingerprint: str, params: dict[str, dict[str, Any]], restored: bool,
                    deps: dict[str, PathHash | None] | None = None) -> str:
        """Open the stage's child run with its params, and link the dataset versions it reads."""
        pipeline_run = self.open(lite=restored)
        child = uuid.uuid4().hex
        flat: dict[str, Any] = {}
        for file, values in params.items():
            flat.update(flatten(values, "" if file == "params.yaml" else f"{file}:"))
        read = {path: h.oid for path, h in (deps or {}).items() if h is not None}
        lite = self._lite_store() if restored else None
        if lite is not None and not lite.links_datasets(list(read.values())):
            from shipyard.store import lite as records

            with lite.write() as conn:
                records.create_run(conn, run_id=child, experiment_id=self.experiment_id, name=name,
                                   parent_run_id=pipeline_run, source="pipeline", git=self.git,
                                   tags={"shipyard.stage": name, "shipyard.fingerprint": fingerprint,
                                         "shipyard.restored": str(restored).lower()})
                records.log_params(conn, child, {k[:250]: v for k, v in flat.items()})
                self.executions[name] = records.start_stage(conn, pipeline_run, name, child, fingerprint)
            self.child_runs[name] = child
            return child
        from shipyard.data.versions import record_run_inputs, versions_for_paths
        from shipyard.store import pipeline as repo
        from shipyard.store import runs

        with self.store.write() as session:
            runs.create_run(session, experiment_id=self.experiment_id, run_id=child, name=name, parent_run_id=pipeline_run,
                            source="pipeline", tags={"shipyard.stage": name, "shipyard.fingerprint": fingerprint,
                                                     "shipyard.restored": str(restored).lower()}, **self.git)
            runs.log_params(session, child, {k[:250]: v for k, v in flat.items()})
            record_run_inputs(session, child, versions_for_paths(session, read))
            ids = repo.start_stages(session, pipeline_run, [(name, child, fingerprint)])
        self.executions[name] = ids[name]
        self.child_runs[name] = child
        return child

    def finish_stage(self, name: str, outcome: Any, *, cache_hit: bool,
                     metrics: list[tuple[str, float, int]] | None = None) -> None:
        """Close the stage's execution and child run; log its metrics as (key, value, step) points."""
        status = "FINISHED" if outcome.status in ("SUCCEEDED", "RESTORED") else "FAILED"
        if self._lite is not None:  # a restored stage, recorded through sqlite3 (its run has no metrics yet)
            from shipyard.store import lite as records

            with self._lite.write() as conn:
                records.finish_stage(conn, self.executions[name], outcome, cache_hit=cache_hit)
                if metrics:
                    records.log_new_metrics(conn, self.child_runs[name], [(k[:250], v, s) for k, v, s in metrics])
                records.finish_run(conn, self.child_runs[name], status)
            return
        from shipyard.store import pipeline as repo
        from shipyard.store import runs

        with self.store.write() as session:
            repo.finish_stage(session, self.executions[name], outcome, cache_hit=cache_hit)
            if metrics:
                runs.log_metrics(session, self.child_runs[name], [runs.MetricValue(k[:250], v, step)
                                                                  for k, v, step in metrics])
            runs.finish_run(session, self.child_runs[name], status)

    def skipped(self, name: str, fingerprint: str, reason: str) -> None:
        from shipyard.store import pipeline as repo

        pipeline_run = self.open()
        with self.store.write() as session:
            repo.record_skipped(session, pipeline_run, name, fingerprint, reason)

    def finish(self, status: str) -> None:
        if self.run_id is None:
            return
        run_status = "FINISHED" if status == "SUCCEEDED" else ("KILLED" if status == "KILLED" else "FAILED")
        if self._lite is not None:
            from shipyard.store import lite as records

            with self._lite.write() as conn:
                records.finish_pipeline_run(conn, self.run_id, status)
                records.finish_run(conn, self.run_id, run_status)
            self._lite.close()
            return
        from shipyard.store import pipeline as repo
        from shipyard.store import runs

        with self.store.write() as session:
            repo.finish_pipeline_run(session, self.run_id, status)
            runs.finish_run(session, self.run_id, run_status)
        self.store.close()


# -- running ------------------------------------------------------------------------------------

@dataclass
class RunOptions:
    targets: list[str] = field(default_factory=list)
    force: bool = False
    jobs: int = 1
    dry_run: bool = False
    keep_going: bool = False
    downstream: bool = False
    no_cache: bool = False
    executor: str | None = None


@dataclass
class RunSummary:
    ran: list[str] = field(default_factory=list)
    restored: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    would_run: list[str] = field(default_factory=list)
    run_id: str | None = None
    stages: list[StageReport] = field(default_factory=list)

    def note(self, name: str, status: str, seconds: float | None = None, reason: str = "") -> None:
        self.stages.append(StageReport(name, status, seconds, reason))

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "stages"}
        out["stages"] = [s.__dict__ for s in self.stages]
        return out


@dataclass(frozen=True)
class StageReport:
    """One line of a run's outcome (what ``shipyard ci`` puts in its report)."""

    name: str
    status: str  # ran | restored | up-to-date | failed | skipped
    seconds: float | None = None
    reason: str = ""


def _remove_outs(root: Path, stage: StageSpec) -> None:
    for out in stage.outs:
        if out.persist:
            continue
        path = root / out.path
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def _outs_rows(stage: StageSpec, outs: dict[str, PathHash]) -> list[dict[str, Any]]:
    flags = {o.path: o for o in stage.outs}
    rows = []
    for path in sorted(outs):
        found = outs[path]
        row = {"path": path, "hash": found.oid, "size": found.size}
        if found.nfiles is not None:
            row["nfiles"] = found.nfiles
        if not flags[path].cache:
            row["cache"] = False
        rows.append(row)
    return rows


def _cacheable(stage: StageSpec) -> bool:
    return bool(stage.outs) and not stage.always_changed and not any(o.persist for o in stage.outs)


def run(ctx: Context, options: RunOptions) -> RunSummary:
    """Run what is out of date; returns what happened. Raises CheckFailed when a stage failed."""
    dag = ctx.dag.select(options.targets, downstream=options.downstream)
    ctx.check_missing_deps(dag)
    for name in dag.order:  # an environment that does not resolve stops the run before any stage runs
        ctx.environment_of(dag.stages[name])
    summary = RunSummary()
    if options.dry_run:
        return _dry_run(ctx, dag, options, summary)
    lock = RunLock(ctx.state_dir)
    executor_spec = options.executor or ctx.pipeline.executor or "local"
    recorder = Recorder(ctx, options.targets, executor_spec, options.jobs)
    final = "SUCCEEDED"
    try:
        _run_loop(ctx, dag, options, summary, recorder, executor_spec)
    except KeyboardInterrupt:
        final = "KILLED"
        raise
    except BaseException:
        final = "FAILED"
        raise
    finally:
        if summary.failed and final == "SUCCEEDED":
            final = "FAILED"
        try:
            recorder.finish(final)
        finally:
            lock.release()
    summary.run_id = recorder.run_id
    if summary.failed:
        error = CheckFailed(f"{len(summary.failed)} stage(s) failed: {', '.join(summary.failed)}"
                          + (f"; skipped because of them: {', '.join(summary.skipped)}" if summary.skipped else ""),
                          hint="fix the command and run 'shipyard run' again; finished stages are not run twice")
        error.summary = summary  # type: ignore[attr-defined]
        raise error
    return summary


def _dry_run(ctx: Context, dag: Dag, options: RunOptions, summary: RunSummary) -> RunSummary:
    stale: set[str] = set()
    for name in dag.order:
        ups = [u for u in dag.upstream[name] if u in stale]
        status = ctx.check(dag.stages[name], ups)
        if options.force or (status.stale and status.state != "frozen"):
            stale.add(name)
            summary.would_run.append(name)
            why = "forced" if options.force and not status.stale else "; ".join(status.reasons)
            ctx.echo(f"would run stage {name!r}: {why}")
        else:
            summary.up_to_date.append(name)
    if not summary.would_run:
        ctx.echo("Everything is up to date; nothing would run.")
    return summary


def _run_loop(ctx: Context, dag: Dag, options: RunOptions, summary: RunSummary, recorder: Recorder,
              executor_spec: str) -> None:
    keep = set(ctx.dag.stages)
    state: dict[str, str] = {}  # name -> done | failed | skipped
    pending = list(dag.order)
    running: dict[Future, tuple[str, StageStatus, float, int]] = {}
    executor = None
    stop = False
    sink = _line_sink()
    try:
        while pending or running:
            progressed = False
            for name in list(pending):
                if len(running) >= max(1, options.jobs):
                    break
                if not all(u in state for u in dag.upstream[name]):
                    continue
                pending.remove(name)
                progressed = True
                status = _settle(ctx, dag, name, state, stop, options, summary, recorder)
                if status is None:
                    continue
                if executor is None:
                    from shipyard.pipeline.executors import open_executor

                    executor = open_executor(executor_spec, options.jobs)
                future = _submit(ctx, dag.stages[name], status, options, recorder, executor, sink)
                running[future] = (name, status, time.perf_counter(), time.time_ns())
            if not running:
                if not progressed and pending:
                    raise ShipyardError(f"internal scheduling error: stages {pending} can never start")
                continue
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for future in done:
                name, status, started, since_ns = running.pop(future)
                ok = _finish(ctx, dag.stages[name], status, future, recorder, keep, sink, since_ns)
                state[name] = "done" if ok else "failed"
                (summary.ran if ok else summary.failed).append(name)
                summary.note(name, "ran" if ok else "failed", time.perf_counter() - started,
                             "; ".join(status.reasons))
                if not ok and not options.keep_going:
                    stop = True
    except KeyboardInterrupt:
        if executor is not None:
            executor.cancel_all()
        raise
    finally:
        if executor is not None:
            executor.close()
    if not summary.ran and not summary.restored and not summary.failed and not summary.skipped:
        ctx.echo(f"Everything is up to date ({len(dag.order)} stage{'s' if len(dag.order) != 1 else ''}); nothing ran.")


def _settle(ctx: Context, dag: Dag, name: str, state: dict[str, str], stop: bool, options: RunOptions,
            summary: RunSummary, recorder: Recorder) -> StageStatus | None:
    """Settle a stage whose upstream is done without running it (skipped after a failure, up to
    date, or restored from the run cache) and return None; or return its status when it must run."""
    stage = dag.stages[name]
    bad = [u for u in dag.upstream[name] if state[u] in ("failed", "skipped")]
    if bad or stop:
        reason = f"upstream stage {bad[0]!r} failed" if bad else "an earlier stage failed (use --keep-going)"
        state[name] = "skipped"
        summary.skipped.append(name)
        summary.note(name, "skipped", reason=reason)
        ctx.echo(f"Skipping stage {name!r}: {reason}")
        recorder.skipped(name, "", reason)
        return None
    status = ctx.check(stage)
    if status.state == "frozen" or (not status.stale and not options.force):
        state[name] = "done"
        summary.up_to_date.append(name)
        summary.note(name, "up-to-date")
        ctx.echo(f"Stage {name!r} is up to date" + (" (frozen)" if status.state == "frozen" else ""))
        return None
    if not options.no_cache and not options.force and _cacheable(stage) and _restore(ctx, stage, status, recorder):
        state[name] = "done"
        summary.restored.append(name)
        summary.note(name, "restored", reason="restored from the run cache")
        return None
    return status


def _submit(ctx: Context, stage: StageSpec, status: StageStatus, options: RunOptions, recorder: Recorder,
            executor: Any, sink: Callable[[str, str, str], None]) -> Future:
    """Record the stage's start, clear its outs and hand it to the executor."""
    from shipyard.pipeline.executors.base import StageJob

    assert status.inputs is not None
    why = "forced" if options.force and not status.stale else "; ".join(status.reasons)
    ctx.echo(f"Running stage {stage.name!r}: {why}")
    child = recorder.start_stage(stage.name, status.inputs.fingerprint, status.inputs.params, restored=False,
                                 deps=status.deps)
    _remove_outs(ctx.root, stage)
    if stage.features is not None:
        failed = _retrieve_features(ctx, stage, recorder, child)
        if failed is not None:
            return failed
    job = StageJob(
        name=stage.name, cmds=stage.cmd, root=str(ctx.root), cwd=str(ctx.root / stage.wdir),
        env={**ctx.dvc_env(stage), **dict(stage.env), "SHIPYARD_RUN_ID": child, "SHIPYARD_STAGE": stage.name,
             "SHIPYARD_PROJECT_ROOT": str(ctx.root), "SHIPYARD_PIPELINE_RUN_ID": recorder.run_id or "",
             "SHIPYARD_HOME": str(ctx.state_dir)},
        outs=stage.out_paths, objects_url=ctx.objects_url,
        hash_dir=str(ctx.hashes.folder) if ctx.hashes.folder else None,
        environment=_environment_of(ctx, stage),
    )
    return executor.submit(job, sink if executor.streams_live else None)


def _environment_of(ctx: Context, stage: StageSpec) -> tuple[str, str] | None:
    """(python, pinned requirements) for the job: the worker builds or reuses the environment."""
    resolved = ctx.environment_of(stage)
    return None if resolved is None else (resolved.python, resolved.lock)


def _retrieve_features(ctx: Context, stage: StageSpec, recorder: Recorder, child: str) -> Future | None:
    """Retrieve the stage's features into its ``features.out`` and version them; on an error (rows
    lost, a bad entity table) a failed future, so the stage fails like one whose command failed."""
    from shipyard.features.stage import record_for_stage, retrieve_for_stage

    use = stage.features
    assert use is not None
    try:
        got = retrieve_for_stage(ctx.features, ctx.root, use.refs, use.entities, use.out)
        ctx.echo(f"Stage {stage.name!r}: {got.rows} rows of features {', '.join(use.refs)} -> {use.out}"
                 + "".join(f" ({n} without {f})" for f, n in got.nulls.items() if n))
        record_for_stage(recorder.store, ctx.objects, ctx.root, child, use.out, got.to_dict())
    except ShipyardError as exc:
        failed: Future = Future()
        failed.set_exception(exc)
        return failed
    return None


def _line_sink() -> Callable[[str, str, str], None]:
    def sink(stage: str, kind: str, line: str) -> None:
        stream = sys.stderr if kind == "err" else sys.stdout
        print(f"[{stage}] {line}", file=stream, flush=True)

    return sink


def _restore(ctx: Context, stage: StageSpec, status: StageStatus, recorder: Recorder) -> bool:
    assert status.inputs is not None
    fingerprint = status.inputs.fingerprint
    entry = runcache.lookup(ctx.objects, fingerprint)
    if entry is None:
        return False
    declared = set(stage.out_paths)
    outs = {o["path"]: o for o in entry.get("outs", [])}
    if set(outs) != declared:
        return False
    from shipyard.errors import NotFound, ObjectCorrupt

    try:
        for path, out in outs.items():
            target = ctx.root / path
            target.parent.mkdir(parents=True, exist_ok=True)
            ctx.objects.checkout(out["hash"], target)
    except (ObjectCorrupt, NotFound) as exc:
        ctx.echo(f"run cache entry for stage {stage.name!r} could not be restored ({exc.message}); running it")
        return False
    hashes = {p: PathHash(o["hash"], o.get("size") or 0, o.get("nfiles")) for p, o in outs.items()}
    flags = {o.path: (o.cache, o.persist) for o in stage.outs}
    entry_lock = lockmod.make_entry(status.inputs, status.deps, hashes, flags, stage.cmd)
    ctx.lock.update(stage.name, entry_lock, keep=set(ctx.dag.stages))
    # store.lite's, not store.pipeline's: a restore does not import SQLAlchemy
    from shipyard.store.lite import StageOutcome

    child = recorder.start_stage(stage.name, fingerprint, status.inputs.params, restored=True, deps=status.deps)
    if stage.features is not None and status.inputs.features is not None:
        from shipyard.features.stage import record_for_stage

        record_for_stage(recorder.store, ctx.objects, ctx.root, child, stage.features.out,
                         {**status.inputs.features, "restored": True})
    recorder.finish_stage(stage.name, StageOutcome("RESTORED", reason="restored from the run cache"), cache_hit=True,
                          metrics=_declared_metrics(ctx.root, stage, restored_only=True))
    ctx.echo(f"Stage {stage.name!r} restored from the run cache, not run: these exact inputs ({fingerprint[:20]}...) "
             f"were run before, on this or another machine or branch sharing the object store")
    return True


def _finish(ctx: Context, stage: StageSpec, status: StageStatus, future: Future, recorder: Recorder, keep: set[str],
            sink: Callable[[str, str, str], None], since_ns: int) -> bool:
    from shipyard.store.pipeline import StageOutcome

    try:
        result = future.result()
    except ShipyardError as exc:  # before the command ran (e.g. its features could not be retrieved)
        ctx.echo(f"Stage {stage.name!r} failed: {exc}")
        recorder.finish_stage(stage.name, StageOutcome("FAILED", reason=exc.message), cache_hit=False)
        return False
    except Exception as exc:  # the executor itself failed (e.g. a Dask worker died)
        ctx.echo(f"Stage {stage.name!r} failed in the executor: {type(exc).__name__}: {exc}")
        recorder.finish_stage(stage.name, StageOutcome("FAILED", reason=f"executor error: {exc}"), cache_hit=False)
        return False
    if result.log_text:
        for line in result.log_text.splitlines():
            kind, _, text = line.partition("| ")
            if kind in ("out", "err"):
                sink(stage.name, kind, text)
    if not result.ok:
        if result.error:
            why = result.error
        elif result.exit_code != 0:
            why = f"command exited with code {result.exit_code}"
        else:
            why = "the command succeeded but did not create " + ", ".join(result.missing_outs)
        ctx.echo(f"Stage {stage.name!r} failed: {why}")
        if result.stderr_tail:
            ctx.echo("  last lines of stderr:")
            for line in result.stderr_tail[-10:]:
                ctx.echo(f"    {line}")
        recorder.finish_stage(stage.name, StageOutcome(
            "FAILED", exit_code=result.exit_code, cpu_seconds=result.cpu_seconds,
            peak_memory_bytes=result.peak_memory_bytes, log_oid=result.log_oid, reason=why), cache_hit=False)
        return False
    assert status.inputs is not None
    outs = {o.path: PathHash(o.oid, o.size, o.nfiles) for o in result.outs}
    # Deps are hashed again: a stage that rewrote its own input must not be recorded as up to date.
    deps_now = ctx.hashes.hash_many(list(stage.deps))
    inputs = stage_inputs(stage, {p: (h.oid if h else None) for p, h in deps_now.items()}, ctx.pipeline.params, ctx.env,
                          status.inputs.features, status.inputs.environment)
    if _cacheable(stage):
        runcache.save(ctx.objects, inputs.fingerprint, stage.name, _outs_rows(stage, outs))
    flags = {o.path: (o.cache, o.persist) for o in stage.outs}
    ctx.lock.update(stage.name, lockmod.make_entry(inputs, deps_now, outs, flags, stage.cmd), keep=keep)
    recorder.finish_stage(stage.name, StageOutcome(
        "SUCCEEDED", exit_code=0, cpu_seconds=round(result.cpu_seconds, 3), peak_memory_bytes=result.peak_memory_bytes,
        log_oid=result.log_oid), cache_hit=False,
        metrics=_declared_metrics(ctx.root, stage, extra=_loose_metrics(ctx, since_ns)))
    ctx.echo(f"Stage {stage.name!r} done in {result.seconds:.2f}s (CPU {result.cpu_seconds:.2f}s, "
             f"peak memory {result.peak_memory_bytes / 2**20:.0f} MiB)")
    return True


def _loose_metrics(ctx: Context, since_ns: int) -> list[str]:
    """dvc.yaml's top-level metrics files that no stage declares as (inside) an out, written since
    ``since_ns``: the stage that just ran wrote them. dvclive adds its ``dvclive/metrics.json`` there
    by itself (``Live(dvcyaml="dvc.yaml")``, its default), so dvc.yaml is read again after the stage."""
    if ctx.pipeline.source != "dvc.yaml":
        return []
    from shipyard.pipeline.dvc import read_doc, top_level_metrics

    try:
        paths = top_level_metrics(read_doc(ctx.root))
    except ShipyardError:
        return []  # the stage broke dvc.yaml: the next run says where
    loose = []
    for path in paths:
        if any(path == out or path.startswith(out + "/") for out in ctx.dag.producers):
            continue
        try:
            if os.stat(ctx.root / path).st_mtime_ns >= since_ns:
                loose.append(path)
        except OSError:
            continue
    return loose


def _declared_metrics(root: Path, stage: StageSpec, restored_only: bool = False,
                      extra: Iterable[str] = ()) -> list[tuple[str, float, int]]:
    """Metric points (key, value, step) of a stage: the numeric values of its ``metrics:`` files, of
    dvc.yaml's top-level metrics files inside its outs, and of dvclive folders among its outs
    (``metrics.json`` plus the per-step history dvclive keeps in ``plots/metrics/*.tsv``), and the
    ``extra`` files (see ``_loose_metrics``). JSON or YAML, nested keys dotted.

    After a run-cache restore only cached files are current (``cache: false`` ones were not restored).
    """
    cached = {o.path: o.cache for o in stage.outs}
    files = [o.path for o in stage.outs if o.kind == "metrics" and (o.cache or not restored_only)]
    for kind, rel in stage.reports:  # dvc.yaml's top-level metrics inside this stage's outs
        owner = next((p for p in cached if rel == p or rel.startswith(p + "/")), None)
        if kind == "metrics" and (not restored_only or cached.get(owner or "", True)):
            files.append(rel)
    live = [o.path for o in stage.outs if o.kind == "outs" and (o.cache or not restored_only)
            and (root / o.path / "metrics.json").is_file() and (root / o.path / "plots").is_dir()]
    files += [f"{d}/metrics.json" for d in live if f"{d}/metrics.json" not in files]
    for rel in extra:
        files += [rel] if rel not in files else []
        folder = posixpath.dirname(rel)
        if posixpath.basename(rel) == "metrics.json" and folder and (root / folder / "plots").is_dir():
            live.append(folder)  # dvclive's own folder: its step history too
    values: dict[str, float] = {}
    for rel in files:
        values.update(_numbers(root / rel))
    points: list[tuple[str, float, int]] = []
    for folder in live:
        points += _dvclive_history(root / folder / "plots" / "metrics")
    stepped = {key for key, _v, _s in points}
    points += [(k, v, 0) for k, v in values.items() if k not in stepped and math.isfinite(v)]
    return points


def _numbers(path: Path) -> dict[str, float]:
    import json

    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        doc = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError):
        return {}  # a missing or unreadable metrics file is reported by the report, not here
    return numeric_leaves(doc) if isinstance(doc, dict) else {}


def _dvclive_history(folder: Path) -> list[tuple[str, float, int]]:
    """dvclive's ``Live.log_metric`` history: one TSV per metric (``timestamp, step, <name>``), the
    metric's key being its path below ``plots/metrics`` with dots (``train/loss.tsv`` -> train.loss)."""
    import csv

    points: list[tuple[str, float, int]] = []
    for file in sorted(folder.rglob("*.tsv")) if folder.is_dir() else []:
        key = file.relative_to(folder).with_suffix("").as_posix().replace("/", ".")
        try:
            rows = list(csv.DictReader(file.read_text(encoding="utf-8").splitlines(), delimiter="\t"))
        except (OSError, csv.Error):
            continue
        for row in rows:
            try:
                value, step = float(row[file.stem]), int(float(row.get("step") or 0))
            except (KeyError, TypeError, ValueError):
                continue
            if math.isfinite(value):
                points.append((key, value, step))
    return points


def explain(ctx: Context, name: str) -> dict[str, Any]:
    """Which inputs of a stage changed since its last recorded run: old and new hash or value."""
    stage = ctx.dag.require(name)
    status = ctx.check(stage)
    entry = ctx.lock.get(name)
    changes = []
    if entry is not None and status.inputs is not None:
        changes = [c.__dict__ for c in diff(lockmod.document_of(entry), status.inputs.document())]
    return {
        "stage": name, "state": status.state, "reasons": status.reasons, "changes": changes,
        "recorded_fingerprint": entry.get("fingerprint") if entry else None,
        "current_fingerprint": status.inputs.fingerprint if status.inputs else None,
    }


def run_pipeline(ws: Any, options: RunOptions | None = None) -> RunSummary:
    """Run a workspace's pipeline and return the summary even when a stage failed (for ``shipyard ci``)."""
    ctx = Context(ws.project.root, ws.project.state_dir)
    try:
        return run(ctx, options or RunOptions())
    except CheckFailed as exc:
        summary = getattr(exc, "summary", None)
        if summary is None:
            raise
        return summary
