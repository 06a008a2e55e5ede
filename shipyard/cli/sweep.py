"""``shipyard sweep``: search a stage's params with Optuna; each trial is a pipeline run.

``shipyard sweep STAGE -p train.lr=loguniform(1e-4,1e-1) --metric accuracy --trials 20 --jobs 2``
starts a sweep; ``shipyard sweep status|stop|resume NAME`` look after it.
"""

from __future__ import annotations

import time
from typing import Any

import click

from shipyard.cli.output import echo, print_json
from shipyard.errors import UsageError

SUBCOMMANDS = ("status", "stop", "resume")


class _SweepGroup(click.Group):
    """``shipyard sweep STAGE ...`` starts a sweep; ``status``, ``stop`` and ``resume`` are subcommands."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["start", *args]
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


def _sweep():  # type: ignore[no-untyped-def]
    from shipyard.sweep.driver import Sweep
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    return Sweep(ws.project.root, ws.project.state_dir, ws.store, ws.project.objects_location,
                 lambda line: echo(line, err=True)), ws


@click.group("sweep", cls=_SweepGroup)
def app() -> None:
    """Search a stage's params (grid, random, TPE) with pruning; each trial is a pipeline run.

    Example: shipyard sweep train -p train.C=loguniform(1e-3,1e2) --metric accuracy --trials 20 --jobs 2
    """


@app.command("start", hidden=True)
@click.argument("stage")
@click.option("-p", "--param", "params", multiple=True, metavar="PARAM=DIST",
              help="A swept param: uniform(a,b), loguniform(a,b), int(a,b), logint(a,b), choice(x,y), [x,y] (repeatable).")
@click.option("--metric", default=None, help="The metric to optimise (logged by the stage or a stage before it).")
@click.option("--direction", default=None, help="maximize (default) or minimize.")
@click.option("--trials", default=None, type=int, help="Trials in all (default 20; a resumed sweep counts earlier ones).")
@click.option("--jobs", default=None, type=int, help="Trials at once (default 1).")
@click.option("--sampler", default=None, help="tpe (default), random or grid.")
@click.option("--seed", default=None, type=int, help="Seed of the sampler (repeatable sweeps).")
@click.option("--executor", default=None, metavar="SPEC", help="Where each trial's stages run: local or dask://host:port.")
@click.option("--name", default=None, help="The sweep's name (default: STAGE-<date>-<time>).")
@click.option("--apply", "apply_best", is_flag=True, help="Write the best trial's params into params.yaml.")
@click.option("--register", is_flag=True, help="With --apply: run the pipeline with them and register the model.")
@click.option("--json", "json_out", is_flag=True, help="Print the sweep's report as JSON at the end.")
def start_cmd(stage: str, params: tuple[str, ...], metric: str | None, direction: str | None, trials: int | None,
              jobs: int | None, sampler: str | None, seed: int | None, executor: str | None, name: str | None,
              apply_best: bool, register: bool, json_out: bool) -> None:
    """Start a sweep of STAGE (its sweeps: entry in shipyard.yaml gives the defaults; options win).

    Example: shipyard sweep train -p train.C=loguniform(1e-3,1e2) --metric accuracy --trials 20
    """
    from shipyard.sweep.driver import SweepSpec, check_stage

    if register and not apply_best:
        raise UsageError("--register needs --apply (the model is built from the params written to params.yaml)")
    sweep, ws = _sweep()
    declared = _declared(ws, stage)
    space = params or tuple(f"{k}={v}" for k, v in declared.params.items())
    metric = metric or declared.metric
    if not metric:
        raise UsageError(f"sweep of {stage!r}: which metric? give --metric, or sweeps.{stage}.metric in shipyard.yaml")
    spec = SweepSpec(name=name or f"{stage}-{time.strftime('%Y%m%d-%H%M%S')}", stage=stage, metric=metric,
                     direction=direction or declared.direction, space=space, trials=trials or declared.trials,
                     jobs=jobs or declared.jobs, sampler=sampler or declared.sampler,
                     seed=seed if seed is not None else declared.seed, executor=executor)
    spec.check()
    trials, jobs, sampler, direction = spec.trials, spec.jobs, spec.sampler, spec.direction
    check_stage(ws.project.root, ws.project.state_dir, stage, spec.dims)
    echo(f"sweep {spec.name}: {trials} trial(s) of stage {stage!r}, {jobs} at once, {sampler} sampler, "
         f"{direction} {metric}", err=True)
    _finish(sweep, ws, sweep.run(spec), apply_best, register, json_out)


def _declared(ws: Any, stage: str) -> Any:
    """The stage's ``sweeps:`` entry of shipyard.yaml, or the defaults."""
    from shipyard.config import SweepSection, load_config

    path = ws.project.config_path
    declared = load_config(path).sweeps.get(stage) if path.is_file() else None
    return declared or SweepSection()


def _finish(sweep: Any, ws: Any, report: Any, apply_best: bool, register: bool, json_out: bool) -> None:
    if json_out:
        print_json(report.to_dict())
    else:
        _show(report)
    if apply_best:
        if report.best_trial is None:
            raise UsageError("no trial completed: nothing to apply")
        from shipyard.sweep.paramsfile import set_values

        kept = set_values(ws.project.params_path, report.best_params)
        echo(f"params.yaml: wrote the params of trial {report.best_trial}"
             + ("" if kept else " (the file was rewritten: its comments are lost)"), err=True)
    if register:
        import subprocess

        from shipyard.monitoring.retrain import shipyard_command

        # the best trial's stages are in the run cache: this restores them and registers the model
        done = subprocess.run([*shipyard_command(), "run"], cwd=ws.project.root)
        if done.returncode != 0:
            raise SystemExit(done.returncode)


def _show(report: Any) -> None:
    spec = report.spec
    echo(f"sweep {report.name} ({report.state}): {report.complete} complete, {report.pruned} pruned, "
         f"{report.failed} failed, {report.running} running of {spec['trials']}")
    if report.best_trial is not None:
        shown = ", ".join(f"{k}={v}" for k, v in report.best_params.items())
        echo(f"best: trial {report.best_trial}, {spec['metric']}={report.best_value:.6g} with {shown}")
    if report.stop_reason:
        echo(f"stopped: {report.stop_reason}")


@app.command("status")
@click.argument("name", required=False)
@click.option("--json", "json_out", is_flag=True, help="Print JSON.")
def status_cmd(name: str | None, json_out: bool) -> None:
    """Show a sweep (or every sweep): trials by state and the best so far.

    Example: shipyard sweep status train-20261205-031500 --json
    """
    sweep, _ = _sweep()
    names = [name] if name else sweep.names()
    reports = [sweep.report(n) for n in names]
    if json_out:
        print_json([r.to_dict() for r in reports])
        return
    if not reports:
        echo("no sweeps yet: shipyard sweep STAGE -p PARAM=DIST --metric NAME")
    for report in reports:
        _show(report)


@app.command("stop")
@click.argument("name")
def stop_cmd(name: str) -> None:
    """Ask a running sweep to start no new trial (the running ones finish).

    Example: shipyard sweep stop train-20261205-031500
    """
    sweep, _ = _sweep()
    status = sweep.request_stop(name)
    if status == "RUNNING":
        echo(f"sweep {name}: asked to stop; running trials finish")
    else:
        echo(f"sweep {name}: already ended ({status}); nothing to stop")


@app.command("resume")
@click.argument("name")
@click.option("--jobs", default=None, type=int, help="Trials at once (default: as started).")
@click.option("--trials", default=None, type=int, help="Trials in all (default: as started).")
@click.option("--apply", "apply_best", is_flag=True, help="Write the best trial's params into params.yaml.")
@click.option("--register", is_flag=True, help="With --apply: run the pipeline with them and register the model.")
@click.option("--json", "json_out", is_flag=True, help="Print the report as JSON at the end.")
def resume_cmd(name: str, jobs: int | None, trials: int | None, apply_best: bool, register: bool, json_out: bool) -> None:
    """Go on with a stopped or killed sweep until its trials are done (cut-short trials run again).

    Example: shipyard sweep resume train-20261205-031500 --jobs 4
    """
    sweep, ws = _sweep()
    _, spec, _ = sweep.find(name)
    spec.jobs = jobs or spec.jobs
    spec.trials = trials or spec.trials
    spec.check()
    echo(f"sweep {name}: resuming toward {spec.trials} trial(s), {spec.jobs} at once", err=True)
    _finish(sweep, ws, sweep.run(spec, resume=True), apply_best, register, json_out)
