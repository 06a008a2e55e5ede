"""``shipyard server``'s own routes under the enforcement point, driven by the real MLflow client.

The app is ``create_app(project, auth_project=...)``, as ``shipyard server`` builds it, on uvicorn on
127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shipyard.server.app import collect_routes, create_app
from shipyard.server.security import SERVER_PUBLIC_PATHS, check_routes, server_policy
from tests.auth.live import serve
from tests.auth.people import role_tokens

ALL = ["runs:read", "runs:write", "models:read", "models:write", "models:promote", "deploy:write", "gateway:invoke",
       "audit:read"]


def test_every_route_of_the_server_is_declared() -> None:
    check_routes(collect_routes(), server_policy("penguins"), SERVER_PUBLIC_PATHS)


@pytest.fixture
def server(project) -> Iterator[tuple[str, dict[str, str]]]:  # type: ignore[no-untyped-def]
    store = project.store
    made = role_tokens(store, ALL)
    with serve(create_app(project, auth_project="penguins")) as url:
        yield url, made


def client(monkeypatch: pytest.MonkeyPatch, url: str, *, token: str | None = None, basic: str | None = None):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    for var in ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    if token:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    if basic:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "ci")
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", basic)
    return MlflowClient(tracking_uri=url)


def test_the_mlflow_client_with_each_credential_mode(server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    url, made = server
    editor = client(monkeypatch, url, token=made["editor"])  # MLFLOW_TRACKING_TOKEN: Bearer
    experiment = editor.create_experiment("auth-demo")
    run = editor.create_run(experiment)
    editor.log_metric(run.info.run_id, "loss", 0.5)
    basic = client(monkeypatch, url, basic=made["editor"])  # user + token as password: Basic
    basic.log_metric(run.info.run_id, "loss", 0.4, step=1)
    assert [m.value for m in basic.get_metric_history(run.info.run_id, "loss")] == [0.5, 0.4]
    viewer = client(monkeypatch, url, token=made["viewer"])
    assert viewer.get_run(run.info.run_id).info.run_id == run.info.run_id
    with pytest.raises(MlflowException) as refused:
        viewer.log_metric(run.info.run_id, "loss", 0.1)
    assert refused.value.error_code == "PERMISSION_DENIED" and "does not grant runs:write" in refused.value.message
    anonymous = client(monkeypatch, url)
    with pytest.raises(MlflowException) as unauthenticated:
        anonymous.search_experiments()
    assert unauthenticated.value.error_code == "UNAUTHENTICATED", unauthenticated.value


def test_only_a_maintainer_moves_the_champion(server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    url, made = server
    editor = client(monkeypatch, url, token=made["editor"])
    editor.create_registered_model("penguin-species")
    with pytest.raises(MlflowException) as refused:
        editor.set_registered_model_alias("penguin-species", "champion", "1")
    assert refused.value.error_code == "PERMISSION_DENIED" and "models:promote" in refused.value.message
    maintainer = client(monkeypatch, url, token=made["maintainer"])
    with pytest.raises(MlflowException) as past_auth:  # no version 1: the registry answers, not the guard
        maintainer.set_registered_model_alias("penguin-species", "champion", "1")
    assert past_auth.value.error_code != "PERMISSION_DENIED"
