"""``shipyard run``, ``status``, ``dag``, ``explain`` and ``import dvc``.

Plain click commands (click is loaded by the root group already; typer would add ~0.1 s to every
no-op ``run``), and nothing heavy is imported until a stage actually has to run.

After a successful run, ``shipyard run`` registers the model (``model:`` in shipyard.yaml, or in a
project run from dvc.yaml its ``artifacts:`` entry of type model; unless ``model.register: manual``
or ``--no-register``) when the stage that writes ``model.path`` ran or was restored in this run. That composition of two services happens here, in the interface layer:
the pipeline service knows nothing of the registry.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import click

from shipyard.errors import ShipyardError, UsageError


def _context():  # type: ignore[no-untyped-def]
    from shipyard.pipeline.runner import Context
    from shipyard.project import find_project

    project = find_project()
    return Context(project.root, project.state_dir)


def _json(data: object) -> None:
    print(json.dumps(data, indent=2, default=str, ensure_ascii=False))


@click.command("run")
@click.argument("stages", nargs=-1)
@click.option("--force", "-f", is_flag=True, help="Run the selected stages even when they are up to date.")
@click.option("--jobs", "-j", type=click.IntRange(1, 256), default=None,
              help="Stages to run at once when independent (default: number of CPUs).")
@click.option("--dry-run", is_flag=True, help="Print what would run and why; change nothing.")
@click.option("--keep-going", "-k", is_flag=True, help="After a failure, still run stages that do not depend on it.")
@click.option("--downstream", is_flag=True, help="Run the given stages and everything after them (not before).")
@click.option("--no-cache", is_flag=True, help="Run changed stages even when the run cache has their outputs.")
@click.option("--executor", default=None, metavar="SPEC", help="local (default) or dask://host:port.")
@click.option("--no-register", is_flag=True,
              help="Do not register the model after this run (by default it is, when model.path was rebuilt).")
@click.option("--json", "json_out", is_flag=True, help="Print a JSON summary at the end.")
def run_cmd(stages: tuple[str, ...], force: bool, jobs: int | None, dry_run: bool, keep_going: bool, downstream: bool,
            no_cache: bool, executor: str | None, no_register: bool, json_out: bool) -> None:
    """Run the pipeline: only stages whose inputs changed; restore the rest from the run cache.

    When shipyard.yaml has a model: section and the stage writing model.path ran or was restored,
    the model is registered (a new version only for new content; model.register: manual or
    --no-register turn this off).

    Example: shipyard run train --jobs 4
    """
    from shipyard.pipeline.runner import RunOptions, run

    if downstream and not stages:
        raise UsageError("--downstream needs at least one stage name", hint="shipyard run prepare --downstream")
    ctx = _context()
    if json_out:
        ctx.echo = lambda message: click.echo(message, err=True)
    options = RunOptions(targets=list(stages), force=force, jobs=jobs or (os.cpu_count() or 1), dry_run=dry_run,
                         keep_going=keep_going, downstream=downstream, no_cache=no_cache, executor=executor)
    with contextlib.redirect_stdout(sys.stderr) if json_out else contextlib.nullcontext():
        summary = run(ctx, options)  # under --json the stages' output goes to stderr: stdout is the JSON
    registration: dict[str, object] | None = None
    failure: ShipyardError | None = None
    if not dry_run and not no_register and (summary.ran or summary.restored):  # a no-op run opens nothing more
        try:
            registration = _auto_register(ctx, summary)
        except Exception as exc:  # the stages' results are kept whatever went wrong: say so
            failure = _registration_failed(exc, summary.run_id)
            registration = {"error": failure.message}
    if not dry_run and summary.ran:  # something ran: it cost something
        _budget_alerts(ctx, summary.run_id)
    if json_out:
        _json({**summary.to_dict(), "registration": registration})
    if failure is not None:
        raise failure from failure.__cause__


def _budget_alerts(ctx, run_id: str | None) -> None:  # type: ignore[no-untyped-def]
    """Alert through notify: when this run (or today's, this month's runs) reached a budget threshold."""
    from shipyard.project import config_section

    raw = config_section(ctx.root / "shipyard.yaml", "budget")
    if not raw:  # most projects: no budget, no pydantic
        return
    from shipyard.config import load_config
    from shipyard.store import open_store
    from shipyard.tracking.budget import alert

    store = open_store(ctx.state_dir)
    try:
        for event in alert(store, load_config(ctx.root / "shipyard.yaml"), run_id):
            ctx.echo(f"budget: {event['message']} (alert sent)")
    finally:
        store.close()


def _producing_stages(ctx, model_path: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The stages (in run order) whose outs hold ``model_path`` or lie inside it."""
    import posixpath

    wanted = posixpath.normpath(model_path.strip().rstrip("/"))
    return [name for name in ctx.dag.order
            if any(out == wanted or wanted.startswith(out + "/") or out.startswith(wanted + "/")
                   for out in ctx.dag.stages[name].out_paths)]


def _may_register(model: object, ctx, summary) -> bool:  # type: ignore[no-untyped-def]
    """Is there a model whose stage was rebuilt? Most runs of a project without ``model:`` stop
    here; the full validation follows otherwise."""
    if model is ...:
        return True
    if not isinstance(model, dict) or model.get("register") == "manual":
        return False
    if not isinstance(model.get("path"), str):
        return True  # an odd shape: the full validation names what is wrong
    rebuilt = set(summary.ran) | set(summary.restored)
    return any(name in rebuilt for name in _producing_stages(ctx, model["path"]))


def _model_section(ctx, project, summary):  # type: ignore[no-untyped-def]
    """The model to register after this run: shipyard.yaml's ``model:``, else (a project run from
    dvc.yaml) the ``artifacts:`` entry of type model; None when there is none or its stage did not run."""
    from shipyard.project import config_section

    raw = config_section(project.config_path, "model", unreadable=...)
    if raw is not None:
        if not _may_register(raw, ctx, summary):
            return None
        from shipyard.config import load_config

        return load_config(project.config_path).model
    if ctx.pipeline.source != "dvc.yaml":
        return None
    from shipyard.pipeline.dvc import model_section, read_doc

    dvc_model, _notes = model_section(read_doc(ctx.root))
    if dvc_model is None:
        return None
    if dvc_model.get("register") == "manual" and _may_register({**dvc_model, "register": "auto"}, ctx, summary):
        from shipyard.pipeline.dvc import UNSAFE_NOTE

        ctx.echo(f"note: model {dvc_model['name']}: {dvc_model['path']} " + UNSAFE_NOTE.format(**dvc_model))
    if not _may_register(dvc_model, ctx, summary):
        return None
    from shipyard.config import ModelSection

    return ModelSection.model_validate(dvc_model)


def _auto_register(ctx, summary) -> dict[str, object] | None:  # type: ignore[no-untyped-def]
    """Register ``model.path`` when the stage that writes it ran or was restored; prints one line."""
    from shipyard.project import Project

    project = Project(ctx.root)
    model = _model_section(ctx, project, summary)
    if model is None or model.register_mode == "manual":
        return None
    rebuilt = set(summary.ran) | set(summary.restored)
    stages = [name for name in _producing_stages(ctx, model.path) if name in rebuilt]
    if not stages:
        return None
    from shipyard.registry.project import register_after_run
    from shipyard.workspace import Workspace

    ws = Workspace(project)
    try:
        result, run_id = register_after_run(ws.store, ws.objects, ctx.root, model, summary.run_id, stages[-1])
    finally:
        ws.close()
    if result.created:
        line = f"registered {result.version.ref} from stage {stages[-1]}" + (f" (run {run_id})" if run_id else "")
    else:
        line = result.message
    ctx.echo(line)
    return {"ref": result.version.ref, "name": result.version.name, "version": result.version.version,
            "created": result.created, "stage": stages[-1], "run_id": run_id}


def _registration_failed(cause: Exception, pipeline_run: str | None) -> ShipyardError:
    """The registration error, saying that the pipeline itself succeeded and its results are kept.

    It exits as its cause would (an unexpected exception, a bug, exits 3)."""
    from shipyard.errors import EXIT_INTERNAL

    where = f" (pipeline run {pipeline_run})" if pipeline_run else ""
    if isinstance(cause, ShipyardError):
        what, hint, code = cause.message, cause.hint, cause.exit_code
    else:
        what, hint, code = f"internal error: {type(cause).__name__}: {cause}", None, EXIT_INTERNAL
    error = ShipyardError(
        f"the pipeline succeeded{where} and its results are kept, but registering the model failed: {what}",
        hint=(f"{hint}; then " if hint else "") + "register with 'shipyard models register' "
             "(or set model.register: manual / pass --no-register to skip it)")
    error.exit_code = code
    error.__cause__ = cause
    return error


@click.command("status")
@click.argument("stages", nargs=-1)
@click.option("--json", "json_out", is_flag=True, help="Print each stage's state and reasons as JSON.")
def status_cmd(stages: tuple[str, ...], json_out: bool) -> None:
    """Show which stages would run and why (nothing is run or written).

    Example: shipyard status --json
    """
    ctx = _context()
    ctx.check_missing_deps(ctx.dag.select(stages))
    results = ctx.status(stages)
    if json_out:
        _json([r.to_dict() for r in results])
        return
    stale = [r for r in results if r.stale]
    if not stale:
        click.echo(f"Everything is up to date ({len(results)} stage{'s' if len(results) != 1 else ''}).")
        return
    for r in results:
        if not r.stale:
            continue
        click.echo(f"{r.name}: {r.state}")
        for reason in r.reasons:
            click.echo(f"    {reason}")
    frozen = [r.name for r in results if r.state == "frozen"]
    if frozen:
        click.echo(f"frozen (never run): {', '.join(frozen)}")


@click.command("dag")
@click.option("--mermaid", is_flag=True, help="Print a Mermaid flowchart.")
@click.option("--dot", is_flag=True, help="Print Graphviz DOT.")
@click.option("--json", "json_out", is_flag=True, help="Print stages and edges as JSON.")
def dag_cmd(mermaid: bool, dot: bool, json_out: bool) -> None:
    """Show the stages and what feeds what.

    Example: shipyard dag --mermaid
    """
    ctx = _context()
    dag = ctx.dag
    edges = [(up, name) for name in dag.order for up in dag.upstream[name]]
    if json_out:
        _json({"stages": list(dag.order), "edges": [list(e) for e in edges]})
    elif mermaid:
        click.echo("flowchart TD")
        ids = {name: f"s{i}" for i, name in enumerate(dag.order)}
        for name in dag.order:
            click.echo(f'    {ids[name]}["{name}"]')
        for up, down in edges:
            click.echo(f"    {ids[up]} --> {ids[down]}")
    elif dot:
        click.echo("digraph pipeline {")
        for name in dag.order:
            click.echo(f'    "{name}";')
        for up, down in edges:
            click.echo(f'    "{up}" -> "{down}";')
        click.echo("}")
    else:
        for name in dag.order:
            ups = dag.upstream[name]
            click.echo(f"{name}" + (f"  <- {', '.join(ups)}" if ups else ""))


@click.command("explain")
@click.argument("stage")
@click.option("--json", "json_out", is_flag=True, help="Print the changes as JSON.")
def explain_cmd(stage: str, json_out: bool) -> None:
    """Say why a stage would run: each changed input with its old and new hash or value.

    Example: shipyard explain train
    """
    from shipyard.pipeline.runner import explain

    ctx = _context()
    report = explain(ctx, stage)
    if json_out:
        _json(report)
        return
    click.echo(f"{stage}: {report['state']}")
    for reason in report["reasons"]:
        click.echo(f"    {reason}")
    click.echo(f"fingerprint: recorded {report['recorded_fingerprint'] or '-'}, now {report['current_fingerprint'] or '-'}")


@click.group("import")
def import_group() -> None:
    """Bring a pipeline from another tool into shipyard.yaml.

    Example: shipyard import dvc
    """


@import_group.command("dvc")
@click.option("--force", is_flag=True, help="Replace existing pipeline stages in shipyard.yaml.")
def import_dvc_cmd(force: bool) -> None:
    """Write shipyard.yaml's pipeline from dvc.yaml (dvc.lock and the DVC cache are left alone).

    Example: shipyard import dvc && shipyard run
    """
    from pathlib import Path

    from shipyard.pipeline.dvc import import_dvc

    target, converted, missed = import_dvc(Path.cwd(), force=force)
    click.echo(f"wrote {target.name} from dvc.yaml")
    click.echo("converted:")
    for line in converted:
        click.echo(f"  {line}")
    if missed:
        click.echo("not converted:")
        for line in missed:
            click.echo(f"  {line}")
    click.echo("  next: 'shipyard status' to see what would run, then 'shipyard run'")
