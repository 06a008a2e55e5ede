"""``shipyard gate NAME@VERSION``: judge a version; exit 0 pass, 1 fail, 2 usage or input error."""

from __future__ import annotations

import typer

from shipyard.cli.output import echo, print_json


def gate(
    ref: str = typer.Argument(..., help="NAME@VERSION (or NAME@ALIAS) to judge."),
    trust: bool = typer.Option(False, "--trust", help="Allow loading pickle versions (registered with --trust)."),
    no_record: bool = typer.Option(False, "--no-record", help="Do not store the verdict with the version."),
    markdown: str = typer.Option(None, "--markdown", help="Also write the verdict as Markdown to this file."),
    json_out: bool = typer.Option(False, "--json", help="Print the verdict as JSON."),
) -> None:
    """Run the gates in shipyard.yaml on a version, against the champion; store the verdict.

    Example: shipyard gate penguin-species@2
    """
    from pathlib import Path

    from shipyard.config import load_config
    from shipyard.errors import CheckFailed
    from shipyard.gates.runner import run_gate
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    config = load_config(ws.project.config_path)
    result = run_gate(ws.store, ws.objects, ref, config, ws.project.root, trust=trust, record=not no_record)
    verdict = result.verdict
    if markdown:
        Path(markdown).write_text(verdict.to_markdown(), encoding="utf-8")
    if json_out:
        print_json(verdict.to_dict())
    else:
        echo(f"gate {verdict.candidate}" + (f" vs champion {verdict.champion}" if verdict.champion else ""))
        for note in verdict.notes:
            echo(f"note: {note}")
        for line in verdict.summary_lines():
            echo("  " + line)
        echo(("PASSED" if verdict.passed else "FAILED") + (" (verdict stored)" if result.stored else ""))
    if not verdict.passed:
        names = ", ".join(c.name for c in verdict.failed)
        raise CheckFailed(f"{verdict.candidate} failed {len(verdict.failed)} gate check(s): {names}",
                          hint=f"see 'shipyard models card {verdict.candidate}' for the full verdict")


app = typer.Typer(add_completion=False)
app.command(name="gate")(gate)
