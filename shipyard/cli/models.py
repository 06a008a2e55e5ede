"""``shipyard models``: register, list, show, alias, trust, card, lineage."""

from __future__ import annotations

from typing import Any

import typer

from shipyard.cli.output import echo, print_json, table

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Register model versions, move aliases, trust versions, print cards and lineage.")


def _ws():  # type: ignore[no-untyped-def]
    from shipyard.workspace import Workspace

    return Workspace.discover()


def _config(ws):  # type: ignore[no-untyped-def]
    from shipyard.config import load_config

    return load_config(ws.project.config_path) if ws.project.config_path.exists() else None


def _parse_tags(tags: list[str]) -> dict[str, str]:
    from shipyard.errors import UsageError

    out = {}
    for item in tags:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {item!r} is not KEY=VALUE")
        out[key] = value
    return out


@app.command()
def register(
    name: str = typer.Argument(None, help="Model name (default: model.name in shipyard.yaml)."),
    path: str = typer.Option(None, "--path", help="Model file or folder (default: model.path)."),
    flavor: str = typer.Option(None, "--flavor", help="sklearn, onnx, xgboost, lightgbm, pickle or mlflow (an MLflow model folder; default: model.flavor)."),
    run: str = typer.Option(None, "--run", help="Run that produced the model (default: the newest that did)."),
    no_run: bool = typer.Option(False, "--no-run", help="Link no run."),
    trust: bool = typer.Option(False, "--trust", help="Allow a pickle/joblib file (after an opcode scan)."),
    description: str = typer.Option(None, "--description", "-d", help="Free text kept with the version."),
    tag: list[str] = typer.Option([], "--tag", help="KEY=VALUE, repeatable (added to the existing version when unchanged)."),
    new: bool = typer.Option(False, "--new", help="Register a new version even when one already holds this model file."),
    json_out: bool = typer.Option(False, "--json", help="Print the version as JSON (\"created\": false when unchanged)."),
) -> None:
    """Register a trained model as the next version (signature and training-data profile included).

    A model file whose content is already a version of NAME is not registered twice: the command
    says "model unchanged: already NAME@N" and that version is the result (--new forces a new one).

    Example: shipyard models register penguin-species --path model/
    """
    from shipyard.errors import UsageError
    from shipyard.registry.project import register_from_project

    ws = _ws()
    cfg = _config(ws)
    model_cfg = cfg.model if cfg else None
    name = name or (model_cfg.name if model_cfg else None)
    path = path or (model_cfg.path if model_cfg else None)
    if not name or not path:
        raise UsageError("give NAME and --path, or a model: section in shipyard.yaml",
                         hint="shipyard models register penguin-species --path model/")
    if model_cfg and model_cfg.name != name:
        model_cfg = model_cfg  # same data/target settings apply to any name registered from this project
    import os

    run = run or os.environ.get("SHIPYARD_RUN_ID")
    result = register_from_project(ws.store, ws.objects, ws.project.root, name, path, flavor=flavor,
                                   model_cfg=model_cfg, run_id=run, find_run=not no_run, trust=trust,
                                   description=description, tags=_parse_tags(tag), new=new)
    if json_out:
        print_json(result.to_dict())
        return
    for note in result.notes:
        echo(f"note: {note}")
    mv = result.version
    echo(f"{result.message} ({mv.flavor}, {mv.model_oid})")


@app.command("list")
def list_(
    name: str = typer.Argument(None, help="Only this model's versions."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List registered models and their versions.

    Example: shipyard models list penguin-species
    """
    from shipyard.cli.remote import remote
    from shipyard.registry import find_versions

    server = remote()
    if server is not None:
        versions = server.get("/api/v1/models", "list models", name=name)["versions"]
    else:
        ws = _ws()
        with ws.store.read() as session:
            versions = [v.to_dict() for v in find_versions(session, name)]
    if json_out:
        print_json(versions)
        return
    table(["model", "version", "flavor", "aliases", "gate", "run"],
          [(v["name"], v["version"], v["flavor"], ",".join(v["aliases"]), _gate(v), v["run_id"] or "")
           for v in versions])


def _gate(v: dict) -> str:  # type: ignore[type-arg]
    """A version's (``ModelVersion.to_dict``) latest gate verdict in one word."""
    if v["verdict"] is None:
        return "not gated"
    return "passed" if v["verdict"].get("passed") else "failed"


@app.command()
def show(
    ref: str = typer.Argument(..., help="NAME@VERSION or NAME@ALIAS."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Show one version: object, flavor, run, aliases, signature, latest verdict.

    Example: shipyard models show penguin-species@champion
    """
    from urllib.parse import quote

    from shipyard.cli.remote import remote
    from shipyard.registry import resolve

    server = remote()
    if server is not None:
        mv = server.get(f"/api/v1/models/{quote(ref, safe='@')}", f"model {ref}")["version"]
    else:
        ws = _ws()
        with ws.store.read() as session:
            row = resolve(session, ref)
            mv = row.to_dict()
            _classified_now(session, row, mv)
    if json_out:
        print_json(mv)
        return
    signature = mv["signature"]
    rows = [("version", mv["ref"]), ("flavor", mv["flavor"]), ("model object", mv["model_oid"]),
            ("model file hash", mv["content_oid"] or "not recorded"),
            ("size", f"{mv['size_bytes']:,} bytes"), ("aliases", ", ".join(mv["aliases"]) or "none"),
            ("run", mv["run_id"] or "none"), ("gate", _gate(mv)), ("description", mv["description"] or ""),
            ("signature", ", ".join(f"{c['name']}:{c['type']}" for c in signature["inputs"]) if signature else "none"),
            ("reference profile", mv["profile_oid"] or "none")]
    from shipyard.supply.registration import describe

    rows += describe(mv.get("lineage") or {})
    rows += [(f"tag {k}", v) for k, v in sorted(mv["tags"].items())]
    table(["field", "value"], rows)


def _classified_now(session: Any, row: Any, mv: dict[str, Any]) -> None:
    """Show the classifications lineage reaches now (a dataset classified after registration counts, as
    for the forbid_classified gate), not only what registration recorded."""
    from shipyard.supply.governance import version_classification

    found = version_classification(session, row)
    if found is not None:
        supply = dict((mv.get("lineage") or {}).get("supply") or {})
        supply["classified"] = found
        mv["lineage"] = {**(mv.get("lineage") or {}), "supply": supply}


@app.command()
def alias(
    name: str = typer.Argument(..., help="Model name."),
    alias_name: str = typer.Argument(..., metavar="ALIAS", help="Alias, e.g. champion or challenger."),
    version: int = typer.Argument(None, help="Version to point at (omit with --delete)."),
    delete: bool = typer.Option(False, "--delete", help="Remove the alias."),
    force: bool = typer.Option(False, "--force", help="Make champion without a passing gate verdict."),
    reason: str = typer.Option(None, "--reason", help="Why (required with --force; audited)."),
    json_out: bool = typer.Option(False, "--json", help="Print the change as JSON."),
) -> None:
    """Point an alias at a version (champion needs a passing gate verdict), or delete it.

    Example: shipyard models alias penguin-species champion 3
    """
    from shipyard.errors import UsageError

    if not delete and version is None:
        raise UsageError("give the VERSION to point the alias at (or --delete)",
                         hint=f"shipyard models alias {name} {alias_name} 3")
    result = _move_alias(name, alias_name, None if delete else version, force, reason)
    previous = result["previous"]
    if json_out:
        print_json(result)
    elif delete:
        echo(f"deleted {name}@{alias_name} (was version {previous})")
    else:
        moved = f" (was version {previous})" if previous is not None else ""
        echo(f"{name}@{alias_name} -> version {version}{moved}" + (" [forced, audited]" if force else ""))


def _move_alias(name: str, alias_name: str, version: int | None, force: bool, reason: str | None) -> dict:  # type: ignore[type-arg]
    """Point ``alias_name`` at ``version`` (None: delete it) on SHIPYARD_SERVER_URL, else in the store."""
    from urllib.parse import quote

    from shipyard.cli.remote import remote
    from shipyard.registry import delete_alias, set_alias

    server = remote()
    if server is not None:
        path = f"/api/v1/models/{quote(name, safe='')}/aliases/{quote(alias_name, safe='')}"
        if version is None:
            return server.call("DELETE", path, f"delete {name}@{alias_name}")  # type: ignore[no-any-return]
        return server.call("PUT", path, f"move {name}@{alias_name}",  # type: ignore[no-any-return]
                           json={"version": version, "force": force, "reason": reason})
    ws = _ws()
    with ws.store.write() as session:
        if version is None:
            return {"model": name, "alias": alias_name, "version": None,
                    "previous": delete_alias(session, name, alias_name)}
        previous = set_alias(session, name, alias_name, version, force=force, reason=reason)
    return {"model": name, "alias": alias_name, "version": version, "previous": previous, "forced": force}


@app.command()
def card(
    ref: str = typer.Argument(..., help="NAME@VERSION or NAME@ALIAS."),
    output: str = typer.Option(None, "--output", "-o", help="Write the card to this file."),
) -> None:
    """Print the Markdown model card: data versions, params, metrics, verdicts, fairness, signature.

    Example: shipyard models card penguin-species@champion -o MODEL_CARD.md
    """
    from pathlib import Path

    from shipyard.gates.runner import run_metrics
    from shipyard.registry import resolve
    from shipyard.registry.card import render_card
    from shipyard.registry.lineage import lineage

    ws = _ws()
    with ws.store.read() as session:
        mv = resolve(session, ref)
        text = render_card(mv, lineage(session, mv), run_metrics(session, mv.run_id))
    if output:
        Path(output).write_text(text, encoding="utf-8")
        echo(f"wrote {output}")
    else:
        print(text, end="")


@app.command()
def trust(
    ref: str = typer.Argument(..., metavar="NAME@VERSION", help="The version to trust."),
    reason: str = typer.Option(None, "--reason", help="Why you trust it (kept in the audit log)."),
    json_out: bool = typer.Option(False, "--json", help="Print the version as JSON."),
) -> None:
    """Trust a version whose model runs code when loaded (a pickle, an MLflow python_function model)
    that was registered without --trust, e.g. over MLflow's REST API. It is scanned and loaded once
    first (a refused pickle stays refused); then gates and the gateway load it like one registered
    with --trust. Audited.

    Example: shipyard models trust my-model@2 --reason "our own PythonModel, reviewed in PR 41"
    """
    from urllib.parse import quote

    from shipyard.cli.remote import remote
    from shipyard.registry.trust import trust_version

    server = remote()
    if server is not None:   # the server loads it once, where its gateways will
        answer = server.call("POST", f"/api/v1/models/{quote(ref, safe='@')}/trust", f"trust {ref}",
                             json={"reason": reason})
        mv, changed = answer["version"], answer["changed"]
    else:
        ws = _ws()
        result = trust_version(ws.store, ws.objects, ref, reason=reason)
        mv, changed = result.version.to_dict(), result.changed
    if json_out:
        print_json({**mv, "changed": changed})
        return
    echo(f"{mv['ref']} is trusted" + ("" if changed else " (it already was)") + f" ({mv['flavor']}, {mv['model_oid']})")


@app.command("lineage")
def lineage_cmd(
    ref: str = typer.Argument(..., help="NAME@VERSION or NAME@ALIAS."),
    json_out: bool = typer.Option(False, "--json", help="Print the tree as JSON."),
) -> None:
    """Print version -> run -> dataset versions -> git commit -> stage fingerprints.

    Example: shipyard models lineage penguin-species@2
    """
    from shipyard.registry import resolve
    from shipyard.registry.lineage import lineage, render_tree

    ws = _ws()
    with ws.store.read() as session:
        mv = resolve(session, ref)
        tree = lineage(session, mv)
    if json_out:
        print_json(tree)
    else:
        for line in render_tree(tree):
            print(line)
