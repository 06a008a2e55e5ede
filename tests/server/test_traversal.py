"""Artifact paths that try to leave the store are refused with 400, on a real server (raw paths)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlparse

import pytest

from shipyard.errors import PathEscapeError
from shipyard.tracking.paths import safe_relative
from tests.server.live import live_server

FORMS = {
    "dot-dot": "../../../etc/passwd",
    "dot-dot-inside": "model/../../secret",
    "absolute": "/etc/passwd",
    "backslash": "..\\..\\windows\\win.ini",
    "backslash-inside": "model\\..\\x",
    "single-encoded": "%2e%2e/%2e%2e/etc/passwd",
    "single-encoded-slash": "..%2f..%2fetc%2fpasswd",
    "double-encoded": "%252e%252e/%252e%252e/etc/passwd",
    "double-encoded-slash": "%252e%252e%252f%252e%252e%252fetc",
    "encoded-backslash": "%5c..%5c..%5cwin.ini",
    "encoded-absolute": "%2fetc%2fpasswd",
    "nul": "model%00.txt",
}


@pytest.mark.parametrize("form", sorted(FORMS))
def test_safe_relative_refuses(form: str) -> None:
    with pytest.raises(PathEscapeError):
        safe_relative(FORMS[form])


def test_safe_relative_accepts_plain_paths() -> None:
    assert safe_relative("model/model.skops") == "model/model.skops"
    assert safe_relative("plots/") == "plots"
    assert safe_relative("100%.txt") == "100%.txt"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    root: Path = tmp_path_factory.mktemp("traversal")
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    with live_server(root) as url:
        yield url


def _raw(url: str, method: str, path: str, body: bytes | None = None) -> tuple[int, dict]:
    parsed = urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    conn.putrequest(method, path, skip_accept_encoding=True)  # the path goes out exactly as written
    conn.putheader("Content-Length", str(len(body or b"")))
    conn.endheaders(body or b"")
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, (json.loads(data) if data.startswith(b"{") else {"raw": data[:200]})


@pytest.fixture(scope="module")
def run_id(server: str) -> str:
    status, body = _raw(server, "POST", "/api/v1/runs", json.dumps({"experiment": "t"}).encode())
    assert status == 200, body
    return body["run"]["run_id"]


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize("method", ["PUT", "GET"])
def test_mlflow_artifact_proxy_refuses(server: str, run_id: str, form: str, method: str) -> None:
    path = f"/api/2.0/mlflow-artifacts/artifacts/1/{run_id}/artifacts/{FORMS[form]}"
    if FORMS[form].startswith("/"):  # the whole location absolute: .../artifacts//etc/passwd
        path = f"/api/2.0/mlflow-artifacts/artifacts/{FORMS[form]}"
    status, body = _raw(server, method, path, b"evil" if method == "PUT" else None)
    assert status == 400, (status, body)
    assert body["error_code"] == "INVALID_PARAMETER_VALUE", body


@pytest.mark.parametrize("form", sorted(FORMS))
def test_own_artifact_route_refuses(server: str, run_id: str, form: str) -> None:
    status, body = _raw(server, "PUT", f"/api/v1/runs/{run_id}/artifacts/{FORMS[form]}", b"evil")
    assert status == 400, (status, body)
    assert body["error_code"] == "INVALID_PARAMETER_VALUE"


def test_listing_refuses_traversal(server: str) -> None:
    status, body = _raw(server, "GET", "/api/2.0/mlflow-artifacts/artifacts?path=1/x/artifacts/%252e%252e/%252e%252e")
    assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE"


def test_nothing_was_written(server: str, run_id: str) -> None:
    status, body = _raw(server, "GET", f"/api/v1/runs/{run_id}")
    assert status == 200 and body["run"]["artifacts"] == []


def test_binds_loopback_by_default() -> None:
    import inspect

    from shipyard.cli import server as cli_server

    assert inspect.signature(cli_server.server).parameters["host"].default.default == "127.0.0.1"
