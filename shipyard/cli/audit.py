"""``shipyard audit``: the hash-chained event log."""

from __future__ import annotations

import typer

from shipyard.cli.output import echo, print_json, table
from shipyard.errors import CheckFailed
from shipyard.workspace import Workspace

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Show and verify the audit log.")


@app.command()
def verify(json_out: bool = typer.Option(False, "--json", help="Print the result as JSON.")) -> None:
    """Check that no audit event was edited, inserted or deleted. Exit 1 if one was.

    Example: shipyard audit verify
    """
    from shipyard import audit

    ws = Workspace.discover()
    with ws.store.read() as session:
        result = audit.verify(session)
    if json_out:
        print_json({"ok": result.ok, "events": result.events, "problem": result.problem, "seq": result.seq})
    if not result.ok:
        raise CheckFailed(f"audit log is broken: {result.problem}",
                          hint="the store was modified outside Shipyard; restore it from a backup")
    if not json_out:
        echo(f"audit log intact: {result.events} events")


@app.command("log")
def log(
    kind: str | None = typer.Option(None, help="Only events of this kind (e.g. project.init)."),
    subject: str | None = typer.Option(None, help="Only events whose subject starts with this."),
    actor: str | None = typer.Option(None, help="Only events by this principal (alice) or token prefix (shp_...)."),
    limit: int = typer.Option(50, min=1, help="How many of the newest events."),
    json_out: bool = typer.Option(False, "--json", help="Print the events as JSON."),
) -> None:
    """List the newest audit events.

    Example: shipyard audit log --kind model.alias --limit 10

    Example: shipyard audit log --actor alice --kind auth.token_created
    """
    from shipyard import audit

    ws = Workspace.discover()
    with ws.store.read() as session:
        rows = [(e.seq, e.at.isoformat(timespec="seconds"), e.actor, e.kind, e.subject, e.payload)
                for e in audit.events(session, kind, subject, limit, actor=actor)]
    if json_out:
        print_json([dict(zip(("seq", "at", "actor", "kind", "subject", "payload"), r, strict=True)) for r in rows])
    else:
        table(["seq", "at", "actor", "kind", "subject", "payload"], rows)
