"""``shipyard runs|metrics|params``: list, show and diff tracked runs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from shipyard.tracking.service import RunRecord

runs_app = typer.Typer(add_completion=False, no_args_is_help=True, help="List, show and diff tracked runs.")
metrics_app = typer.Typer(add_completion=False, no_args_is_help=True,
                          help="Show metrics and diff them between runs or git revisions.")
params_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Diff params between runs or git revisions.")

# Arguments and options shared by the commands (typer reads them; they hold no state).
_JSON = typer.Option(False, "--json", help="Print JSON.")
_OLD = typer.Argument(None, help="Old: run id, 'latest', or git revision (default: the run before the newest).")
_NEW = typer.Argument(None, help="New: run id, 'latest', or git revision (default: the newest run).")
_MD_TABLE = typer.Option(False, "--md", help="A Markdown table (for a pull-request comment).")


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _duration(run: RunRecord) -> str:
    if run.end_time is None:
        return ""
    seconds = (run.end_time - run.start_time) / 1000
    return f"{seconds:.1f}s" if seconds < 120 else f"{seconds / 60:.1f}m"


def _workspace() -> Any:
    """The project's workspace, one per command invocation (listing and pricing runs share its open store)."""
    import click

    from shipyard.workspace import Workspace

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return Workspace.discover()
    if "shipyard.workspace" not in ctx.meta:
        ctx.meta["shipyard.workspace"] = Workspace.discover()
    return ctx.meta["shipyard.workspace"]


def _record(data: dict[str, Any], steps: dict[str, Any] | None = None) -> RunRecord:
    """A run as the server sent it (``RunRecord.to_dict`` and its metric steps), to render as a local one."""
    from shipyard.tracking.service import RunRecord

    return RunRecord(**data, metric_steps={k: tuple(v) for k, v in (steps or {}).items()})


def _resolve(run: str, *, full: bool) -> RunRecord:
    """The run ``run`` names (id, prefix, 'latest', git revision): from SHIPYARD_SERVER_URL, else the store.

    ``full`` reads it again with its inputs and artifacts (a resolved reference may carry fewer).
    """
    from urllib.parse import quote

    from shipyard.cli.remote import remote
    from shipyard.tracking.diff import resolve_ref
    from shipyard.tracking.service import get_run

    server = remote()
    if server is not None:
        answer = server.get(f"/api/v1/run-refs/{quote(run, safe='')}", f"run {run}")
        return _record(answer["run"], answer.get("metric_steps"))
    ws = _workspace()
    with ws.store.read() as session:
        record = resolve_ref(session, run, ws.project.root)
        return get_run(session, record.run_id) if full else record


def _costs(run_ids: list[str]) -> dict[str, Any]:
    """Each run's cost (tracking.cost.Cost) priced by this project's ``cost:`` table; empty when the
    runs come from a remote server (its price table is the server's: not known here)."""
    from shipyard.cli.remote import remote

    if remote() is not None or not run_ids:
        return {}
    from shipyard.project import config_section
    from shipyard.tracking.cost import PriceTable, run_costs

    ws = _workspace()
    path = ws.project.config_path
    if config_section(path, "cost", unreadable=True) is None:
        prices = PriceTable()  # most projects price nothing: no pydantic for them
    else:
        from shipyard.config import load_config

        prices = PriceTable.of(load_config(path).cost)
    with ws.store.read() as session:
        return run_costs(session, run_ids, prices)


def _search(filter_: str | None, order_by: list[str], limit: int, experiment: list[str], deleted: bool) -> list[RunRecord]:
    """``runs list``'s runs: from the server's GET /api/v1/runs with SHIPYARD_SERVER_URL, else the store."""
    from shipyard.cli.remote import remote
    from shipyard.errors import UsageError
    from shipyard.tracking.search import search_runs

    server = remote()
    if server is not None:
        if deleted:
            raise UsageError("--deleted lists the local store only", hint="unset SHIPYARD_SERVER_URL for it")
        answer = server.get("/api/v1/runs", "list runs", filter=filter_, order_by=order_by or None,
                            max_results=limit, experiment=experiment or None)
        return [_record(r) for r in answer["runs"]]
    ws = _workspace()
    with ws.store.read() as session:
        runs, _ = search_runs(session, filter_string=filter_, order_by=order_by, max_results=limit,
                              experiment_names=experiment or None, lifecycle="deleted" if deleted else "active")
    return runs


@runs_app.command("list")
def runs_list(
    filter_: str = typer.Option(None, "--filter", "-f", help="Filter, e.g. \"metrics.acc > 0.9 and params.depth = '3'\" (OR and parentheses work)."),
    order_by: list[str] = typer.Option(None, "--order-by", "-o", help="Order, e.g. 'metrics.acc DESC' (repeatable)."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=50_000, help="Show at most this many runs."),
    experiment: list[str] = typer.Option(None, "--experiment", "-e", help="Only runs of this experiment (repeatable)."),
    deleted: bool = typer.Option(False, "--deleted", help="List deleted runs instead of active ones."),
    as_json: bool = _JSON,
) -> None:
    """List runs, newest first, optionally filtered and ordered.

    Example: shipyard runs list --filter "metrics.accuracy > 0.9 or params.model = 'svm'" --order-by "metrics.accuracy DESC"
    """
    from shipyard.cli.output import print_json, table

    runs = _search(filter_, order_by or [], limit, experiment or [], deleted)
    costs = _costs([r.run_id for r in runs])
    if as_json:
        print_json([{**r.to_dict(), **({"cost": costs[r.run_id].to_dict()} if r.run_id in costs else {})}
                    for r in runs])
        return
    rows = []
    for r in runs:
        shown = [f"{k}={v:.4g}" for k, v in sorted(r.metrics.items()) if not k.startswith("system/")][:4]
        cost = costs.get(r.run_id)
        rows.append([r.run_id[:8], r.name or "", r.experiment, r.status, _when(r.start_time), _duration(r),
                     (r.git_commit or "")[:7] + ("*" if r.git_dirty else ""),
                     cost.short() if cost is not None else "-", " ".join(shown)])
    table(["run", "name", "experiment", "status", "started (UTC)", "took", "commit", "cost", "metrics"], rows)


@runs_app.command("show")
def runs_show(
    run: str = typer.Argument("latest", help="Run id (or unique prefix), 'latest', or a git revision."),
    as_json: bool = _JSON,
) -> None:
    """Show one run: status, git, params, metrics, tags, dataset inputs and artifacts.

    Example: shipyard runs show 3f2a9c1e
    """
    from shipyard.cli.output import echo, print_json, table

    record = _resolve(run, full=True)
    cost = _costs([record.run_id]).get(record.run_id)
    if as_json:
        print_json({**record.to_dict(), **({"cost": cost.to_dict()} if cost is not None else {})})
        return
    echo(f"run {record.run_id}" + (f" ({record.name})" if record.name else ""))
    echo(f"  experiment  {record.experiment}")
    echo(f"  status      {record.status}   started {_when(record.start_time)} UTC   took {_duration(record) or '-'}")
    if record.parent_run_id:
        echo(f"  parent      {record.parent_run_id}")
    if record.git_commit:
        echo(f"  git         {record.git_commit[:12]} {record.git_branch or ''}{' (dirty)' if record.git_dirty else ''}")
    echo(f"  user/host   {record.user or '-'}@{record.host or '-'}   source {record.source}")
    if cost is not None:
        echo(f"  cost        {cost.text()}")
    if record.params:
        table(["param", "value"], sorted(record.params.items()), title="params")
    if record.metrics:
        table(["metric", "value", "step"],
              [[k, f"{v:.6g}", record.metric_steps.get(k, (0, 0))[0]] for k, v in sorted(record.metrics.items())],
              title="metrics")
    if record.tags:
        table(["tag", "value"], sorted(record.tags.items()), title="tags")
    if record.inputs:
        table(["dataset", "digest", "context", "source"],
              [[i["name"], str(i["digest"])[:24], i["context"], i.get("source") or ""] for i in record.inputs],
              title="inputs")
    if record.artifacts:
        table(["artifact", "size", "object"], [[a["path"], a["size"], a["oid"][:22]] for a in record.artifacts],
              title="artifacts")


def _pair(session: Any, a: str | None, b: str | None, root: Any) -> tuple[RunRecord, RunRecord]:
    from shipyard.tracking.diff import resolve_ref

    new = resolve_ref(session, b, root)
    old = resolve_ref(session, a, root, exclude=new.run_id if a in (None, "latest") else None)
    return old, new


def _show_diffs(diffs: list[Any], markdown: bool, as_json: bool, only_changed: bool) -> None:
    from shipyard.cli.output import echo, print_json, table

    if as_json:
        print_json(diffs[0].to_dict() if len(diffs) == 1 else [d.to_dict() for d in diffs])
        return
    for d in diffs:
        if markdown:
            echo(d.to_markdown(all_rows=not only_changed))
            echo()
            continue
        rows = [[r.key, "" if r.old is None else r.old, "" if r.new is None else r.new,
                 "" if r.delta is None else f"{r.delta:+.6g}"] for r in d.rows if r.changed or not only_changed]
        table([d.kind[:-1], d.old.run_id[:8], d.new.run_id[:8], "change"], rows, title=d.kind)


@runs_app.command("diff")
def runs_diff(
    a: str = typer.Argument(..., help="Old run: id, prefix, 'latest' or git revision."),
    b: str = typer.Argument(..., help="New run: id, prefix, 'latest' or git revision."),
    markdown: bool = typer.Option(False, "--md", help="Markdown tables (for a pull-request comment)."),
    only_changed: bool = typer.Option(False, "--changed", help="Only rows whose value changed."),
    as_json: bool = _JSON,
) -> None:
    """Diff params, metrics and tags of two runs.

    Example: shipyard runs diff 3f2a9c1e 77b0d412 --md
    """
    from shipyard.tracking.diff import diff_runs

    ws = _workspace()
    with ws.store.read() as session:
        old, new = _pair(session, a, b, ws.project.root)
    _show_diffs([diff_runs(old, new, k) for k in ("params", "metrics", "tags")], markdown, as_json, only_changed)


@metrics_app.command("show")
def metrics_show(
    run: str = typer.Argument("latest", help="Run id (or unique prefix), 'latest', or a git revision."),
    as_json: bool = _JSON,
) -> None:
    """Show the newest value of every metric of a run (a pipeline run includes its stages).

    Example: shipyard metrics show
    """
    from shipyard.cli.output import print_json, table

    record = _resolve(run, full=False)
    if as_json:
        print_json({"run_id": record.run_id, "metrics": record.metrics})
        return
    table(["metric", "value"], [[k, f"{v:.6g}"] for k, v in sorted(record.metrics.items())],
          title=f"metrics of run {record.run_id[:8]}")


@metrics_app.command("diff")
def metrics_diff(
    a: str = _OLD,
    b: str = _NEW,
    markdown: bool = _MD_TABLE,
    only_changed: bool = typer.Option(False, "--changed", help="Only metrics whose value changed."),
    system: bool = typer.Option(False, "--system", help="Include system/ metrics (CPU, memory, wall time)."),
    as_json: bool = _JSON,
) -> None:
    """Diff metrics between two runs or git revisions (default: the two newest runs).

    Example: shipyard metrics diff main HEAD --md
    """
    from shipyard.tracking.diff import diff_runs

    ws = _workspace()
    with ws.store.read() as session:
        old, new = _pair(session, a, b, ws.project.root)
    _show_diffs([diff_runs(old, new, "metrics", include_system=system)], markdown, as_json, only_changed)


@metrics_app.callback()
def _metrics() -> None:
    """Show metrics and diff them between runs or git revisions."""


@params_app.command("diff")
def params_diff(
    a: str = _OLD,
    b: str = _NEW,
    markdown: bool = _MD_TABLE,
    only_changed: bool = typer.Option(False, "--changed", help="Only params whose value changed."),
    as_json: bool = _JSON,
) -> None:
    """Diff params between two runs or git revisions (default: the two newest runs).

    Example: shipyard params diff HEAD~1 HEAD --md
    """
    from shipyard.tracking.diff import diff_runs

    ws = _workspace()
    with ws.store.read() as session:
        old, new = _pair(session, a, b, ws.project.root)
    _show_diffs([diff_runs(old, new, "params")], markdown, as_json, only_changed)


@params_app.callback()
def _params() -> None:
    """Diff params between runs or git revisions."""


@runs_app.callback()
def _runs() -> None:
    """List, show and diff tracked runs."""
