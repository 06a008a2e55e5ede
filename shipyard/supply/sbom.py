"""What a model was built with: a CycloneDX SBOM of the Python environment, and its audit.

``build_sbom`` lists every installed distribution (``importlib.metadata``: name, version, licence,
PyPI purl) and serializes CycloneDX 1.6 JSON with cyclonedx-python-lib. ``store_sbom`` builds it
once per process (the environment does not change under a running process) and puts it in the
object store. ``audit_sbom`` asks an OSV-compatible service (pip-audit's OSV client, any URL) about
each component; when the service cannot be reached it raises, so an audit that did not run never
reads as "no known vulnerabilities" (pip-audit itself exits 0 in that case unless --strict).
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

from shipyard.errors import InputError, require_extra

_BUILT: dict[str, tuple[bytes, int]] = {}   # per interpreter: the environment does not change under a process


def _distributions() -> list[tuple[str, str, str | None]]:
    from importlib.metadata import distributions

    seen: dict[str, tuple[str, str, str | None]] = {}
    for dist in distributions():
        name = dist.metadata.get("Name")
        if name and name.lower() not in seen:
            seen[name.lower()] = (name, dist.version, dist.metadata.get("License-Expression") or None)
    return sorted(seen.values(), key=lambda d: d[0].lower())


def build_sbom() -> bytes:
    """CycloneDX 1.6 JSON of the running Python environment."""
    require_extra("cyclonedx", "supply")
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.model.license import LicenseExpression
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    bom = Bom()
    bom.metadata.component = Component(name="python", version=sys.version.split()[0], type=ComponentType.PLATFORM)
    for name, version, licence in _distributions():
        licences = []
        if licence:
            try:
                licences = [LicenseExpression(licence)]
            except ValueError:
                licences = []
        bom.components.add(Component(name=name, version=version, type=ComponentType.LIBRARY, licenses=licences,
                                     purl=PackageURL("pypi", name=name.lower(), version=version),
                                     bom_ref=f"pypi/{name.lower()}@{version}"))
    with warnings.catch_warnings():   # the environment has no root package whose dependencies we could list
        warnings.simplefilter("ignore", UserWarning)
        return JsonV1Dot6(bom).output_as_string(indent=1).encode()


def store_sbom(objects: Any) -> dict[str, Any]:
    """Store this environment's SBOM (built once per process; the put is content-addressed)."""
    if sys.prefix not in _BUILT:
        data = build_sbom()
        _BUILT[sys.prefix] = (data, len(json.loads(data).get("components", [])))
    data, count = _BUILT[sys.prefix]
    return {"oid": objects.put_bytes(data), "format": "CycloneDX 1.6", "components": count,
            "python": sys.version.split()[0]}


def components(sbom: bytes) -> list[tuple[str, str]]:
    """(name, version) of each PyPI component of a CycloneDX JSON document."""
    doc = json.loads(sbom)
    return [(c["name"], c["version"]) for c in doc.get("components", []) if c.get("version")]


def audit_sbom(sbom: bytes, service: str, *, timeout: int = 10) -> list[dict[str, Any]]:
    """The components with known vulnerabilities, per the OSV-compatible ``service`` (base URL or
    its ``/v1/query`` endpoint). Raises InputError when the service does not answer."""
    require_extra("pip_audit", "supply")
    import tempfile

    import requests
    from packaging.version import Version
    from pip_audit._service.interface import ResolvedDependency, ServiceError
    from pip_audit._service.osv import OsvService

    url = service.rstrip("/")
    url = url if url.endswith("/v1/query") else url + "/v1/query"
    found: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="shipyard-audit-") as cache:   # answers are never reused
        osv = OsvService(cache_dir=Path(cache), timeout=timeout, osv_url=url)
        for name, version in components(sbom):
            try:
                dep = ResolvedDependency(name=name, version=Version(version))
            except ValueError:
                continue  # not a PEP 440 version (a local build): nothing to ask
            try:
                _, vulns = osv.query(dep)
            except (requests.RequestException, ServiceError, ConnectionError) as exc:
                raise InputError(f"vulnerability service {url} did not answer ({type(exc).__name__}): the audit did not run",
                                 hint="check supply.vulnerability_service (or --service) and the network; "
                                      "no answer is not a pass") from None
            if vulns:
                found.append({"name": name, "version": version, "ids": [v.id for v in vulns],
                              "fixed": sorted({str(f) for v in vulns for f in v.fix_versions}),
                              "summary": [v.description for v in vulns][:3]})
    return found


def audit_version(objects: Any, version: Any, service: str | None) -> dict[str, Any]:
    """Audit the SBOM stored with a registered version (``version.lineage.supply.sbom``)."""
    sbom_facts = (version.lineage or {}).get("supply", {}).get("sbom")
    if not sbom_facts:
        raise InputError(f"{version.ref} has no SBOM (registered before SBOMs, or with supply.sbom: false)",
                         hint="register the model again to record its training environment")
    if not service:
        raise InputError("no vulnerability service configured", hint="set supply.vulnerability_service or pass --service URL")
    sbom = objects.get_bytes(sbom_facts["oid"])
    vulnerable = audit_sbom(sbom, service)
    return {"target": version.ref, "service": service, "components": len(components(sbom)), "vulnerable": vulnerable}
