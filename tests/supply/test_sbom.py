"""SBOMs: CycloneDX of the environment; `shipyard scan --deps` against a local OSV-shaped service on
loopback (vulnerable, clean) and with no service at all (exit 2, never a pass)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shipyard import registry
from shipyard.supply.sbom import build_sbom, components
from tests.supply.test_scan import invoke

VULNERABLE = {("numpy", "1.21.0")}


class _Osv(BaseHTTPRequestHandler):
    """POST /v1/query as api.osv.dev answers it: {} when clean, {"vulns": [...]} otherwise."""

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        name, version = query["package"]["name"], query["version"]
        self.server.queries.append((name, version))  # type: ignore[attr-defined]
        body: dict[str, Any] = {}
        if self.path == "/v1/query" and (name, version) in VULNERABLE and self.server.vulnerable:  # type: ignore[attr-defined]
            body = {"vulns": [{"id": "GHSA-test-0001", "summary": "buffer overflow in the test", "modified": "2026-01-01T00:00:00Z",
                               "affected": [{"package": {"name": name, "ecosystem": "PyPI"},
                                             "ranges": [{"type": "ECOSYSTEM",
                                                         "events": [{"introduced": "0"}, {"fixed": "1.22.0"}]}]}]}]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def osv() -> Iterator[Any]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Osv)
    server.queries, server.vulnerable = [], True  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


SBOM = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": [
    {"type": "library", "name": "numpy", "version": "1.21.0", "purl": "pkg:pypi/numpy@1.21.0"},
    {"type": "library", "name": "requests", "version": "2.32.3", "purl": "pkg:pypi/requests@2.32.3"},
]}


@pytest.fixture
def version_with_sbom(project: Any) -> str:
    sbom_oid = project.objects.put_bytes(json.dumps(SBOM).encode())
    facts = {"supply": {"sbom": {"oid": sbom_oid, "format": "CycloneDX 1.6", "components": 2, "python": "3.11"}}}
    with project.store.write() as session:
        registry.register(session, "m", model_oid="xxh128:0.dir", flavor="sklearn", lineage=facts)
        registry.register(session, "m", model_oid="xxh128:1.dir", flavor="sklearn")
    return "m@1"


def test_the_environment_sbom_is_cyclonedx_with_purls() -> None:
    doc = json.loads(build_sbom())
    assert doc["bomFormat"] == "CycloneDX" and doc["specVersion"] == "1.6"
    names = dict(components(json.dumps(doc).encode()))
    import numpy

    assert names["numpy"] == numpy.__version__
    purls = {c["purl"] for c in doc["components"]}
    assert f"pkg:pypi/numpy@{numpy.__version__}" in purls


def test_deps_audit_vulnerable_clean_and_unreachable(osv: Any, version_with_sbom: str) -> None:
    url = f"http://127.0.0.1:{osv.server_address[1]}"
    code, out, error = invoke("scan", "--deps", version_with_sbom, "--service", url, "--json")
    assert code == 1, (out, error)
    report = json.loads(out)
    assert report["components"] == 2
    assert report["vulnerable"] == [{"name": "numpy", "version": "1.21.0", "ids": ["GHSA-test-0001"],
                                     "fixed": ["1.22.0"], "summary": ["buffer overflow in the test"]}]
    assert ("requests", "2.32.3") in osv.queries
    osv.vulnerable = False
    try:
        code, out, _ = invoke("scan", "--deps", version_with_sbom, "--service", url + "/v1/query", "--json")
    finally:
        osv.vulnerable = True
    assert code == 0 and json.loads(out)["vulnerable"] == []
    with socket.socket() as s:   # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    code, out, error = invoke("scan", "--deps", version_with_sbom, "--service", closed)
    assert code == 2 and "did not answer" in error and "no known vulnerabilities" not in out


def test_deps_needs_a_version_with_an_sbom(version_with_sbom: str) -> None:
    code, _, error = invoke("scan", "--deps", "m@2", "--service", "http://127.0.0.1:9")
    assert code == 2 and "has no SBOM" in error
    code, _, error = invoke("scan", "--deps", "model.pkl")
    assert code == 2 and "NAME@VERSION" in error
