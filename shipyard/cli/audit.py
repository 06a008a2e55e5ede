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
    from shipyard.auth.audit_log import verify_chain
    from shipyard.cli.remote import remote

    server = remote()
    result = (server.get("/api/v1/audit/verify", "verify the audit log") if server is not None
              else verify_chain(Workspace.discover().store))
    if json_out:
        print_json(result)
    if not result["ok"]:
        raise CheckFailed(f"audit log is broken: {result['problem']}",
                          hint="the store was modified outside Shipyard; restore it from a backup")
    if not json_out:
        echo(f"audit log intact: {result['events']} events")


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
    from shipyard.auth.audit_log import EVENT_FIELDS, event_rows
    from shipyard.cli.remote import remote

    server = remote()
    if server is not None:
        events = server.get("/api/v1/audit/events", "audit log", kind=kind, subject=subject, actor=actor,
                            limit=limit)["events"]
    else:
        events = event_rows(Workspace.discover().store, kind, subject, limit, actor=actor)
    if json_out:
        print_json(events)
    else:
        table(list(EVENT_FIELDS), [[e[f] for f in EVENT_FIELDS] for e in events])
