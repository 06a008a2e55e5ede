"""The sweep loop: ask Optuna for params, run each trial as a pipeline run, tell it the metric.

A sweep is a tracked run (``source=sweep``) whose tags hold its definition, so ``status``, ``stop``
and ``resume`` find it by name; its trials are child pipeline runs. The Optuna study (same name)
holds the trials' params, values and intermediate values. A sweep killed with -9 leaves trials
RUNNING in the study: ``resume`` marks them failed and enqueues their params again, then goes on
until the requested number of trials is reached. ``stop`` asks a running sweep to start no new
trial; the trials already running finish.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from shipyard.errors import CheckFailed, NotFound, UsageError
from shipyard.processes import alive
from shipyard.sweep import trials as trialmod
from shipyard.sweep.space import Dimension, grid, parse_space

SOURCE = "sweep"
TAG = "shipyard.sweep."


@dataclass
class SweepSpec:
    """What to sweep: a stage, a metric to optimise, the space, and how many trials at once."""

    name: str
    stage: str
    metric: str
    direction: str
    space: tuple[str, ...]
    trials: int
    jobs: int = 1
    sampler: str = "tpe"
    seed: int | None = None
    executor: str | None = None

    @cached_property
    def dims(self) -> tuple[Dimension, ...]:
        """The parsed space (parsed once; the space never changes, even on resume)."""
        return parse_space(self.space)

    def check(self) -> None:
        if self.direction not in ("maximize", "minimize"):
            raise UsageError(f"--direction {self.direction!r}: expected maximize or minimize")
        if self.trials < 1 or self.jobs < 1:
            raise UsageError("--trials and --jobs must be at least 1")


@dataclass
class SweepReport:
    """Where a sweep stands: trials by state, the best trial and its params."""

    name: str
    run_id: str
    spec: dict[str, Any]
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    running: int = 0
    best_value: float | None = None
    best_trial: int | None = None
    best_params: dict[str, Any] = field(default_factory=dict)
    state: str = "FINISHED"
    stop_reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Sweep:
    """One sweep of a project (its store, state folder and pipeline), run or resumed."""

    def __init__(self, root: Path, state_dir: Path, store: Any, objects: str, echo: Callable[[str], None]) -> None:
        self.root, self.state_dir, self.store, self.objects, self.echo = root, state_dir, store, objects, echo
        self._lock = threading.Lock()

    @cached_property
    def _pipeline(self) -> Any:
        """The project's pipeline, read once for every trial (the trials copy it; they never change it)."""
        return _pipeline(self.root, self.state_dir)

    @cached_property
    def _budgeted_config(self) -> Any:
        """shipyard.yaml when it sets a budget (read once per sweep), else None."""
        from shipyard.project import CONFIG_NAME, config_section

        path = self.root / CONFIG_NAME
        if config_section(path, "budget", unreadable=True) is None:
            return None
        from shipyard.config import load_config

        return load_config(path)

    # -- the sweep's run --------------------------------------------------------------------------

    def create(self, spec: SweepSpec) -> str:
        """Record a new sweep (refusing a name in use) and return its run id."""
        from shipyard.store import runs

        if self.find(spec.name, missing_ok=True) is not None:
            raise UsageError(f"a sweep named {spec.name!r} exists", hint=f"shipyard sweep resume {spec.name}, or --name")
        with self.store.write() as session:
            experiment = runs.experiment_by_name(session, runs.DEFAULT_EXPERIMENT)
            run = runs.create_run(session, experiment_id=experiment.id, name=f"sweep {spec.name}", source=SOURCE,
                                  tags={TAG + "name": spec.name, TAG + "spec": json.dumps(asdict(spec)),
                                        TAG + "pid": str(os.getpid())})
            runs.log_params(session, run.id, {dim.name: dim.describe().partition("=")[2] for dim in spec.dims})
            return run.id

    def find(self, name: str, *, missing_ok: bool = False) -> tuple[str, SweepSpec, dict[str, str]] | None:
        """The sweep ``name``: its run id, spec and tags."""
        from sqlalchemy import select

        from shipyard.store.runs import Run, Tag

        with self.store.read() as session:
            run_id = session.scalars(select(Run.id).join(Tag, Tag.run_id == Run.id).where(
                Run.source == SOURCE, Tag.key == TAG + "name", Tag.value == name)).first()
            if run_id is None:
                if missing_ok:
                    return None
                raise NotFound(f"no sweep named {name!r}", hint="shipyard sweep status lists the sweeps")
            tags = dict(session.execute(select(Tag.key, Tag.value).where(Tag.run_id == run_id)).all())
        return run_id, SweepSpec(**json.loads(tags[TAG + "spec"])), tags

    def names(self) -> list[str]:
        from sqlalchemy import select

        from shipyard.store.runs import Run, Tag

        with self.store.read() as session:
            return list(session.scalars(select(Tag.value).join(Run, Run.id == Tag.run_id).where(
                Run.source == SOURCE, Tag.key == TAG + "name").order_by(Run.start_time)))

    def request_stop(self, name: str) -> str:
        """Ask the running sweep ``name`` to start no new trial; returns the sweep run's status
        (a sweep that is no longer RUNNING is left as it is)."""
        from shipyard.store import runs

        run_id, _, _ = self.find(name)  # type: ignore[misc]
        with self.store.write() as session:
            status = runs.get_run(session, run_id).status
            if status == "RUNNING":
                runs.set_tags(session, run_id, {TAG + "stop": "requested by shipyard sweep stop"})
        return status

    def _over_budget(self) -> str:
        """Why a new trial would exceed the project's daily or monthly budget ("" when it would not)."""
        if self._budgeted_config is None:
            return ""
        from shipyard.tracking.budget import guard

        why = guard(self.store, self._budgeted_config)
        return f"over budget: {why}" if why else ""

    def _stop_requested(self, run_id: str) -> str:
        from sqlalchemy import select

        from shipyard.store.runs import Tag

        with self.store.read() as session:
            return session.scalar(select(Tag.value).where(Tag.run_id == run_id, Tag.key == TAG + "stop")) or ""

    # -- running ----------------------------------------------------------------------------------

    def study(self, spec: SweepSpec, *, create: bool = True) -> Any:
        from shipyard.sweep.study import open_study

        return open_study(self.store, self.state_dir, spec.name, direction=spec.direction, sampler=spec.sampler,
                          seed=spec.seed, grid_axes=grid(spec.dims), create=create)

    def run(self, spec: SweepSpec, *, resume: bool = False) -> SweepReport:
        """Run (or resume) the sweep until ``spec.trials`` trials are done or it is stopped."""
        found = self.find(spec.name) if resume else None
        run_id = found[0] if found else self.create(spec)
        if resume:
            self._clear_stop(run_id)
        study = self.study(spec)
        requeued = self._requeue_stale(study)  # their failed trials do not count: they run again
        todo = spec.trials - len([t for t in study.trials if t.state.is_finished()]) + requeued
        started = time.monotonic()
        state = _Progress(spec, todo, started)
        with ThreadPoolExecutor(max_workers=spec.jobs) as pool:
            futures = [pool.submit(self._worker, spec, study, run_id, state) for _ in range(spec.jobs)]
            for future in futures:
                future.result()
        report = self.report(spec.name)
        self._finish(run_id, report, state)
        if state.error is not None:
            raise state.error
        return self.report(spec.name)

    def _worker(self, spec: SweepSpec, study: Any, run_id: str, state: _Progress) -> None:
        while True:
            with self._lock:
                if state.error is not None or state.started >= state.todo:
                    return
                stop = self._stop_requested(run_id) or self._over_budget()
                if stop:
                    state.stop_reason = stop
                    return
                state.started += 1
                trial = study.ask()
                overrides = {dim.name: dim.suggest(trial) for dim in spec.dims}
            self._one(spec, study, run_id, trial, overrides, state)

    def _one(self, spec: SweepSpec, study: Any, run_id: str, trial: Any, overrides: dict[str, Any],
             state: _Progress) -> None:
        import optuna

        folder = self.state_dir / "sweeps" / spec.name / f"trial-{trial.number}"
        loaded = self._pipeline
        skip = [out for stage in loaded.dag.stages.values() for out in stage.out_paths]
        trialmod.prepare_folder(self.root, folder, skip, overrides, loaded.params.get("params.yaml", {}))
        env = trialmod.trial_env(self.store.url, self.objects, folder / ".shipyard", run_id, trial.number)
        reported: set[int] = set()

        def should_prune() -> bool:
            for value, step in self._intermediate(run_id, trial.number, spec, reported):
                trial.report(value, step)
                reported.add(step)
            return bool(reported) and trial.should_prune()

        result = trialmod.run_trial(trial.number, folder, spec.stage, env, spec.executor, should_prune)
        if result.state == "pruned":
            self._close_pruned(run_id, trial.number)
        if result.state == "complete":
            result.value = self._final_value(result.pipeline_run_id, spec.metric)
            if result.value is None:
                result.state, result.message = "failed", f"the pipeline never logged the metric {spec.metric!r}"
                state.fail_fast(CheckFailed(f"trial {trial.number}: stage {spec.stage!r} (or a stage before it) never "
                                            f"logged the metric {spec.metric!r}; the sweep stops",
                                            hint="log it with shipyard.log_metric or list its file under metrics:"))
        with self._lock:
            if result.state == "complete":
                study.tell(trial, result.value)
            elif result.state == "pruned":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            state.done(result, overrides, study, self.echo)
        shutil.rmtree(folder, ignore_errors=True)

    def _intermediate(self, run_id: str, number: int, spec: SweepSpec, seen: set[int]) -> list[tuple[float, int]]:
        from shipyard.store.runs import metric_history

        with self.store.read() as session:
            stage_run = trialmod.stage_run_of(session, run_id, number, spec.stage)
            if stage_run is None:
                return []
            points = metric_history(session, stage_run, spec.metric)
        return [(value, step) for value, step, _ in points if step not in seen and not math.isnan(value)]

    def _final_value(self, pipeline_run_id: str | None, metric: str) -> float | None:
        from sqlalchemy import select

        from shipyard.store.runs import Run, merged_latest_metrics

        if pipeline_run_id is None:
            return None
        with self.store.read() as session:
            children = list(session.scalars(select(Run.id).where(Run.parent_run_id == pipeline_run_id)
                                            .order_by(Run.start_time.desc())))
            # a stage restored from the run cache logged nothing itself: the run that made those
            # outputs (same fingerprint) did
            producers = _producers(session, children)
            values = merged_latest_metrics(session, [pipeline_run_id, *children, *producers])
        value = values.get(metric)
        return None if value is None or math.isnan(value) else float(value)

    def _close_pruned(self, run_id: str, number: int) -> None:
        """A pruned trial was interrupted: its runs still open are KILLED, as after Ctrl-C."""
        from sqlalchemy import select, update

        from shipyard.store.runs import Run, Tag, now_ms

        with self.store.write() as session:
            pipelines = list(session.scalars(select(Run.id).join(Tag, Tag.run_id == Run.id).where(
                Run.parent_run_id == run_id, Tag.key == "shipyard.sweep.trial", Tag.value == str(number))))
            session.execute(update(Run).where((Run.id.in_(pipelines)) | (Run.parent_run_id.in_(pipelines)),
                                              Run.status == "RUNNING").values(status="KILLED", end_time=now_ms()))

    def _requeue_stale(self, study: Any) -> int:
        """Trials left RUNNING by a killed sweep: failed, and their params asked again (how many)."""
        import optuna

        stale = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
        for trial in stale:
            study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(trial.params, skip_if_exists=False)
            self.echo(f"trial {trial.number} was cut short by a killed sweep: its params run again")
        return len(stale)

    def _clear_stop(self, run_id: str) -> None:
        from shipyard.store import runs

        if self._stop_requested(run_id):
            with self.store.write() as session:
                runs.delete_tag(session, run_id, TAG + "stop")
        with self.store.write() as session:
            runs.set_tags(session, run_id, {TAG + "pid": str(os.getpid())})
            runs.update_run(session, run_id, status="RUNNING")

    def _finish(self, run_id: str, report: SweepReport, state: _Progress) -> None:
        from shipyard.store import runs

        if state.stop_reason and not report.stop_reason:  # stopped by itself (a budget): say why, once
            self.echo(f"sweep {report.name}: no new trial: {state.stop_reason}")
        with self.store.write() as session:
            if state.stop_reason:
                runs.set_tags(session, run_id, {TAG + "stop": state.stop_reason})
            if report.best_value is not None:
                runs.set_tags(session, run_id, {TAG + "best_trial": str(report.best_trial),
                                                TAG + "best_params": json.dumps(report.best_params)})
            runs.finish_run(session, run_id, "FAILED" if state.error is not None else "FINISHED")

    def report(self, name: str) -> SweepReport:
        """Trials by state and the best trial so far."""
        import optuna

        run_id, spec, tags = self.find(name)  # type: ignore[misc]
        report = SweepReport(name, run_id, asdict(spec), stop_reason=tags.get(TAG + "stop", ""))
        study = self.study(spec)
        states = optuna.trial.TrialState
        for trial in study.get_trials(deepcopy=False):
            report.complete += trial.state == states.COMPLETE
            report.pruned += trial.state == states.PRUNED
            report.failed += trial.state == states.FAIL
            report.running += trial.state == states.RUNNING
        if report.complete:
            best = study.best_trial
            report.best_value, report.best_trial, report.best_params = best.value, best.number, dict(best.params)
        report.state = "RUNNING" if report.running and alive(tags.get(TAG + "pid")) else (
            "FINISHED" if report.complete + report.pruned >= spec.trials else "STOPPED")
        return report


def _producers(session: Any, stage_runs: list[str]) -> list[str]:
    """For each restored stage run, the newest run that ran with the same fingerprint."""
    from sqlalchemy import and_, select
    from sqlalchemy.orm import aliased

    from shipyard.store.runs import Run, Tag

    restored, fingerprint = aliased(Tag), aliased(Tag)
    wanted = list(session.scalars(select(fingerprint.value).join(restored, and_(
        restored.run_id == fingerprint.run_id, restored.key == "shipyard.restored", restored.value == "true")).where(
        fingerprint.run_id.in_(stage_runs), fingerprint.key == "shipyard.fingerprint")))
    if not wanted:
        return []
    ran, same = aliased(Tag), aliased(Tag)
    return list(session.scalars(select(same.run_id).join(ran, and_(
        ran.run_id == same.run_id, ran.key == "shipyard.restored", ran.value == "false")).join(
        Run, Run.id == same.run_id).where(same.key == "shipyard.fingerprint", same.value.in_(wanted))
        .order_by(Run.start_time.desc())))


def _pipeline(root: Path, state_dir: Path) -> Any:
    from shipyard.pipeline.loader import load_pipeline

    return load_pipeline(root, state_dir)


class _Progress:
    """Counts, the best value so far and an ETA, printed one line per finished trial."""

    def __init__(self, spec: SweepSpec, todo: int, started: float) -> None:
        self.spec, self.todo, self.t0 = spec, max(todo, 0), started
        self.started = 0
        self.finished = 0
        self.error: Exception | None = None
        self.stop_reason = ""

    def fail_fast(self, error: Exception) -> None:
        if self.error is None:
            self.error = error

    def done(self, result: trialmod.TrialResult, overrides: dict[str, Any], study: Any,
             echo: Callable[[str], None]) -> None:
        self.finished += 1
        shown = ", ".join(f"{k}={_short(v)}" for k, v in overrides.items())
        what = f"{self.spec.metric}={result.value:.6g}" if result.value is not None else result.state
        if result.state == "failed" and result.message:
            what = result.message
        best = ""
        if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            best = f"; best {study.best_value:.6g} (trial {study.best_trial.number})"
        left = self.todo - self.finished
        eta = (time.monotonic() - self.t0) / self.finished * left if left > 0 else 0.0
        ran = f"; ran {','.join(result.ran)}" if result.ran else ""
        echo(f"trial {result.number} {result.state}: {what} with {shown}{ran}{best}; "
             f"{self.finished}/{self.todo} done, ETA {eta:.0f}s")


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def check_stage(root: Path, state_dir: Path, stage: str, dims: Sequence[Dimension]) -> None:
    """The stage exists and reads every swept param (itself or a stage before it)."""
    from shipyard.sweep.space import check_against_stage

    loaded = _pipeline(root, state_dir)
    if stage not in loaded.dag.stages:
        raise UsageError(f"no stage {stage!r} in the pipeline", hint="stages: " + ", ".join(loaded.dag.order))
    chosen = loaded.dag.select([stage])
    read = [(p.file, p.key) for name in chosen.order for p in chosen.stages[name].params]
    check_against_stage(dims, stage, read, loaded.params.get("params.yaml", {}))
