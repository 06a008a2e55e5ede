"""``shipyard`` commands against a remote ``shipyard server`` (``SHIPYARD_SERVER_URL``, ``SHIPYARD_TOKEN``).

One real ``shipyard server`` with auth on and TLS (a trustme CA, SHIPYARD_CA_BUNDLE; SQLite,
loopback) serves the module; the commands run in process (``shipyard.cli.main.run``, exit codes
included) from a folder that holds no project, so every answer comes from the server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.cli.main import run
from shipyard.project import Project
from shipyard.store.runs import MetricValue
from shipyard.workspace import Workspace
from tests.server.live import free_port, live_server_with_auth

MODEL = "penguin-species"


def _seed(root: Path) -> str:
    """A run with a metric, and two versions of MODEL: 1 passed its gate, 2 was never gated."""
    from shipyard import registry
    from shipyard.registry.core import record_version
    from shipyard.tracking import service

    ws = Workspace(Project(root))
    try:
        with ws.store.write() as session:
            run_id = service.create_run(session, experiment="remote", name="first")
            service.log_batch(session, run_id, metrics=[MetricValue("accuracy", 0.93, 3)], params={"depth": "3"})
            for _ in range(2):
                record_version(session, MODEL, model_oid="0" * 32, flavor="sklearn", run_id=run_id)
        with ws.store.write() as session:
            registry.record_verdict(session, f"{MODEL}@1", {"passed": True, "checks": []}, "passed")
        _seed_pickle(ws)
    finally:
        ws.close()
    return run_id


PICKLED = "pickled"


def _seed_pickle(ws: Workspace) -> None:
    """``pickled@1``: a real scikit-learn pickle, registered untrusted (as over MLflow's REST API)."""
    import pickle

    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from shipyard.models.flavors import get_flavor
    from shipyard.registry import register

    data = pickle.dumps(LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1]))
    packaged = get_flavor("pickle").package_bytes(ws.objects, "model.pkl", data, untrusted_ok=True)
    with ws.store.write() as session:
        register(session, PICKLED, model_oid=packaged.model_oid, flavor="pickle", trusted=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, str]]:
    """(https URL, the first admin's token, the seeded run id, the CA file) of a real server with auth and TLS."""
    import trustme

    base = tmp_path_factory.mktemp("remote")
    root = base / "penguins"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    run_id = _seed(root)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file, ca_file = base / "cert.pem", base / "key.pem", base / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    with live_server_with_auth(root, {"SHIPYARD_PROJECT": "penguins"}, tls=(cert_file, key_file, ca_file)) as (url, admin):
        yield url, admin, run_id, str(ca_file)


@pytest.fixture
def sy(server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """``sy(url, token, *args)`` runs ``shipyard ARGS`` in a folder with no project, trusting the server's
    CA (SHIPYARD_CA_BUNDLE): (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("SHIPYARD_CA_BUNDLE", server[3])
    for var in ("SHIPYARD_STORE", "SHIPYARD_OBJECTS", "SHIPYARD_PROJECT_ROOT"):
        monkeypatch.delenv(var, raising=False)

    def call(url: str, token: str | None, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("SHIPYARD_SERVER_URL", url)
        if token is None:
            monkeypatch.delenv("SHIPYARD_TOKEN", raising=False)
        else:
            monkeypatch.setenv("SHIPYARD_TOKEN", token)
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            run(list(args))
        out = capsys.readouterr()
        return int(exited.value.code or 0), out.out, out.err

    return call


def _viewer_token(sy, url: str, admin: str, user: str = "vera") -> str:  # type: ignore[no-untyped-def]
    """An admin adds ``user`` as a viewer of penguins over HTTP and makes a token with every model scope."""
    assert sy(url, admin, "users", "add", user)[0] == 0
    code, out, err = sy(url, admin, "projects", "grant", "penguins", user, "viewer")
    assert code == 0 and f"{user} is now viewer on penguins" in out, err
    code, out, err = sy(url, admin, "tokens", "create", "--user", user, "--scope", "models:read", "--scope",
                        "models:promote", "--scope", "audit:read", "--project", "penguins", "--json")
    assert code == 0, err
    return str(json.loads(out)["token"])


def test_a_viewer_cannot_move_the_champion_an_admin_can(server, sy) -> None:  # type: ignore[no-untyped-def]
    url, admin, _, _ = server
    viewer = _viewer_token(sy, url, admin)
    code, out, err = sy(url, viewer, "models", "list", MODEL, "--json")
    assert code == 0 and [v["version"] for v in json.loads(out)] == [1, 2], err
    code, out, err = sy(url, viewer, "models", "alias", MODEL, "champion", "1")
    assert code == 2 and "answered 403" in err and "models:promote" in err, (out, err)
    code, out, err = sy(url, admin, "models", "alias", MODEL, "champion", "2")  # never gated: a refused check
    assert code == 1 and "answered 422" in err and "shipyard gate" in err, (out, err)
    code, out, err = sy(url, admin, "models", "alias", MODEL, "champion", "1")
    assert code == 0 and out.strip() == f"{MODEL}@champion -> version 1", err
    code, out, err = sy(url, viewer, "models", "show", f"{MODEL}@champion", "--json")
    assert code == 0 and json.loads(out)["version"] == 1 and json.loads(out)["aliases"] == ["champion"], err
    code, out, err = sy(url, viewer, "audit", "log")  # audit:read is a maintainer's
    assert code == 2 and "does not grant audit:read" in err, (out, err)
    code, out, err = sy(url, admin, "audit", "log", "--actor", "admin", "--kind", "model.alias", "--json")
    assert code == 0 and [e["subject"] for e in json.loads(out)] == [f"{MODEL}@champion"], (out, err)
    code, out, err = sy(url, admin, "audit", "verify")
    assert code == 0 and "audit log intact" in out, err
    code, out, err = sy(url, viewer, "tokens", "list")  # admin routes: a viewer is refused
    assert code == 2 and "answered 403" in err, (out, err)


def test_runs_metrics_rollouts_and_triggers_come_from_the_server(server, sy) -> None:  # type: ignore[no-untyped-def]
    url, admin, run_id, _ = server
    code, out, err = sy(url, admin, "runs", "list")
    assert code == 0 and run_id[:8] in out and "accuracy=0.93" in out, err
    code, out, err = sy(url, admin, "runs", "show", run_id[:8], "--json")
    assert code == 0 and json.loads(out)["params"] == {"depth": "3"}, err
    code, out, err = sy(url, admin, "metrics", "show", "latest")
    assert code == 0 and "accuracy\t0.93" in out, err
    code, out, err = sy(url, admin, "rollout", "status")
    assert code == 0 and "no rollouts yet" in out, err
    code, out, err = sy(url, admin, "rollout", "abort", MODEL)  # no rollout: a 404, as locally (exit 2)
    assert code == 2 and "answered 404" in err, (out, err)
    code, out, err = sy(url, admin, "triggers", "list", "--json")
    assert code == 0 and json.loads(out) == [], err
    code, out, err = sy(url, admin, "runs", "show", "nosuchrun")
    assert code == 2 and "answered 404" in err, (out, err)


def test_tokens_made_and_revoked_over_http(server, sy) -> None:  # type: ignore[no-untyped-def]
    url, admin, _, _ = server
    assert sy(url, admin, "users", "add", "ci-bot", "--service-account", "--project", "penguins")[0] == 0
    code, out, err = sy(url, admin, "tokens", "create", "--user", "ci-bot", "--scope", "runs:read", "--json")
    assert code == 0, err
    made = json.loads(out)
    assert made["owner"] == "ci-bot" and made["project"] == "penguins" and made["token"].startswith("shp_")
    code, out, _ = sy(url, admin, "tokens", "list", "--user", "ci-bot", "--json")
    assert [t["prefix"] for t in json.loads(out)] == [made["prefix"]]
    code, out, err = sy(url, admin, "tokens", "revoke", made["token"])  # the secret itself: sent as its prefix
    assert code == 0 and f"token {made['prefix']} of ci-bot revoked" in out, err
    code, out, _ = sy(url, admin, "users", "list", "--json")
    assert {"admin", "ci-bot"} <= {u["name"] for u in json.loads(out)}


def test_wrong_url_missing_token_and_local_commands(server, sy) -> None:  # type: ignore[no-untyped-def]
    url, _, _, _ = server
    code, out, err = sy(url, None, "models", "list")
    assert code == 2 and "answered 401" in err and "SHIPYARD_TOKEN" in err, (out, err)
    dead = f"http://127.0.0.1:{free_port()}"
    code, out, err = sy(dead, "shp_x", "runs", "list")
    assert code == 2 and f"SHIPYARD_SERVER_URL={dead}" in err, (out, err)
    code, out, err = sy("127.0.0.1:5000", "shp_x", "runs", "list")
    assert code == 2 and "SHIPYARD_SERVER_URL='127.0.0.1:5000' is not an http(s):// URL" in err, (out, err)
    code, out, err = sy(url, None, "dag")  # needs a local project: runs locally and says so, once
    assert err.count("runs locally") == 1 and "'shipyard dag' runs locally" in err, err


def test_an_unknown_certificate_authority_is_refused(server, sy, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    url, admin, _, _ = server
    assert url.startswith("https://")
    monkeypatch.delenv("SHIPYARD_CA_BUNDLE")
    code, out, err = sy(url, admin, "users", "list")
    assert code == 2 and "certificate" in err.lower() and "SHIPYARD_CA_BUNDLE" in err, (out, err)


def test_a_maintainer_trusts_a_version_on_the_server_a_viewer_cannot(server, sy) -> None:  # type: ignore[no-untyped-def]
    url, admin, _, _ = server
    viewer = _viewer_token(sy, url, admin, "tom")
    code, out, err = sy(url, viewer, "models", "trust", f"{PICKLED}@1")
    assert code == 2 and "answered 403" in err and "models:promote" in err, (out, err)
    code, out, err = sy(url, admin, "models", "trust", f"{PICKLED}@9")
    assert code == 2 and "answered 404" in err, (out, err)
    code, out, err = sy(url, admin, "models", "trust", f"{PICKLED}@1", "--reason", "our model", "--json")
    assert code == 0 and json.loads(out)["trusted"] and json.loads(out)["changed"], err
    code, out, err = sy(url, admin, "models", "trust", f"{PICKLED}@1")
    assert code == 0 and "(it already was)" in out, err
    code, out, err = sy(url, admin, "audit", "log", "--kind", "model.trust", "--json")
    events = json.loads(out)
    assert code == 0 and [e["subject"] for e in events] == [f"{PICKLED}@1"], err
    assert events[0]["actor"].startswith("admin via shp_") and "our model" in json.dumps(events[0]), events
