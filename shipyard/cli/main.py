"""The ``shipyard`` entry point: a click group that imports a command's module only when it runs.

``COMMANDS`` is the one table of top-level commands: name -> ("module:attribute", one-line help).
The attribute is a typer app (or click command); ``shipyard --help`` imports none of them. Errors
are mapped to exit codes here and nowhere else: 0 ok, 1 check failed, 2 usage, 3 internal.
"""

from __future__ import annotations

import os
import sys
import traceback

import click

from shipyard import __version__
from shipyard.errors import EXIT_INTERNAL, EXIT_USAGE, ShipyardError
from shipyard.lazy_imports import load

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("shipyard.cli.init:app", "Create shipyard.yaml, params.yaml and .shipyard/ here."),
    "doctor": ("shipyard.cli.doctor:app", "Check the store, object store, git and installed extras."),
    "audit": ("shipyard.cli.audit:app", "Show and verify the hash-chained audit log."),
    "models": ("shipyard.cli.models:app", "Register model versions, move aliases, print cards and lineage."),
    "gate": ("shipyard.cli.gate:app", "Judge a model version against thresholds and the champion (exit 0/1/2)."),
    "scan": ("shipyard.cli.scan:app", "Scan a model (file, folder or NAME@VERSION) for code that runs on load; --deps audits its SBOM."),
    "run": ("shipyard.cli.pipeline:run_cmd", "Run the pipeline: only changed stages; restore the rest from the run cache."),
    "status": ("shipyard.cli.pipeline:status_cmd", "Show which pipeline stages would run and why."),
    "dag": ("shipyard.cli.pipeline:dag_cmd", "Show the pipeline's stages and edges (text, --mermaid, --dot)."),
    "explain": ("shipyard.cli.pipeline:explain_cmd", "Show which inputs of a stage changed (old and new values)."),
    "import": ("shipyard.cli.pipeline:import_group", "Convert another tool's pipeline (dvc.yaml) to shipyard.yaml."),
    "serve": ("shipyard.cli.serve:app", "Serve routed model versions (OIP v2, MLflow /invocations, metrics, feedback)."),
    "deploy": ("shipyard.cli.deploy:app", "Roll a model version out (canary, bluegreen, shadow, ab) or export k8s manifests."),
    "rollout": ("shipyard.cli.deploy:rollout_app", "Show, pause, resume, promote or abort rollouts."),
    "rollback": ("shipyard.cli.deploy:rollback_app", "Send all traffic back to the previous champion, instantly."),
    "build": ("shipyard.cli.deploy:build_app", "Write a Dockerfile for the gateway; build it when docker runs."),
    "data": ("shipyard.cli.data:app", "Version, validate, profile and compare datasets (drift)."),
    "runs": ("shipyard.cli.tracking:runs_app", "List, show and diff tracked runs."),
    "metrics": ("shipyard.cli.tracking:metrics_app", "Show metrics and diff them between runs or git revisions."),
    "params": ("shipyard.cli.tracking:params_app", "Diff params between runs or git revisions."),
    "server": ("shipyard.cli.server:app", "Serve the REST API (MLflow-compatible tracking included)."),
    "ci": ("shipyard.cli.ci:app", "Run the CI job (pipeline, validation, gates, report); comment on the PR; write CI files."),
    "report": ("shipyard.cli.ci:report_app", "Write the Markdown/HTML/JSON report of this change against a base revision."),
    "push": ("shipyard.cli.sync:push_app", "Upload objects and run-cache entries to the remote (SHIPYARD_OBJECTS)."),
    "pull": ("shipyard.cli.sync:pull_app", "Download objects and run-cache entries from the remote (verified)."),
    "monitor": ("shipyard.cli.monitor:app", "Judge request-log windows (drift, quality, accuracy); alert and retrain by rule."),
    "triggers": ("shipyard.cli.monitor:triggers_app", "List, inspect, run and approve retrain triggers."),
    "users": ("shipyard.cli.auth:users_app", "Add, list and disable users and service accounts; set passwords."),
    "tokens": ("shipyard.cli.auth:tokens_app", "Create, list and revoke API tokens (shown once, stored hashed)."),
    "projects": ("shipyard.cli.auth:projects_app", "Create projects; grant and revoke roles (viewer, editor, maintainer)."),
    "cost": ("shipyard.cli.cost:app", "What the project costs: compute, storage, and each deployment's CPU per 1,000 predictions."),
    "gc": ("shipyard.cli.gc:app", "Remove stage environments (built with uv) that no run used lately."),
    "sweep": ("shipyard.cli.sweep:app", "Search a stage's params (grid, random, TPE, pruning); each trial is a pipeline run."),
    "export": ("shipyard.cli.export:app", "Hand the pipeline to Kubeflow Pipelines (YAML) or Airflow (a DAG file)."),
    "features": ("shipyard.cli.features:app", "List, show and diff feature views (Feast); materialize them online."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use (see STYLE.md D2)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        target = load(entry[0])
        if isinstance(target, click.Command):
            return target
        import typer.main

        command = typer.main.get_command(target)
        command.name = cmd_name
        return command

    def resolve_command(self, ctx: click.Context, args: list[str]):  # type: ignore[no-untyped-def]
        name = args[0] if args else ""
        if name and name not in COMMANDS and not name.startswith("-"):
            from shipyard.errors import did_you_mean

            hint = did_you_mean(name, COMMANDS)
            raise click.UsageError(f"unknown command {name!r}" + (f" ({hint})" if hint else ""), ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, COMMANDS[name][1]) for name in sorted(COMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="Example: shipyard init && shipyard doctor\n\nEvery command has --help with an example.",
)
@click.version_option(__version__, "--version", prog_name="shipyard", message="%(prog)s %(version)s")
def cli() -> None:
    """Shipyard: CI/CD for machine learning (pipelines, tracking, registry, gates, rollouts)."""


def report_error(exc: ShipyardError) -> None:
    """Print a Shipyard error the same way everywhere: message, then the hint."""
    click.echo(f"error: {exc.message}", err=True)
    if exc.hint:
        click.echo(f"hint: {exc.hint}", err=True)


def _click_family(name: str) -> tuple[type, ...]:
    """click's exception class ``name`` and typer's vendored copies of it, where loaded."""
    found = []
    for module_name in ("click.exceptions", "typer._click.exceptions", "typer.exceptions"):
        module = sys.modules.get(module_name)
        cls = getattr(module, name, None) if module is not None else None
        if isinstance(cls, type) and cls not in found:
            found.append(cls)
    return tuple(found)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        _run(argv)
    finally:
        _ignore_new_state_dir()


def _ignore_new_state_dir() -> None:
    """Whichever command created ``.shipyard/`` (a store, a stat cache, a lock), git ignores it."""
    from shipyard.project import find_project

    try:
        find_project()  # marks an existing state folder; creates nothing
    except Exception:  # no project here, nothing to mark
        pass


def _run(argv: list[str] | None) -> None:
    try:
        if os.environ.get("SHIPYARD_SERVER_URL"):  # remote mode only: local start-up imports nothing for it
            from shipyard.cli.remote import note_local

            note_local(sys.argv[1:] if argv is None else argv)  # a local command says it runs locally
        result = cli.main(args=argv, prog_name="shipyard", standalone_mode=False)
    except ShipyardError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        # typer >= 0.29 vendors click (typer._click): its Exit/Abort/UsageError are other classes.
        if isinstance(exc, _click_family("Exit")):
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        if isinstance(exc, _click_family("Abort")):
            click.echo("interrupted", err=True)
            sys.exit(130)
        if isinstance(exc, _click_family("ClickException")):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(EXIT_USAGE)
        # the last line of defence: a bug, not a user error
        if os.environ.get("SHIPYARD_DEBUG"):
            traceback.print_exc()
        click.echo(f"internal error: {type(exc).__name__}: {exc}", err=True)
        click.echo("hint: rerun with SHIPYARD_DEBUG=1 for the traceback, and report it", err=True)
        sys.exit(EXIT_INTERNAL)
    sys.exit(result if isinstance(result, int) else 0)


if __name__ == "__main__":
    run()
