"""``shipyard run``, ``status``, ``dag``, ``explain`` and ``import dvc``.

Plain click commands (click is loaded by the root group already; typer would add ~0.1 s to every
no-op ``run``), and nothing heavy is imported until a stage actually has to run.
"""

from __future__ import annotations

import json
import os

import click

from shipyard.errors import UsageError


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
@click.option("--json", "json_out", is_flag=True, help="Print a JSON summary at the end.")
def run_cmd(stages: tuple[str, ...], force: bool, jobs: int | None, dry_run: bool, keep_going: bool, downstream: bool,
            no_cache: bool, executor: str | None, json_out: bool) -> None:
    """Run the pipeline: only stages whose inputs changed; restore the rest from the run cache.

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
    summary = run(ctx, options)
    if json_out:
        _json(summary.to_dict())


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

    target, notes = import_dvc(Path.cwd(), force=force)
    click.echo(f"wrote {target.name} from dvc.yaml")
    for note in notes:
        click.echo(f"  note: {note}")
    click.echo("  next: 'shipyard status' to see what would run, then 'shipyard run'")
