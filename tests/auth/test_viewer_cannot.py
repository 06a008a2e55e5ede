"""What a viewer cannot do over HTTP, through the wired server (``create_app(auth_project=...)``) on
uvicorn, with the real MLflow client: move an alias (the champion or any other), upload an artifact
(Shipyard's run route, MLflow's artifact proxy for runs and for logged models), approve a retrain
trigger or pause/promote/abort a rollout (an editor cannot either: deploy:write). Nothing changes.

A token's scopes narrow its owner's role: an editor token limited to runs:write uploads a run's files
but not a logged model's (they sit under the same proxy route; the path decides).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from requests import HTTPError

from shipyard.auth import credentials
from shipyard.server.app import create_app
from tests.auth.live import serve
from tests.auth.people import role_tokens

ALL = ["runs:read", "runs:write", "models:read", "models:write", "models:promote", "deploy:write", "gateway:invoke",
       "audit:read"]
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def server(project) -> Iterator[tuple[str, dict[str, str], object]]:  # type: ignore[no-untyped-def]
    store = project.store
    made = role_tokens(store, ALL)
    made["runs_only"] = credentials.create_token(store, "eddie", scopes=["runs:read", "runs:write"], actor="ops")[0]
    with serve(create_app(project, auth_project="penguins")) as url:
        yield url, made, project.store


def _mlflow(monkeypatch: pytest.MonkeyPatch, url: str, token: str):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    return MlflowClient(tracking_uri=url)


def _denied(call, permission: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException) as refused:
        call()
    assert refused.value.error_code == "PERMISSION_DENIED" and permission in refused.value.message, refused.value


def test_a_viewer_cannot_move_an_alias(server, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from shipyard import registry

    url, made, store = server
    maintainer = _mlflow(monkeypatch, url, made["maintainer"])
    run = maintainer.create_run(maintainer.create_experiment("aliases"))
    maintainer.create_registered_model("penguin-species")
    version = maintainer.create_model_version("penguin-species", f"runs:/{run.info.run_id}/model", run.info.run_id)
    with store.write() as session:  # the champion needs a passing gate verdict (shipyard gate does this)
        registry.record_verdict(session, f"penguin-species@{version.version}", {"passed": True, "checks": []}, "passed")
    maintainer.set_registered_model_alias("penguin-species", "champion", version.version)
    viewer = _mlflow(monkeypatch, url, made["viewer"])
    assert viewer.get_model_version_by_alias("penguin-species", "champion").version == version.version  # reads
    _denied(lambda: viewer.set_registered_model_alias("penguin-species", "champion", version.version), "models:promote")
    _denied(lambda: viewer.set_registered_model_alias("penguin-species", "staging", version.version), "models:write")
    _denied(lambda: viewer.delete_registered_model_alias("penguin-species", "champion"), "models:promote")
    assert viewer.get_registered_model("penguin-species").aliases == {"champion": version.version}


def test_a_viewer_cannot_upload_an_artifact(server, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url, made, _ = server
    editor = _mlflow(monkeypatch, url, made["editor"])
    experiment = editor.create_experiment("uploads")
    run_id = editor.create_run(experiment).info.run_id
    (tmp_path / "weights.bin").write_bytes(b"v1")
    editor.log_artifact(run_id, str(tmp_path / "weights.bin"))  # through the proxy: allowed for an editor
    viewer = _mlflow(monkeypatch, url, made["viewer"])
    (tmp_path / "weights.bin").write_bytes(b"overwritten")
    with pytest.raises(HTTPError) as upload:  # the client's artifact repository raises requests' error
        viewer.log_artifact(run_id, str(tmp_path / "weights.bin"))
    assert upload.value.response.status_code == 403 and "runs:write" in upload.value.response.text
    bearer = {"Authorization": f"Bearer {made['viewer']}"}
    own = httpx.put(f"{url}/api/v1/runs/{run_id}/artifacts/weights.bin", content=b"overwritten", headers=bearer)
    assert own.status_code == 403 and "runs:write" in own.json()["message"]
    proxied = httpx.put(f"{url}{ARTIFACTS}/{experiment}/{run_id}/artifacts/weights.bin", content=b"x", headers=bearer)
    assert proxied.status_code == 403
    kept = httpx.get(f"{url}/api/v1/runs/{run_id}/artifacts/weights.bin", headers=bearer)
    assert kept.status_code == 200 and kept.content == b"v1"


def test_a_logged_models_files_need_models_write(server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    url, made, _ = server
    editor = _mlflow(monkeypatch, url, made["editor"])
    experiment = editor.create_experiment("logged")
    run_id = editor.create_run(experiment).info.run_id
    model_id = editor.create_logged_model(experiment, source_run_id=run_id).model_id
    runs_only = {"Authorization": f"Bearer {made['runs_only']}"}
    model_file = f"{url}{ARTIFACTS}/{experiment}/models/{model_id}/artifacts/MLmodel"
    refused = httpx.put(model_file, content=b"flavors: {}", headers=runs_only)
    assert refused.status_code == 403 and "models:write" in refused.json()["message"]
    assert httpx.get(model_file, headers=runs_only).status_code == 403  # reading it needs models:read
    run_file = f"{url}{ARTIFACTS}/{experiment}/{run_id}/artifacts/notes.txt"
    assert httpx.put(run_file, content=b"ok", headers=runs_only).status_code == 200
    editor_token = {"Authorization": f"Bearer {made['editor']}"}
    assert httpx.put(model_file, content=b"flavors: {}", headers=editor_token).status_code == 200
    viewer = {"Authorization": f"Bearer {made['viewer']}"}
    assert httpx.put(model_file, content=b"changed", headers=viewer).status_code == 403
    assert httpx.get(model_file, headers=viewer).content == b"flavors: {}"


def _post(url: str, path: str, token: str) -> httpx.Response:
    return httpx.post(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=60)


def test_only_a_maintainer_approves_a_trigger(server) -> None:  # type: ignore[no-untyped-def]
    from shipyard.store import monitoring as repo

    url, made, store = server
    with store.write() as session:  # a retrained, gated version waiting for a person (as the monitor leaves it)
        waiting = repo.add_trigger(session, model="penguins", kind="rule", source="rule drift",
                                   state="awaiting_approval", reason="", fired=[], result={"version": 7}).id
    for who in ("viewer", "editor"):
        refused = _post(url, f"/api/v1/triggers/{waiting}/approve", made[who])
        assert refused.status_code == 403 and "deploy:write" in refused.json()["message"], refused.text
    with store.read() as session:
        assert session.get(repo.Trigger, waiting).state == "awaiting_approval"  # type: ignore[union-attr]
    approved = _post(url, f"/api/v1/triggers/{waiting}/approve", made["maintainer"])
    # accepted, so the rollout started; it fails here as penguins@7 was never registered in this project
    assert approved.status_code == 200, approved.text
    assert approved.json()["state"] == "failed" and "penguins@7" in approved.json()["reason"]
    again = _post(url, f"/api/v1/triggers/{waiting}/approve", made["maintainer"])
    assert again.status_code == 409 and "not awaiting approval" in again.json()["message"], again.text
    missing = _post(url, "/api/v1/triggers/999/approve", made["maintainer"])
    assert missing.status_code == 404 and "no trigger #999" in missing.json()["message"]
    bad = _post(url, "/api/v1/triggers/seven/approve", made["maintainer"])
    assert bad.status_code == 400 and "trigger_id" in bad.json()["message"]


def test_only_a_maintainer_aborts_a_rollout(server) -> None:  # type: ignore[no-untyped-def]
    from shipyard.store import serving as repo

    url, made, store = server
    with store.write() as session:  # a canary of version 2 against champion 1, at its first step
        rollout = repo.create_deployment(session, model="penguin-species", candidate=2, champion=1, strategy="canary",
                                         state="running", step=0, settings={"steps": [10, 100]}).id
    for who in ("viewer", "editor"):
        for action in ("abort", "pause", "promote"):
            refused = _post(url, f"/api/v1/rollouts/penguin-species/{action}", made[who])
            assert refused.status_code == 403 and "deploy:write" in refused.json()["message"], refused.text
    with store.read() as session:
        assert repo.get_deployments(session, [rollout])[rollout].state == "running"
    wrong = _post(url, "/api/v1/rollouts/penguin-species/resume", made["maintainer"])
    assert wrong.status_code == 409 and f"#{rollout}" in wrong.json()["message"], wrong.text
    unknown = _post(url, "/api/v1/rollouts/penguin-species/restart", made["maintainer"])
    assert unknown.status_code == 404 and "action" in unknown.json()["message"]
    aborted = _post(url, "/api/v1/rollouts/penguin-species/abort", made["maintainer"])
    assert aborted.status_code == 200, aborted.text
    assert aborted.json()["deployment"] == rollout and aborted.json()["to"] == "aborted"
    with store.read() as session:
        assert repo.get_deployments(session, [rollout])[rollout].state == "aborted"
    gone = _post(url, "/api/v1/rollouts/penguin-species/abort", made["maintainer"])
    assert gone.status_code == 404 and "no running or paused rollout" in gone.json()["message"]
