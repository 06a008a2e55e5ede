"""``shipyard ci``: one command for a CI job, composed from the services.

Steps, in order, for the current commit:
  1. validate  the data files that have a schema (shipyard.data.validate);
  2. run       the pipeline, restoring unchanged stages from the (shared) run cache (shipyard.pipeline);
  3. register  the model (a new version only for new content) tagged with branch, commit, PR (shipyard.registry);
  4. gate      it against the thresholds and the champion (shipyard.gates);
  5. report    Markdown + HTML + JSON + PNG plots in the report folder (shipyard.ci.report).
A failed step stops the steps that need it, the report is written all the same and says what failed.
The result's exit code is 0 when everything passed, 1 when a check or gate failed; usage errors
(no git repository, bad options) raise before anything runs.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shipyard.ci import collect, git
from shipyard.ci.env import CIEnv, detect
from shipyard.ci.report import CostRow, GateRow, PlotRef, Report, StageRow, ValidationRow
from shipyard.ci.report import write as write_report
from shipyard.errors import EXIT_CHECK_FAILED, EXIT_OK, ConfigError, ShipyardError, UsageError
from shipyard.lazy_imports import load
from shipyard.workspace import Workspace

STEPS = ("validate", "run", "register", "gate", "report")
CANDIDATE_FILE = "candidate"
PLOTS_DIR = "plots"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".svg", ".gif"}


class MissingService(ShipyardError):
    """A service ``shipyard ci`` composes is not installed in this build (exit 3)."""

    exit_code = 3


@dataclass
class CIOptions:
    report_dir: Path = Path("shipyard-report")
    base: str | None = None
    steps: tuple[str, ...] = STEPS
    plots: bool = True
    trust: bool = False


@dataclass
class CIOutcome:
    report: Report
    files: dict[str, Path] = field(default_factory=dict)
    candidate: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return EXIT_OK if self.report.ok else EXIT_CHECK_FAILED

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.report.ok, "exit_code": self.exit_code, "candidate": self.candidate,
                "files": {k: str(v) for k, v in self.files.items()}, "timings": self.timings,
                "report": self.report.to_dict()}


def _service(module: str, attr: str, what: str) -> Any:
    """A function from another service, or a clear error naming what is missing."""
    try:
        return load(f"{module}:{attr}")
    except (ImportError, AttributeError) as exc:
        raise MissingService(
            f"shipyard ci needs {module}.{attr} ({what}), which this installation does not have: {exc}",
            hint="upgrade shipyard; run the other steps alone with --step (e.g. --step validate --step report)",
        ) from exc


def _load_config(ws: Workspace) -> Any:
    from shipyard.config import load_config

    root = ws.project.root
    dvc = (root / "dvc.yaml").is_file()
    if not ws.project.config_path.is_file():
        if dvc:  # a DVC project as it is: stages, metrics, plots and model from dvc.yaml
            from shipyard.pipeline.dvc import dvc_config

            return dvc_config(root)
        raise ConfigError(f"{ws.project.config_path} not found", hint="run 'shipyard init' first")
    config = load_config(ws.project.config_path)
    if dvc and not config.pipeline.stages:  # shipyard.yaml adds model/gates to a dvc.yaml pipeline
        from shipyard.pipeline.dvc import dvc_config

        return dvc_config(root, config)
    return config


# -- steps ------------------------------------------------------------------------------------

def validation_targets(root: Path, config: Any) -> list[tuple[str, str]]:
    """(data file, schema file) pairs: ``data.validate`` entries, else data deps with a schema.yaml beside them."""
    configured = (config.data or {}).get("validate") if isinstance(config.data, dict) else None
    pairs: list[tuple[str, str]] = []
    if isinstance(configured, dict):
        pairs = [(str(k), str(v)) for k, v in configured.items()]
    elif isinstance(configured, list):
        for i, item in enumerate(configured):
            if not isinstance(item, dict) or "path" not in item or "schema" not in item:
                raise ConfigError(f"shipyard.yaml: data.validate[{i}]: expected {{path: FILE, schema: SCHEMA}}")
            pairs.append((str(item["path"]), str(item["schema"])))
    if pairs:
        return pairs
    in_pipeline = " ".join(" ".join(s.cmd) if isinstance(s.cmd, list) else (s.cmd or "")
                           for s in config.pipeline.stages.values())
    for rel in collect.data_paths(config, root):
        if f"data validate {rel}" in in_pipeline:  # a stage validates it already: not twice
            continue
        schema = Path(rel).parent / "schema.yaml"
        if Path(rel).suffix in collect.TABLE_SUFFIXES and (root / schema).is_file() and (root / rel).is_file():
            pairs.append((rel, schema.as_posix()))
    return pairs


def step_validate(ws: Workspace, config: Any) -> list[ValidationRow]:
    validate_path = _service("shipyard.data.validate", "validate_path", "data validation")
    rows = []
    for rel, schema in validation_targets(ws.project.root, config):
        path = ws.project.inside(rel, "data.validate path")
        report = validate_path(path, ws.project.inside(schema, "data.validate schema"))
        failures = [f"{c.message}" + (f" ({c.failed} of {c.total} rows)" if c.failed else "")
                    for c in report.failures]
        rows.append(ValidationRow(rel, report.passed, failures))
    return rows


STAGE_STATUS = {"ran": "ran", "restored": "cached", "up-to-date": "up-to-date", "failed": "failed",
                "skipped": "skipped"}


def step_run(ws: Workspace, env: CIEnv, config: Any) -> tuple[list[StageRow], str | None]:
    """Run the pipeline; returns the stage rows and the pipeline run id.

    The pipeline run is then given what a CI comparison needs when the stages did not log it
    themselves: the git commit and branch, and the values of the declared metrics files.
    """
    run_pipeline = _service("shipyard.pipeline.runner", "run_pipeline", "the pipeline engine")
    with contextlib.redirect_stdout(sys.stderr):  # stage logs go to stderr; stdout carries the result
        summary = run_pipeline(ws)
    stages = [StageRow(s.name, STAGE_STATUS.get(s.status, s.status), s.seconds, s.reason or "")
              for s in summary.stages]
    if summary.run_id and not summary.failed:
        _annotate_run(ws, config, env, summary.run_id)
    return stages, summary.run_id


def _annotate_run(ws: Workspace, config: Any, env: CIEnv, run_id: str) -> None:
    from shipyard.store import runs

    metrics = collect.read_metric_files(ws.project.root, collect.metric_files(config)) or {}
    with ws.store.write() as session:
        run = runs.get_run(session, run_id)
        if run.git_commit is None:
            run.git_commit = env.commit or git.head_commit(ws.project.root)
            run.git_branch = run.git_branch or env.branch
        logged = collect.run_metrics(session, run_id)
        missing = [runs.MetricValue(k, v) for k, v in metrics.items() if k not in logged]
        runs.log_metrics(session, run_id, missing)


def step_register(ws: Workspace, config: Any, env: CIEnv, run_id: str | None, trust: bool = False) -> str:
    """Register the candidate; ``trust`` (``shipyard ci --trust``) lets a pickle model be packaged."""
    register_from_project = _service("shipyard.registry.project", "register_from_project", "the model registry")
    model = config.model
    if model is None:
        raise ConfigError("shipyard.yaml has no model section, so there is no candidate to register",
                          hint="add model: {name: ..., path: ...} or run with --step validate --step run --step report")
    model_hash = _model_hash(ws, model.path)
    tags = {"ci.provider": env.provider, "ci.model_hash": model_hash}
    for key, value in (("git.branch", env.branch), ("git.commit", env.commit), ("ci.pr", env.pr_number),
                       ("ci.base", env.base_ref), ("ci.build_url", env.build_url)):
        if value is not None:
            tags[key] = str(value)
    # One version per model content (the registry's rule): a rerun of the same job, or a change that
    # leaves the model file as it was, gets the version that already holds it, with these CI tags added.
    result = register_from_project(ws.store, ws.objects, ws.project.root, model.name, model.path,
                                   model_cfg=model, run_id=run_id, tags=tags, trust=trust,
                                   description=f"CI candidate from {env.branch or 'HEAD'}")
    return result.version.ref


def _model_hash(ws: Workspace, rel: str) -> str:
    from shipyard.hashing import Hasher, hash_file

    path = ws.project.inside(rel, "model.path")
    if path.is_dir():
        return Hasher(ws.project.root).manifest(ws.project.relative(rel)).oid
    if not path.is_file():
        raise ConfigError(f"model.path {rel} does not exist after the pipeline ran",
                          hint="check that a stage writes it (its outs) and that model.path names it")
    return hash_file(path)


def step_gate(ws: Workspace, config: Any, candidate: str, trust: bool) -> tuple[bool, list[GateRow], list[str]]:
    run_gate = _service("shipyard.gates.runner", "run_gate", "the gates")
    outcome = run_gate(ws.store, ws.objects, candidate, config, ws.project.root, trust=trust)
    verdict = outcome.verdict
    rows = [GateRow(c.name, None if c.passed is None else bool(c.passed), c.value, c.threshold, c.reason)
            for c in verdict.checks]
    return bool(verdict.passed), rows, list(getattr(verdict, "notes", ()))


# -- the whole job ----------------------------------------------------------------------------

def run_ci(ws: Workspace, environ: Mapping[str, str], options: CIOptions) -> CIOutcome:
    """Everything ``shipyard ci`` does; raises only for usage errors (before anything runs)."""
    unknown = [s for s in options.steps if s not in STEPS]
    if unknown:
        raise UsageError(f"unknown step {unknown[0]!r}; steps are {', '.join(STEPS)}")
    root = ws.project.root
    git.require_repo(root)
    env = detect(environ, root)
    config = _load_config(ws)
    base = git.resolve_base(root, options.base or env.base_ref)
    report = Report(project=root.name, commit=env.commit or git.head_commit(root), branch=env.branch,
                    base_ref=base.ref, base_commit=base.commit, pr_number=env.pr_number, provider=env.provider,
                    build_url=env.build_url)
    if git.is_dirty(root):
        report.notes.append(f"the working tree has uncommitted changes: this report describes them, "
                            f"not commit {(report.commit or '?')[:7]} alone")
    if base.reason:
        report.notes.append(f"no comparison with the base branch: {base.reason}")
    elif base.commit and base.commit == report.commit:
        parent = git.rev_exists(root, f"{base.commit}^")
        report.base_ref = f"{base.ref}~1"
        report.base_commit = parent
        if parent is None:
            report.notes.append(f"this is the first commit of {base.ref}: nothing to compare with")
    outcome = CIOutcome(report)
    run_id: str | None = None
    blocked = False

    def step(name: str, label: str, fn: Any) -> tuple[bool, Any]:
        """Run one step, timing it; a Shipyard error is recorded in the report (a missing service is raised)."""
        started = time.perf_counter()
        try:
            return True, fn()
        except MissingService:
            raise  # a piece of Shipyard is missing: say so, never report it as a failed check
        except ShipyardError as exc:
            report.errors.append(f"{label}: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            return False, None
        finally:
            outcome.timings[name] = round(time.perf_counter() - started, 3)

    if "validate" in options.steps:
        ok, rows = step("validate", "data validation could not run", lambda: step_validate(ws, config))
        report.validation = rows or []
        blocked = not ok
        if any(not v.passed for v in report.validation):
            blocked = True
            report.notes.append("data validation failed, so the pipeline, registration and gates were skipped")
    if "run" in options.steps and not blocked:
        ok, value = step("run", "pipeline", lambda: step_run(ws, env, config))
        if ok:
            report.stages, run_id = value
        blocked = not ok or any(s.status == "failed" for s in report.stages)
    if "register" in options.steps and not blocked and config.model is not None:
        ok, value = step("register", "registration", lambda: step_register(ws, config, env, run_id, options.trust))
        outcome.candidate = report.candidate = value
        blocked = not ok
    if "gate" in options.steps and not blocked and outcome.candidate and config.gates:
        ok, value = step("gate", "gates", lambda: step_gate(ws, config, outcome.candidate, options.trust))
        if ok:
            report.passed, report.gates, notes = value
            report.notes += notes
    if "report" in options.steps:
        started = time.perf_counter()
        fill_report(ws, config, report, run_id, options)
        outcome.timings["report"] = round(time.perf_counter() - started, 3)
        folder = _report_folder(root, options.report_dir)
        outcome.files = write_report(report, folder)
        candidate_file = folder / CANDIDATE_FILE
        if outcome.candidate and report.ok and report.passed:
            candidate_file.write_text(outcome.candidate + "\n")
            outcome.files["candidate"] = candidate_file
        else:
            candidate_file.unlink(missing_ok=True)
    return outcome


def _report_folder(root: Path, folder: Path) -> Path:
    return folder if folder.is_absolute() else root / folder


def fill_report(ws: Workspace, config: Any, report: Report, run_id: str | None, options: CIOptions) -> None:
    """Params, data, metrics (now, base, champion) and plots: everything read, nothing run."""
    root = ws.project.root
    report.params = collect.params_diff(root, report.base_commit, collect.param_files(config))
    report.data = collect.data_diff(root, report.base_commit, collect.data_paths(config, root), ws.objects)
    files = collect.metric_files(config)
    current = collect.read_metric_files(root, files) or {}
    base: dict[str, float] | None = None
    champion: dict[str, float] | None = None
    champion_mv = candidate_mv = None
    base_run: str | None = None
    with ws.store.read() as session:
        if run_id:  # what the stages logged, with the declared metrics files on top
            current = {**collect.run_metrics(session, run_id), **current}
        if report.base_commit:
            base_run, at = collect.runs_for_commit(session, git.ancestors(root, report.base_commit))
            base = collect.run_metrics(session, base_run) if base_run else None
            if base and at != report.base_commit:
                report.notes.append(f"base metrics come from {at[:7]}, the nearest ancestor of "
                                    f"{report.base_commit[:7]} with a recorded pipeline run")
            if not base:
                base = collect.read_metric_files(root, files, report.base_commit)
            if base is None and current:
                report.notes.append(f"no metrics recorded for the base commit {report.base_commit[:7]} "
                                    "(run 'shipyard ci' on the base branch, with a shared store, to compare)")
        champion_mv, candidate_mv = _champion(session, config, report)
        if champion_mv is not None:
            champion = collect.run_metrics(session, champion_mv.run_id)
        histories = collect.metric_histories(session, run_id) if run_id else {}
        base_histories = collect.metric_histories(session, base_run) if base_run else {}
        report.cost = _cost(session, config, run_id, base_run)
    report.metrics = collect.metric_rows(current, base, champion)
    if options.plots:
        _plots(ws, config, report, candidate_mv, champion_mv, histories, base_histories, options)


def _cost(session: Any, config: Any, run_id: str | None, base_run: str | None) -> CostRow | None:
    """This run's cost and its base's, priced by shipyard.yaml's cost: table ("unpriced" without one)."""
    from shipyard.tracking.cost import PriceTable, run_costs

    if run_id is None:
        return None
    costs = run_costs(session, [r for r in (run_id, base_run) if r], PriceTable.of(config.cost))
    now, before = costs[run_id], costs.get(base_run) if base_run else None
    change = None
    if before is not None and now.amount is not None and before.amount:
        change = now.amount / before.amount - 1
    return CostRow(now.text(), before.text() if before is not None else None, change)


def _champion(session: Any, config: Any, report: Report) -> tuple[Any, Any]:
    if config.model is None:
        return None, None
    try:
        resolve = _service("shipyard.registry", "resolve", "the model registry")
    except MissingService:
        return None, None
    from shipyard.errors import NotFound

    champion = candidate = None
    try:
        champion = resolve(session, f"{config.model.name}@champion")
        report.champion = champion.ref
    except NotFound:
        if not any("champion" in n.lower() for n in report.notes):
            report.notes.append(f"{config.model.name} has no champion yet: nothing to compare against")
    if report.candidate is None and report.commit:
        candidate = _version_of_commit(session, config.model.name, report)
    elif report.candidate:
        candidate = resolve(session, report.candidate)
        if champion is not None and champion.version == candidate.version:
            champion = None
    return champion, candidate


def _version_of_commit(session: Any, name: str, report: Report) -> Any:
    """``shipyard report`` without a registration: the newest version CI registered for this commit,
    with its stored verdict."""
    from shipyard.errors import NotFound

    find_versions = _service("shipyard.registry", "find_versions", "the model registry")
    try:
        versions = find_versions(session, name)
    except NotFound:
        return None
    mine = [v for v in versions if v.tags.get("git.commit") == report.commit]
    if not mine:
        return None
    version = mine[-1]
    report.candidate = version.ref
    verdict = version.verdict or {}
    if report.passed is None and isinstance(verdict.get("checks"), list):
        report.passed = bool(verdict.get("passed"))
        report.gates = [GateRow(str(c.get("name")), c.get("passed"), c.get("value"), c.get("threshold"),
                                str(c.get("reason") or "")) for c in verdict["checks"] if isinstance(c, dict)]
    return version


def _plots(ws: Workspace, config: Any, report: Report, candidate_mv: Any, champion_mv: Any,
           histories: dict[str, list[tuple[int, float]]], base_histories: dict[str, list[tuple[int, float]]],
           options: CIOptions) -> None:
    from shipyard.ci import plots

    folder = _report_folder(ws.project.root, options.report_dir) / PLOTS_DIR
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    made: list[PlotRef] = []
    series = {k: {"this change": v, **({report.base_ref or "base": base_histories[k]} if k in base_histories else {})}
              for k, v in histories.items()}
    path = plots.metric_curves(series, folder / "metric_curves.png")
    if path:
        made.append(PlotRef("Metric curves", f"{PLOTS_DIR}/{path.name}"))
    data = collect.eval_set(ws.project.root, config)
    if data is not None and candidate_mv is not None:
        try:
            load_model = _service("shipyard.models", "load_model", "model loading")
            ours = collect.predictions(load_model(ws.objects, candidate_mv.model_oid, candidate_mv.flavor,
                                                  trust=options.trust), data, f"candidate {candidate_mv.ref}")
            theirs = None
            if champion_mv is not None:
                theirs = collect.predictions(load_model(ws.objects, champion_mv.model_oid, champion_mv.flavor,
                                                        trust=options.trust), data, f"champion {champion_mv.ref}")
            for title, fn, name in (("Confusion matrix", plots.confusion_matrix, "confusion_matrix.png"),
                                    ("ROC", plots.roc, "roc.png"),
                                    ("Calibration", plots.calibration, "calibration.png"),
                                    ("Fairness by group", plots.fairness, "fairness.png")):
                path = fn(ours, folder / name, theirs)
                if path:
                    made.append(PlotRef(title, f"{PLOTS_DIR}/{name}"))
        except ShipyardError as exc:
            report.notes.append(f"model plots skipped: {exc.message}")
    # Plots the pipeline itself made (declared as stage plots) travel with the report.
    for stage in config.pipeline.stages.values():
        for entry in stage.plots:
            for rel in ([entry] if isinstance(entry, str) else list(entry)):
                source = ws.project.root / rel
                files = sorted(source.rglob("*")) if source.is_dir() else [source]
                for file in files:
                    if file.is_file() and file.suffix.lower() in IMAGE_SUFFIXES:
                        target = folder / "pipeline" / file.relative_to(ws.project.root).as_posix().replace("/", "__")
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(file, target)
                        made.append(PlotRef(f"{file.relative_to(ws.project.root).as_posix()} (from the pipeline)",
                                            f"{PLOTS_DIR}/pipeline/{target.name}"))
    report.plots = made + _dvc_plots(ws.project.root, folder)


def _dvc_plots(root: Path, folder: Path) -> list[PlotRef]:
    """dvc.yaml's top-level data plots (ROC, precision-recall, confusion... as dvclive writes them),
    drawn from the working tree's files; image plots are copied with the stages' plots above."""
    if not (root / "dvc.yaml").is_file():
        return []
    from shipyard.ci import plots
    from shipyard.pipeline.dvc import read_doc, top_level_plots

    made: list[PlotRef] = []
    for i, plot in enumerate(top_level_plots(read_doc(root))):
        if all(Path(f).suffix.lower() in IMAGE_SUFFIXES for f in plot.files):
            continue
        rows = {f: collect.plot_records(root / f) for f in plot.files}
        name = f"dvc-{i}-" + "".join(c if c.isalnum() else "_" for c in plot.title)[:60] + ".png"
        path = plots.data_plot(plot.title, plot.template, rows, plot.x, plot.y, folder / "pipeline" / name)
        if path is not None:
            made.append(PlotRef(f"{plot.title} (dvc.yaml plots)", f"{PLOTS_DIR}/pipeline/{name}"))
    return made
