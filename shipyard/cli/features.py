"""``shipyard features``: the feature views of the project's Feast repository (list, show, diff)
and their materialization into the online store."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from shipyard.cli import output
from shipyard.cli.output import print_json
from shipyard.errors import UsageError

if TYPE_CHECKING:
    from shipyard.project import Project

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="List, show and diff feature views; materialize them into the online store.")

JSON = typer.Option(False, "--json", help="Print the result as JSON.")


def _project() -> Project:
    """The project, found once per command."""
    from shipyard.project import find_project

    return find_project()


def _defs(project: Project) -> Any:
    """The feature repository's definitions (shipyard.features.repo.RepoDefinitions; ``.repo`` is its folder)."""
    from shipyard.features.stage import load

    return load(project.root, project.state_dir)


def _stages(project: Project) -> dict[str, Any]:
    from shipyard.pipeline.loader import load_pipeline

    return dict(load_pipeline(project.root, project.state_dir).dag.stages)


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value!r}: expected an ISO date or time, e.g. 2026-11-01 or 2026-11-01T12:00") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


@app.command("list")
def list_cmd(json_out: bool = JSON) -> None:
    """List the feature views: features, TTL, definition hash and the stages that read them.

    Example: shipyard features list --json
    """
    from shipyard.features.views import describe, stages_using

    project = _project()
    defs = _defs(project)
    users = stages_using(_stages(project))
    rows = [{**describe(v, project.root), "stages": users.get(v.name, [])} for v in defs.views.values()]
    output.show_rows(rows, json_out, ["view", "features", "ttl", "definition", "stages"],
                     lambda r: [r["name"], ", ".join(r["features"]), f"{r['ttl_s']:g}s" if r["ttl_s"] else "none",
                                r["definition"][:22], ", ".join(r["stages"])],
                     empty=f"no feature views are defined in {defs.repo}")


@app.command()
def show(view: str = typer.Argument(..., help="A feature view name."), json_out: bool = JSON) -> None:
    """Show one view: its definition, the stages that read it and the runs and models trained on it.

    Example: shipyard features show driver_stats
    """
    from shipyard.features.views import describe, runs_reading, stages_using
    from shipyard.workspace import Workspace

    project = _project()
    found = _defs(project).view(view)
    info: dict[str, Any] = {**describe(found, project.root), "stages": stages_using(_stages(project)).get(view, [])}
    ws = Workspace(project)
    try:
        with ws.store.read() as session:
            info["runs"] = runs_reading(session, view)
    finally:
        ws.close()
    if json_out:
        print_json(info)
        return
    for key in ("name", "features", "join_keys", "ttl_s", "source", "definition", "stages"):
        value = info[key]
        output.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
    output.echo("runs that read it:" if info["runs"] else "runs that read it: none yet (shipyard run)")
    for run in info["runs"]:
        models = f" -> {', '.join(run['models'])}" if run["models"] else ""
        output.echo(f"  {run['stage']} (run {run['run']}) definition {run['definition'][:22]}{models}")


@app.command()
def diff(
    old: str = typer.Argument(..., help="A git revision (commit, branch, tag)."),
    new: str | None = typer.Argument(None, help="Another revision (default: the working tree)."),
    json_out: bool = JSON,
) -> None:
    """Which feature views changed between two git revisions (or a revision and the working tree).

    Exit 0 when none changed, 1 when some did.

    Example: shipyard features diff main
    """
    from shipyard.features.stage import repo_of
    from shipyard.features.views import definitions_at, diff_definitions

    project = _project()
    repo = repo_of(project.root)
    before = definitions_at(project.root, repo, old)
    after = definitions_at(project.root, repo, new) if new else _defs(project)
    changes = diff_definitions(before, after)
    if json_out:
        print_json(changes)
    elif not changes:
        output.echo(f"no feature view changed between {old} and {new or 'the working tree'}")
    for change in changes if not json_out else []:
        fields = f" ({', '.join(change['fields'])})" if change.get("fields") else ""
        output.echo(f"{change['view']}: {change['change']}{fields}")
    if changes:
        raise typer.Exit(1)


@app.command()
def materialize(
    views: list[str] = typer.Argument(None, help="Views to materialize (default: all)."),
    start: str | None = typer.Option(None, "--start", help="Earliest event time to copy (ISO; default: all)."),
    end: str | None = typer.Option(None, "--end", help="Latest event time to copy (ISO; default: now)."),
    json_out: bool = JSON,
) -> None:
    """Copy the latest feature values into the online store (Feast's materialize), view by view with
    progress; recorded as a tracked run ("features materialize") like a stage.

    Example: shipyard features materialize driver_stats --start 2026-11-01
    """
    from shipyard.features.views import materialize as run_materialize
    from shipyard.features.views import record_materialize
    from shipyard.workspace import Workspace

    project = _project()
    names = list(views or [])
    defs = _defs(project)
    for name in names:
        defs.view(name)  # an unknown view fails before the online store is touched
    result = run_materialize(defs.repo, names, _when(start, "--start"), _when(end, "--end"),
                             lambda items: output.progress(items, len(names) or None, "materialize"))
    ws = Workspace(project)
    try:
        result["run_id"] = record_materialize(ws.store, result)
    finally:
        ws.close()
    if json_out:
        print_json(result)
        return
    for name, seconds in result["seconds"].items():
        output.echo(f"materialized {name} ({result['start']} .. {result['end']}) in {seconds:.2f}s")
    output.echo(f"recorded as run {result['run_id']}")
