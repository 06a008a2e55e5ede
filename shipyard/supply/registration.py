"""What registration does for the supply chain, in one place: scan, SBOM, sign.

``at_registration`` runs after the flavor packaged the model and before the version is recorded:
it scans the package (refusing it under ``supply.scan: refuse``, recording the findings otherwise),
stores a CycloneDX SBOM of the registering Python environment, and signs the package when a key
is configured (the signature becomes a file of the package, so the version's id covers it).
It returns the package id to record (a new one when signed) and the facts for ``lineage.supply``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.errors import UnsafeModel
from shipyard.supply.config import SupplySection


def project_settings(root: Path) -> SupplySection:
    """The project's ``supply`` section (defaults when the project has no shipyard.yaml)."""
    path = Path(root) / "shipyard.yaml"
    if not path.is_file():
        return SupplySection()
    from shipyard.config import load_config

    return load_config(path).supply


_by_project: dict[tuple[str, int], SupplySection] = {}


def current_settings() -> tuple[SupplySection, Path | None]:
    """The ``supply`` section of the project in the working directory (defaults outside a project),
    read once per project and edit of its shipyard.yaml: for loaders that are not handed a config."""
    from shipyard.errors import ShipyardError
    from shipyard.project import find_project

    try:
        root = find_project().root
        stamp = (str(root), (root / "shipyard.yaml").stat().st_mtime_ns)
    except (ShipyardError, OSError):
        return SupplySection(), None
    if stamp not in _by_project:
        _by_project[stamp] = project_settings(root)
    return _by_project[stamp], root


def at_registration(objects: Any, model_oid: str, flavor: str, settings: SupplySection, *, root: Path,
                    target: str) -> tuple[str, dict[str, Any]]:
    """Scan, record an SBOM and sign a freshly packaged model; returns (package id, lineage facts)."""
    facts: dict[str, Any] = {}
    if settings.scan != "off":
        from shipyard.supply.scan import scan_package

        report = scan_package(objects, model_oid, flavor=flavor, extra=settings.allow_globals, target=target)
        if not report.clean and settings.scan == "refuse":
            raise UnsafeModel(f"{target}: the scan found {len(report.findings)} problems, first: {report.findings[0]}",
                              hint="see 'shipyard scan PATH'; re-save the model in a safe format, or set "
                                   "supply.scan: record in shipyard.yaml to register it with its findings")
        facts["scan"] = report.summary()
    if settings.sbom:
        from shipyard.errors import MissingExtra
        from shipyard.supply.sbom import store_sbom

        try:
            facts["sbom"] = store_sbom(objects)
        except MissingExtra as exc:   # registration does not depend on the optional extra
            facts["sbom"] = {"skipped": f"{exc.message} ({exc.hint})"}
    if settings.signing_key:
        from shipyard.supply.signing import sign_package

        model_oid, facts["signature"] = sign_package(objects, model_oid, Path(root) / settings.signing_key)
    return model_oid, facts


def describe(lineage: dict[str, Any]) -> list[tuple[str, str]]:
    """``models show`` rows for what registration recorded: scan, SBOM, signature, classified columns."""
    facts = lineage.get("supply") or {}
    rows: list[tuple[str, str]] = []
    scan = facts.get("scan")
    if scan is not None:
        rows.append(("scan", "clean" if scan["clean"] else f"{len(scan['findings'])} findings: {scan['findings'][0]}"))
    sbom = facts.get("sbom")
    if sbom is not None:
        rows.append(("SBOM", sbom.get("skipped") or f"{sbom['format']}, {sbom['components']} components, "
                                                   f"Python {sbom['python']} ({sbom['oid']})"))
    signature = facts.get("signature")
    rows.append(("signed", f"yes, key {signature['key']}" if signature else "no"))
    classified = facts.get("classified") or {}
    for label, columns in sorted(classified.items()):
        rows.append(("trained on", f"columns classified {label}: {', '.join(columns)}"))
    if facts.get("classified_from"):   # the dataset versions lineage reached, with their classifications
        rows.append(("classified in", ", ".join(facts["classified_from"])))
    return rows
