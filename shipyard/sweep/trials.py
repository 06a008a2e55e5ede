"""One trial of a sweep: a pipeline run with overridden params, in a scratch copy of the project.

Each trial runs ``shipyard run STAGE`` in its own folder (a hard-linked copy of the project without
its outs and state), against the project's own store and object store, so:

- upstream stages whose inputs the trial did not change are restored from the run cache, and a
  trial with the params of an earlier one restores everything: identical trials never run twice;
- trials run side by side (each has its own run lock and stat cache);
- each trial's pipeline run is a child run of the sweep's run (``SHIPYARD_SWEEP_RUN_ID``) tagged
  with its number, and the stage logs its metrics as always (``shipyard.log_metric(..., step=)``).

While a trial runs, ``watch`` reads the stage's intermediate metric from the store so the sweep can
prune it (the process group is terminated).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shipyard.dotted import set_dotted
from shipyard.monitoring.retrain import shipyard_command
from shipyard.pipeline.runner import SWEEP_RUN_ENV, SWEEP_TRIAL_ENV

POLL_SECONDS = 0.5


@dataclass
class TrialResult:
    """What one trial gave: its pipeline run, the metric's value (None: not logged), and how it ended."""

    number: int
    state: str  # complete | pruned | failed
    value: float | None = None
    pipeline_run_id: str | None = None
    ran: tuple[str, ...] = ()
    restored: tuple[str, ...] = ()
    message: str = ""


def prepare_folder(root: Path, folder: Path, skip: Iterable[str], overrides: Mapping[str, Any],
                   params: Mapping[str, Any]) -> None:
    """A copy of the project in ``folder`` (hard links where possible) with params.yaml overridden."""
    skipped = {(root / path).resolve() for path in skip}
    if folder.exists():
        shutil.rmtree(folder)
    for here, dirs, files in os.walk(root):
        base = Path(here)
        dirs[:] = [d for d in dirs if not d.startswith((".shipyard", ".git", ".dvc")) and (base / d).resolve() not in skipped]
        target = folder / base.relative_to(root)
        target.mkdir(parents=True, exist_ok=True)
        for name in files:
            source = base / name
            if source.resolve() in skipped or (name == "params.yaml" and base == root):
                continue
            try:
                os.link(source, target / name)
            except OSError:
                shutil.copy2(source, target / name)
    (folder / "params.yaml").write_text(yaml.safe_dump(with_overrides(params, overrides), sort_keys=False))


def with_overrides(params: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` with each dotted ``overrides`` key set (a deep copy; the original is untouched)."""
    result: dict[str, Any] = json.loads(json.dumps(params, default=str))
    for dotted, value in overrides.items():
        set_dotted(result, dotted, value)
    return result


def run_trial(number: int, folder: Path, stage: str, env: Mapping[str, str], executor: str | None,
              should_prune: Callable[[], bool], on_exit: Callable[[subprocess.Popen[str]], None] | None = None
              ) -> TrialResult:
    """Run the trial's pipeline up to ``stage``; poll ``should_prune`` while it runs."""
    command = [*shipyard_command(), "run", stage, "--json", "--no-register", "--jobs", "1"]
    if executor:
        command += ["--executor", executor]
    log = (folder.parent / f"trial-{number}.log").open("w")
    process = subprocess.Popen(command, cwd=folder, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=log,
                               text=True, start_new_session=True)
    pruned = False
    while process.poll() is None:
        try:
            process.wait(timeout=POLL_SECONDS)
        except subprocess.TimeoutExpired:
            if should_prune():
                pruned = True
                _interrupt(process)
    out = process.stdout.read() if process.stdout else ""
    log.close()
    if on_exit is not None:
        on_exit(process)
    if pruned:
        return TrialResult(number, "pruned", message="pruned by its intermediate values")
    try:
        summary = json.loads(out) if out.strip() else {}
    except json.JSONDecodeError:
        summary = {}
    result = TrialResult(number, "complete" if process.returncode == 0 else "failed",
                         pipeline_run_id=summary.get("run_id"), ran=tuple(summary.get("ran", ())),
                         restored=tuple(summary.get("restored", ())))
    if process.returncode != 0:
        tail = (folder.parent / f"trial-{number}.log").read_text().strip().splitlines()[-3:]
        result.message = " / ".join(tail) or f"shipyard run exited with {process.returncode}"
    return result


def _interrupt(process: subprocess.Popen[str]) -> None:
    """Stop a pruned trial as Ctrl-C would (the runner records its runs KILLED); kill it if it lingers."""
    os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def trial_env(store_url: str, objects: str, home: Path, sweep_run_id: str, number: int) -> dict[str, str]:
    """The environment a trial's ``shipyard run`` needs: the project's store and objects, its own state."""
    return {"SHIPYARD_STORE": store_url, "SHIPYARD_OBJECTS": objects, "SHIPYARD_HOME": str(home),
            SWEEP_RUN_ENV: sweep_run_id, SWEEP_TRIAL_ENV: str(number), "CI": os.environ.get("CI", "true")}


def stage_run_of(session: Any, sweep_run_id: str, number: int, stage: str) -> str | None:
    """The tracking run of ``stage`` in trial ``number`` of the sweep (None until it starts)."""
    from sqlalchemy import select

    from shipyard.store.runs import Run, Tag

    pipeline = select(Run.id).join(Tag, Tag.run_id == Run.id).where(
        Run.parent_run_id == sweep_run_id, Tag.key == "shipyard.sweep.trial", Tag.value == str(number))
    found = session.scalars(select(Run.id).where(Run.parent_run_id.in_(pipeline), Run.name == stage)
                            .order_by(Run.start_time.desc()).limit(1)).first()
    return found
