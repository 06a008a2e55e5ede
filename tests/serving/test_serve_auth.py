"""``shipyard serve`` with ``serve.auth: token`` and TLS, as a user runs it: a real process on
loopback over a real project (SQLite store, a registered scikit-learn model, tokens in the store).

Predictions need a token with gateway:invoke on the project, feedback a token too; health probes stay
open; over HTTPS the client verifies the gateway's certificate against the private CA.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme

from shipyard.auth.settings import client_options
from shipyard.project import Project
from shipyard.workspace import Workspace
from tests.auth.people import gateway_tokens
from tests.conftest import shipyard_bin
from tests.e2e.gateway_live import free_port, iris_rows
from tests.serving.project_models import register_iris

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
CLEAN_ENV = ("SHIPYARD_STORE", "SHIPYARD_OBJECTS", "SHIPYARD_REQUEST_LOG", "SHIPYARD_PROJECT", "SHIPYARD_TOKEN",
             "PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


def _pki(where: Path) -> dict[str, Path]:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    paths = {"ca": where / "ca.pem", "cert": where / "gateway.pem", "key": where / "gateway.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    cert.private_key_pem.write_to_path(str(paths["key"]))
    for blob in cert.cert_chain_pems:
        blob.write_to_path(str(paths["cert"]), append=True)
    return paths


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, Path], dict[str, str]]]:
    scratch = tmp_path_factory.mktemp("serve-auth")
    root = scratch / "penguins"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\nserve:\n  auth: token\n")
    ws = Workspace(Project(root))
    register_iris(ws, scratch, strengths=(1.0,))
    store = ws.store
    tokens = gateway_tokens(store)
    ws.close()
    pki = _pki(scratch)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in CLEAN_ENV}
    with open(scratch / "serve.log", "wb") as log:
        proc = subprocess.Popen([shipyard_bin(), "serve", "--port", str(port), "--tls-cert", str(pki["cert"]),
                                 "--tls-key", str(pki["key"])], cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"https://127.0.0.1:{port}"
    verify = client_options({"SHIPYARD_CA_BUNDLE": str(pki["ca"])})["verify"]
    deadline = time.monotonic() + 120
    try:
        while True:  # wait for the condition (the gateway is ready over TLS), bounded
            assert proc.poll() is None, (scratch / "serve.log").read_text()
            try:
                if httpx.get(url + "/ready", verify=verify, timeout=5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (scratch / "serve.log").read_text()
            time.sleep(0.1)
        yield url, pki, tokens
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def _client(pki: dict[str, Path], token: str | None = None) -> httpx.Client:
    env = {"SHIPYARD_CA_BUNDLE": str(pki["ca"]), **({"SHIPYARD_TOKEN": token} if token else {})}
    return httpx.Client(timeout=30, **client_options(env))


def test_predictions_and_feedback_need_a_gateway_invoke_token(gateway) -> None:  # type: ignore[no-untyped-def]
    url, pki, tokens = gateway
    body = {"dataframe_records": iris_rows(2)}
    with _client(pki) as anonymous:
        refused = anonymous.post(url + "/invocations", json=body)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
        assert anonymous.post(url + "/v1/feedback", json={"request_id": "x", "label": "setosa"}).status_code == 401
        assert anonymous.get(url + "/v2/models/iris").status_code == 401
    for who in ("read_only", "other_project"):
        with _client(pki, tokens[who]) as denied:
            answer = denied.post(url + "/invocations", json=body)
            assert answer.status_code == 403 and answer.json()["error_code"] == "PERMISSION_DENIED", (who, answer.text)
    with _client(pki, tokens["invoke"]) as app:
        ok = app.post(url + "/invocations", json=body)
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 2
        feedback = {"request_id": ok.headers["x-request-id"], "label": "setosa"}
        assert app.post(url + "/v1/feedback", json=feedback).status_code == 202
        assert app.post(url + "/v2/models/iris/infer", json={"inputs": [
            {"name": n, "shape": [1], "datatype": "FP64", "data": [v]} for n, v in iris_rows(1)[0].items()]},
        ).status_code == 200


def test_probes_stay_public_and_the_certificate_is_checked(gateway) -> None:  # type: ignore[no-untyped-def]
    url, pki, _ = gateway
    with _client(pki) as anonymous:
        for path in ("/health", "/ready", "/v2/health/live", "/ping"):
            assert anonymous.get(url + path).status_code == 200, path
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url + "/health", timeout=10)  # the system CAs do not know the private CA
