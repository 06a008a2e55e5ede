"""``shipyard deploy``, ``rollout``, ``rollback`` and ``build``: progressive delivery from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shipyard.cli.monitor import approve as approve_trigger
from shipyard.cli.output import echo, print_json, show_rows
from shipyard.errors import UsageError

app = typer.Typer(add_completion=False, help="Start a rollout of a model version, or export manifests.")
rollout_app = typer.Typer(add_completion=False, no_args_is_help=True, help="Watch and steer rollouts.")
rollback_app = typer.Typer(add_completion=False, help="Send all traffic back to the previous champion, now.")
build_app = typer.Typer(add_completion=False, help="Write a Dockerfile for the gateway (and build it if docker runs).")

DEFAULT_IMAGE = "shipyard-gateway:latest"


def _controller(ws: Any) -> Any:
    from shipyard.config import load_config
    from shipyard.rollout.controller import build_controller

    cfg = load_config(ws.project.config_path) if ws.project.config_path.is_file() else None
    return build_controller(ws, cfg)


def _deploy_settings(ws: Any) -> Any:
    from shipyard.config import DeploySection, load_config

    if ws.project.config_path.is_file():
        return load_config(ws.project.config_path).deploy
    return DeploySection()


def _parse_ref(ref: str) -> tuple[str, int]:
    name, sep, version = ref.partition("@")
    digits = version[1:] if version[:1] in ("v", "V") else version
    if not sep or not name or not digits.isdigit():
        raise UsageError(f"{ref!r} is not NAME@VERSION", hint="e.g. shipyard deploy iris@3 --strategy canary")
    return name, int(digits)


def _show(outcome: dict[str, Any], json_out: bool) -> None:
    """A rollout decision (``Outcome.to_dict``, from the controller here or from the server)."""
    if json_out:
        print_json(outcome)
        return
    echo(f"rollout #{outcome['deployment']} of {outcome['model']}: {outcome['from']} -> {outcome['to']} "
         f"[{outcome['status']}] {outcome['reason']}")


@app.command()
def deploy(
    ref: str | None = typer.Argument(None, metavar="NAME@VERSION", help="The candidate version."),
    strategy: str | None = typer.Option(None, "--strategy", "-s",
                                        help="canary, bluegreen, shadow or ab (default: deploy.strategy)."),
    force: bool = typer.Option(False, "--force", help="Start without a passing gate verdict (needs --reason)."),
    reason: str | None = typer.Option(None, "--reason", help="Why --force is used (kept in the audit log)."),
    export: tuple[str, Path] | None = typer.Option(None, "--export", metavar="k8s DIR",
                                                   help="Write Kubernetes manifests into DIR instead."),
    image: str = typer.Option(DEFAULT_IMAGE, help="With --export: the gateway image."),
    replicas: int = typer.Option(2, min=1, help="With --export: gateway replicas."),
    json_out: bool = typer.Option(False, "--json", help="Print the decision as JSON."),
) -> None:
    """Start a rollout: the gateway moves traffic step by step and promotes or rolls back by itself.

    The candidate is loaded first; if it fails to load, nothing starts and the champion keeps serving.
    The first version of a model becomes its champion at once.

    Example: shipyard deploy iris@3 --strategy canary
    """
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    if export is not None:
        kind, folder = export
        if kind != "k8s":
            raise UsageError(f"unknown export target {kind!r}", hint="use --export k8s DIR")
        from shipyard.serving.k8s import write_manifests

        written = write_manifests(ws.project, Path(folder), image=image, replicas=replicas)
        if json_out:
            print_json({"written": [str(p) for p in written]})
        else:
            for path in written:
                echo(f"wrote {path}")
        return
    if ref is None:
        raise UsageError("missing NAME@VERSION", hint="e.g. shipyard deploy iris@3 --strategy canary")
    name, version = _parse_ref(ref)
    from shipyard.serving.loaders import RegistryLoader

    settings = _deploy_settings(ws)
    loader = RegistryLoader(ws.store, ws.objects)
    try:
        outcome = _controller(ws).start(name, version, settings, strategy, force=force, reason=reason,
                                        check_load=loader.load)
    finally:
        ws.close()
    _show(outcome.to_dict(), json_out)


def _act(action: str, model: str, json_out: bool) -> None:
    from urllib.parse import quote

    from shipyard.cli.remote import remote
    from shipyard.workspace import Workspace

    server = remote()
    if server is not None:
        _show(server.call("POST", f"/api/v1/rollouts/{quote(model, safe='')}/{action}", f"{action} the rollout of {model}"),
              json_out)
        return
    ws = Workspace.discover()
    try:
        outcome = _controller(ws).act(model, action)
    finally:
        ws.close()
    _show(outcome.to_dict(), json_out)


# One command under two names: 'shipyard triggers approve' is the same function (cli/monitor.py).
rollout_app.command("approve", help=(
    "Approve a retrained, gated version that waits for a person (deploy.approval: required) and start its "
    "rollout.\n\nExample: shipyard rollout approve 7"))(approve_trigger)


@rollout_app.command("status")
def status(
    model: str | None = typer.Argument(None, help="Only this model's rollouts."),
    limit: int = typer.Option(10, min=1, help="How many of the newest rollouts."),
    json_out: bool = typer.Option(False, "--json", help="Print the rollouts and their decisions as JSON."),
) -> None:
    """Show rollouts: state, step, routing and the latest decisions with their reasons.

    Example: shipyard rollout status iris --json
    """
    from shipyard.cli.remote import remote
    from shipyard.workspace import Workspace

    server = remote()
    if server is not None:
        rows = server.get("/api/v1/rollouts", "rollout status", model=model, limit=limit)["rollouts"]
    else:
        ws = Workspace.discover()
        try:
            rows = _controller(ws).status(model, limit)
        finally:
            ws.close()
    show_rows(rows, json_out, ["id", "model", "candidate", "champion", "strategy", "state", "weight", "last decision"],
              lambda r: (r["id"], r["model"], r["candidate"], r["champion"], r["strategy"], r["state"],
                         (r["routing"] or {}).get("weight") if r["state"] not in ("promoted", "rolled_back", "aborted") else "",
                         f"{r['decisions'][-1]['status']}: {r['decisions'][-1]['reason']}" if r["decisions"] else ""),
              empty="no rollouts yet; start one with 'shipyard deploy NAME@VERSION --strategy canary'")


# The rollout actions differ only in their name and what they say they do.
ACTIONS = {
    "pause": "Hold the rollout at its current step (traffic split unchanged, no analysis).",
    "resume": "Resume a paused rollout (a fresh analysis window starts now).",
    "promote": "Promote the candidate now, skipping the remaining steps (moves the champion alias).",
    "abort": "Stop the rollout and send all traffic back to the champion.",
}


def _action_command(action: str, summary: str) -> None:
    def command(model: str = typer.Argument(..., help="Model name."),
                json_out: bool = typer.Option(False, "--json", help="Print the decision as JSON.")) -> None:
        _act(action, model, json_out)

    rollout_app.command(action, help=f"{summary}\n\nExample: shipyard rollout {action} iris")(command)


for _action, _summary in ACTIONS.items():
    _action_command(_action, _summary)


@rollback_app.command()
def rollback(model: str = typer.Argument(..., help="Model name."),
             json_out: bool = typer.Option(False, "--json", help="Print the decision as JSON.")) -> None:
    """Instant rollback: all traffic to the previous champion (kept loaded), alias moved back.

    Example: shipyard rollback iris
    """
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    try:
        outcome = _controller(ws).rollback(model)
    finally:
        ws.close()
    _show(outcome, json_out)


@build_app.command()
def build(
    tag: str = typer.Option(DEFAULT_IMAGE, "--tag", "-t", help="Image tag."),
    no_build: bool = typer.Option(False, "--no-build", help="Only write the Dockerfile."),
    json_out: bool = typer.Option(False, "--json", help="Print what was done as JSON."),
) -> None:
    """Write Dockerfile.shipyard for the gateway; build it when a docker engine answers.

    Example: shipyard build --tag registry.example.com/iris-gateway:1
    """
    from shipyard.serving.k8s import docker_build, write_dockerfile
    from shipyard.workspace import Workspace

    project = Workspace.discover().project
    path = write_dockerfile(project)
    built, note = (False, "skipped (--no-build)") if no_build else docker_build(project, path, tag)
    if json_out:
        print_json({"dockerfile": str(path), "built": built, "tag": tag if built else None, "note": note})
    else:
        echo(f"wrote {path}")
        echo(f"built {tag}" if built else f"not built: {note}")
