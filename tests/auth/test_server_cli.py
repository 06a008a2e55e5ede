"""``shipyard server``: TLS (certificates made by trustme), --no-auth only on a laptop, the first start.

TLS runs the real binary and a real HTTPS client that verifies the certificate against the test's
private CA, and an app built in the test on uvicorn with TLS and the enforcement point.
"""

from __future__ import annotations

import os
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from shipyard.auth.settings import client_options, tls_verify
from shipyard.cli.server import _build_app
from shipyard.server.app import create_app
from tests.auth.live import serve
from tests.conftest import run_cli, shipyard_bin
from tests.server.live import free_port


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    where = tmp_path_factory.mktemp("pki")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    other = trustme.CA().issue_cert("127.0.0.1")
    paths = {"ca": where / "ca.pem", "cert": where / "server.pem", "key": where / "server.key",
             "other_key": where / "other.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    other.private_key_pem.write_to_path(str(paths["other_key"]))
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(paths["cert"]), append=True)
    return paths


@pytest.fixture
def running(project, pki) -> Iterator[tuple[str, subprocess.Popen[str]]]:  # type: ignore[no-untyped-def]
    port = free_port()
    proc = subprocess.Popen([shipyard_bin(), "server", "--port", str(port), "--no-monitor", "--tls-cert",
                             str(pki["cert"]), "--tls-key", str(pki["key"])], cwd=project.project.root,
                            env={**os.environ, "CI": "true"}, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"https://127.0.0.1:{port}"
    verify = tls_verify({"SHIPYARD_CA_BUNDLE": str(pki["ca"])})
    deadline = time.monotonic() + 60
    try:
        while True:  # wait for the condition (the server answers over TLS), bounded
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                httpx.get(url + "/health", verify=verify, timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "shipyard server did not answer over TLS"
                time.sleep(0.1)
        yield url, proc
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def test_the_server_serves_https_that_clients_verify(running, pki) -> None:  # type: ignore[no-untyped-def]
    url, _ = running
    options = client_options({"SHIPYARD_CA_BUNDLE": str(pki["ca"])})
    assert httpx.get(url + "/health", timeout=10, **options).status_code == 200
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url + "/health", timeout=10)  # the system CAs do not know the private CA
    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(url.replace("https", "http") + "/health", timeout=10)  # no plain HTTP on the TLS port


def test_shipyard_server_starts_with_auth_on_and_prints_the_first_admin_token(running, pki) -> None:  # type: ignore[no-untyped-def]
    url, proc = running
    assert proc.stdout is not None
    printed = []
    for line in proc.stdout:  # all of it is printed before the server listens, which it does now
        printed.append(line)
        if line.startswith("shipyard server on"):
            break
    token = next(line.strip() for line in printed if line.strip().startswith("shp_"))
    path = url + "/api/2.0/mlflow/experiments/search"
    anonymous = httpx.post(path, json={"max_results": 5}, timeout=10, **client_options({"SHIPYARD_CA_BUNDLE": str(pki["ca"])}))
    assert anonymous.status_code == 401 and anonymous.json()["error_code"] == "UNAUTHENTICATED"
    with httpx.Client(**client_options({"SHIPYARD_CA_BUNDLE": str(pki["ca"]), "SHIPYARD_TOKEN": token})) as http:
        assert http.post(path, json={"max_results": 5}, timeout=10).status_code == 200


@pytest.mark.parametrize(("args", "named"), [
    (["--tls-cert", "{cert}"], "--tls-cert needs --tls-key"),
    (["--tls-key", "{key}"], "--tls-key needs --tls-cert"),
    (["--tls-cert", "{cert}", "--tls-key", "{missing}"], "--tls-key {missing}: cannot read it"),
    (["--tls-cert", "{missing}", "--tls-key", "{key}"], "--tls-cert {missing}: cannot read it"),
    (["--tls-cert", "{cert}", "--tls-key", "{other_key}"], "not a PEM certificate and its key"),
    (["--tls-cert", "{key}", "--tls-key", "{key}"], "not a PEM certificate and its key"),
    (["--no-auth", "--host", "0.0.0.0"], "--no-auth with --host 0.0.0.0"),
])
def test_bad_server_options_are_usage_errors_naming_them(project, pki, args, named) -> None:  # type: ignore[no-untyped-def]
    names = {k: str(v) for k, v in pki.items()} | {"missing": str(project.project.root / "nope.pem")}
    result = run_cli("server", "--port", str(free_port()), *[a.format(**names) for a in args],
                     cwd=project.project.root, timeout=60)
    assert result.returncode == 2, result.stdout + result.stderr
    assert named.format(**names) in result.stdout + result.stderr


def test_no_auth_is_refused_with_a_shared_store(project) -> None:  # type: ignore[no-untyped-def]
    result = run_cli("server", "--no-auth", cwd=project.project.root, timeout=60,
                     env={"SHIPYARD_STORE": "postgresql+psycopg://ci@db.example:5432/shipyard"})
    assert result.returncode == 2 and "--no-auth with a shared store" in result.stdout + result.stderr


def test_the_first_start_prints_the_admin_token_once_and_it_works_over_tls(project, pki, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("SHIPYARD_PROJECT", "penguins")
    app = _build_app(create_app, project, "127.0.0.1", False)
    printed = capsys.readouterr().out
    token = next(line.strip() for line in printed.splitlines() if line.strip().startswith("shp_"))
    assert "'penguins'" in printed
    _build_app(create_app, project, "127.0.0.1", False)
    assert "shp_" not in capsys.readouterr().out  # shown once: the second start makes no admin
    with serve(app, ssl_certfile=str(pki["cert"]), ssl_keyfile=str(pki["key"])) as url:
        verify = tls_verify({"SHIPYARD_CA_BUNDLE": str(pki["ca"])})
        path = "/api/2.0/mlflow/experiments/search"
        assert httpx.post(url + path, json={"max_results": 5}, verify=verify, timeout=10).status_code == 401
        login_page = httpx.get(url + "/login", verify=verify, timeout=10)
        assert login_page.status_code == 200 and "secure" in login_page.headers["set-cookie"].lower()
        with httpx.Client(**client_options({"SHIPYARD_CA_BUNDLE": str(pki["ca"]), "SHIPYARD_TOKEN": token})) as http:
            assert http.post(url + path, json={"max_results": 5}, timeout=10).status_code == 200


def test_no_auth_on_a_laptop_says_so(project, capsys) -> None:  # type: ignore[no-untyped-def]
    _build_app(create_app, project, "127.0.0.1", True)
    said = capsys.readouterr()
    assert "authentication is OFF" in said.err and "shp_" not in said.out
    assert "authentication" not in said.out  # stdout stays clean for what scripts read (server --get's JSON)


def test_a_bad_ca_bundle_is_named() -> None:
    from shipyard.errors import ConfigError

    with pytest.raises(ConfigError, match=r"SHIPYARD_CA_BUNDLE=/nowhere/ca\.pem"):
        tls_verify({"SHIPYARD_CA_BUNDLE": "/nowhere/ca.pem"})
    assert isinstance(tls_verify({"SHIPYARD_CA_BUNDLE": ""}), bool)
    assert isinstance(tls_verify({}), bool) and not isinstance(tls_verify({}), ssl.SSLContext)


def test_the_mlflow_client_verifies_the_server_against_a_private_ca(project, pki, capsys, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("SHIPYARD_PROJECT", "penguins")
    app = _build_app(create_app, project, "127.0.0.1", False)
    token = next(line.strip() for line in capsys.readouterr().out.splitlines() if line.strip().startswith("shp_"))
    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_INSECURE_TLS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    with serve(app, ssl_certfile=str(pki["cert"]), ssl_keyfile=str(pki["key"])) as url:
        monkeypatch.delenv("MLFLOW_TRACKING_SERVER_CERT_PATH", raising=False)
        with pytest.raises(MlflowException, match="CERTIFICATE_VERIFY_FAILED"):
            MlflowClient(tracking_uri=url).search_experiments()
        monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", str(pki["ca"]))
        client = MlflowClient(tracking_uri=url)
        experiment = client.create_experiment("over-tls")
        assert client.get_experiment(experiment).name == "over-tls"
        client.create_registered_model("penguin-classifier")
    from shipyard import audit
    from shipyard.auth.tokens import display_prefix

    with project.store.read() as session:
        made = audit.events(session, kind="model.create")
    assert [e.actor for e in made] == [f"admin via {display_prefix(token)}"]  # the request's principal, not the OS user
