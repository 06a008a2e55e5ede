"""``shipyard scan MODEL@V | PATH``: what a model would do when loaded, read without loading it.

Exit codes: 0 clean, 1 findings (or vulnerable dependencies with ``--deps``), 2 usage or input error
(also when no vulnerability service answers: an audit that could not run is never a pass).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from shipyard.cli.output import echo, print_json


def scan(
    target: str = typer.Argument(..., help="A model file or folder, or NAME@VERSION (NAME@ALIAS) of a registered version."),
    flavor: str = typer.Option(None, "--flavor", help="Judge pickles by this flavor's allow-list (default: the version's flavor, else any)."),
    deps: bool = typer.Option(False, "--deps", help="Audit the version's SBOM (its training environment) for known vulnerabilities instead."),
    service: str = typer.Option(None, "--service", help="OSV-compatible vulnerability service URL (default: supply.vulnerability_service)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Scan a model for code that runs on load (pickle globals off the allow-list, nested pickles,
    zip-slip, skops types, ONNX external data, safetensors headers, Keras Lambda layers).

    Example: shipyard scan penguin-species@2
    Example: shipyard scan model/ --json
    Example: shipyard scan --deps penguin-species@2
    """
    from shipyard.errors import CheckFailed, UsageError

    path = Path(target)
    config = _config()
    extra = config.supply.allow_globals if config else []
    if deps:
        if path.exists() or "@" not in target:
            raise UsageError(f"--deps audits a registered version's SBOM; {target!r} is not NAME@VERSION",
                             hint="shipyard scan --deps penguin-species@2")
        report = _audit_deps(target, service or (config.supply.vulnerability_service if config else None))
        _show_audit(report, json_out)
        if report["vulnerable"]:
            raise CheckFailed(f"{target}: {len(report['vulnerable'])} dependencies with known vulnerabilities",
                              hint="upgrade them in the training environment and register again")
        return
    if path.exists():
        from shipyard.supply.scan import scan_path

        result = scan_path(path, flavor=flavor, extra=extra)
    elif "@" in target:
        result = _scan_version(target, flavor, extra)
    else:
        raise UsageError(f"{target}: no such file or folder, and not NAME@VERSION",
                         hint="shipyard scan model/  or  shipyard scan penguin-species@2")
    _show(result, json_out)
    if not result.clean:
        raise CheckFailed(f"{result.target}: {len(result.findings)} findings; do not load it",
                          hint="re-save the model in a safe format (skops, ONNX, native booster), or allow your own "
                               "classes with supply.allow_globals in shipyard.yaml")


def _config() -> Any:
    """The project's configuration, or None outside a project (scanning a file needs none)."""
    from shipyard.config import load_config
    from shipyard.errors import ShipyardError
    from shipyard.project import find_project

    try:
        path = find_project().config_path
    except ShipyardError:
        return None
    return load_config(path) if path.is_file() else None   # a broken shipyard.yaml is an error, not ignored


def _scan_version(ref: str, flavor: str | None, extra: list[str]) -> Any:
    from shipyard.registry.core import resolve
    from shipyard.supply.scan import scan_package
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    with ws.store.read() as session:
        mv = resolve(session, ref)
    return scan_package(ws.objects, mv.model_oid, flavor=flavor or mv.flavor, extra=extra, target=mv.ref)


def _audit_deps(ref: str, service: str | None) -> dict[str, Any]:
    from shipyard.registry.core import resolve
    from shipyard.supply.sbom import audit_version
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    with ws.store.read() as session:
        mv = resolve(session, ref)
    return audit_version(ws.objects, mv, service)


def _show(result: Any, json_out: bool) -> None:
    if json_out:
        print_json(result.to_dict())
        return
    echo(f"scanned {result.target}: {len(result.files)} files")
    for name, kind in sorted(result.files.items()):
        echo(f"  {name}: {kind}")
    for finding in result.findings:
        echo(f"FINDING {finding}")
    echo("clean" if result.clean else f"{len(result.findings)} findings")


def _show_audit(report: dict[str, Any], json_out: bool) -> None:
    if json_out:
        print_json(report)
        return
    echo(f"audited {report['target']}: {report['components']} components against {report['service']}")
    for vuln in report["vulnerable"]:
        echo(f"VULNERABLE {vuln['name']} {vuln['version']}: {', '.join(vuln['ids'])}"
             + (f" (fixed in {', '.join(vuln['fixed'])})" if vuln["fixed"] else ""))
    echo("no known vulnerabilities" if not report["vulnerable"] else f"{len(report['vulnerable'])} vulnerable")


app = typer.Typer(add_completion=False)
app.command(name="scan")(scan)
