"""The MLflow registry routes in process: shapes, tags, search, sources, the alias rules, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from shipyard.server.app import ROUTE_MODULES, create_app
from shipyard.workspace import Workspace

API = "/api/2.0/mlflow"


@pytest.fixture
def client(project: Workspace):  # type: ignore[no-untyped-def]
    with TestClient(create_app(project), raise_server_exceptions=False) as c:
        yield c


def _error(response, status: int, code: str, words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert words in body["message"], body


def _run_with_mlflow_model(project: Workspace, tmp_path: Path, serialization: str = "skops") -> str:
    """A run whose artifacts hold an MLflow sklearn model under ``model/`` (saved by mlflow itself)."""
    import mlflow.sklearn
    import numpy as np
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    from shipyard.tracking import service

    frame = pd.DataFrame({"a": np.linspace(0, 1, 40), "b": np.linspace(1, 0, 40) ** 2})
    target = np.where(frame["a"] > 0.5, "yes", "no")
    model = LogisticRegression().fit(frame, target)
    folder = tmp_path / f"mlflow-{serialization}"
    mlflow.sklearn.save_model(model, folder, serialization_format=serialization,
                              signature=infer_signature(frame, model.predict(frame)))
    with project.store.write() as session:
        run_id = service.create_run(session, experiment="exp", name="train")
    service.store_artifacts(project.store, project.objects, run_id, service.artifact_files(folder, "model"))
    return run_id


def test_mounted() -> None:
    assert "shipyard.server.mlflow_registry" in ROUTE_MODULES


def test_create_get_search_update_delete(client: TestClient) -> None:
    made = client.post(f"{API}/registered-models/create", json={"name": "m", "tags": [{"key": "t", "value": "1"}]})
    assert made.status_code == 200 and made.json()["registered_model"]["tags"] == [{"key": "t", "value": "1"}]
    _error(client.post(f"{API}/registered-models/create", json={"name": "m"}), 400, "RESOURCE_ALREADY_EXISTS", "already exists")  # 400 as MLflow
    v = client.post(f"{API}/model-versions/create", json={"name": "m", "source": "s3://bucket/m/1"}).json()["model_version"]
    assert v["version"] == "1" and v["status"] == "READY" and v["source"] == "s3://bucket/m/1"  # recorded, never read
    got = client.get(f"{API}/registered-models/get", params={"name": "m"}).json()["registered_model"]
    assert got["latest_versions"][0]["version"] == "1"
    assert client.patch(f"{API}/model-versions/update", json={"name": "m", "version": "1", "description": "d"}).json()[
        "model_version"]["description"] == "d"
    client.post(f"{API}/registered-models/create", json={"name": "other"})
    found = client.get(f"{API}/registered-models/search", params={"filter": "name LIKE 'm%' AND tags.t = '1'"}).json()
    assert [m["name"] for m in found["registered_models"]] == ["m"]
    paged = client.get(f"{API}/registered-models/search", params={"max_results": "1"}).json()
    assert [m["name"] for m in paged["registered_models"]] == ["m"]
    rest = client.get(f"{API}/registered-models/search", params={"max_results": "1", "page_token": paged["next_page_token"]})
    assert [m["name"] for m in rest.json()["registered_models"]] == ["other"] and "next_page_token" not in rest.json()
    assert client.request("DELETE", f"{API}/registered-models/delete", json={"name": "m"}).status_code == 200
    _error(client.get(f"{API}/registered-models/get", params={"name": "m"}), 404, "RESOURCE_DOES_NOT_EXIST",
           "Registered Model with name=m not found")


def test_tags_of_models_and_versions(client: TestClient) -> None:
    client.post(f"{API}/registered-models/create", json={"name": "m"})
    client.post(f"{API}/model-versions/create", json={"name": "m", "source": "s3://b/1"})
    assert client.post(f"{API}/registered-models/set-tag", json={"name": "m", "key": "team", "value": "birds"}).status_code == 200
    assert client.post(f"{API}/model-versions/set-tag",
                       json={"name": "m", "version": "1", "key": "ok", "value": "yes"}).status_code == 200
    model = client.get(f"{API}/registered-models/get", params={"name": "m"}).json()["registered_model"]
    assert model["tags"] == [{"key": "team", "value": "birds"}]
    assert model["latest_versions"][0]["tags"] == [{"key": "ok", "value": "yes"}]
    assert client.request("DELETE", f"{API}/registered-models/delete-tag", json={"name": "m", "key": "team"}).status_code == 200
    assert client.request("DELETE", f"{API}/model-versions/delete-tag",
                          json={"name": "m", "version": "1", "key": "ok"}).status_code == 200
    assert client.get(f"{API}/model-versions/get", params={"name": "m", "version": "1"}).json()["model_version"]["tags"] == []
    _error(client.request("DELETE", f"{API}/registered-models/delete-tag", json={"name": "m", "key": "team"}),
           404, "RESOURCE_DOES_NOT_EXIST", "No tag with name: team")
    _error(client.post(f"{API}/registered-models/set-tag", json={"name": "m", "key": "../x", "value": "1"}),
           400, "INVALID_PARAMETER_VALUE", "Invalid value \"../x\" for parameter 'key' supplied")
    _error(client.post(f"{API}/model-versions/set-tag", json={"name": "m", "version": "1", "key": "k", "value": "x" * 100_001}),
           400, "INVALID_PARAMETER_VALUE", "'value' exceeds the maximum length of 100000 characters")


def test_search_versions_grammar_order_and_pages(client: TestClient) -> None:
    for name, sources in (("alpha", ["s3://b/a1", "s3://b/a2", "s3://b/a3"]), ("beta", ["s3://b/b1"])):
        client.post(f"{API}/registered-models/create", json={"name": name})
        for source in sources:
            client.post(f"{API}/model-versions/create", json={"name": name, "source": source,
                                                               "tags": [{"key": "src", "value": source[-2:]}]})

    def refs(**params: str) -> list[str]:
        response = client.get(f"{API}/model-versions/search", params=params)
        assert response.status_code == 200, response.text
        return [f"{v['name']}/{v['version']}" for v in response.json()["model_versions"]]

    assert refs(filter="name = 'alpha'", order_by="version_number ASC") == ["alpha/1", "alpha/2", "alpha/3"]
    assert refs(filter="name != 'alpha'") == ["beta/1"]
    assert refs(filter="name IN ('beta', 'nope')") == ["beta/1"]
    assert refs(filter="name ILIKE 'ALP%' AND version_number >= 2", order_by="version_number DESC") == ["alpha/3", "alpha/2"]
    assert refs(filter="name LIKE 'ALP%'") == []
    assert refs(filter="source_path = 's3://b/a2'") == ["alpha/2"]
    assert refs(filter="tags.src = 'b1'") == ["beta/1"] and refs(filter="tag.`src` LIKE 'a%'", order_by="name") == [
        "alpha/3", "alpha/2", "alpha/1"]
    first = client.get(f"{API}/model-versions/search", params={"max_results": "3", "order_by": "name"}).json()
    assert len(first["model_versions"]) == 3
    second = client.get(f"{API}/model-versions/search",
                        params={"max_results": "3", "order_by": "name", "page_token": first["next_page_token"]}).json()
    assert [v["name"] for v in second["model_versions"]] == ["beta"] and "next_page_token" not in second


@pytest.mark.parametrize(("params", "words"), [
    ({"filter": "name = 'm' OR name = 'n'"}, "Invalid clause(s) in filter string: 'OR'"),
    ({"filter": "flavor = 'x'"}, "Invalid attribute key 'flavor' specified"),
    ({"filter": "metrics.acc > 1"}, "Invalid entity type 'metrics'"),
    ({"filter": "version_number = 'x'"}, "Expected an integer value for attribute version_number"),
    ({"filter": "source_path IN ('a')"}, "support IN and NOT IN"),
    ({"filter": "name = alpha"}, "Expected a quoted string value"),
    ({"order_by": "flavor"}, "Invalid order by key 'flavor'"),
    ({"max_results": "0"}, "It must be a positive integer"),
    ({"max_results": "200001"}, "It must be at most 200000"),
])
def test_search_versions_refuses_what_mlflow_refuses(client: TestClient, params: dict[str, str], words: str) -> None:
    _error(client.get(f"{API}/model-versions/search", params=params), 400, "INVALID_PARAMETER_VALUE", words)


@pytest.mark.parametrize(("body", "words"), [
    ({"source": "/etc"}, "Invalid model version source: '/etc'. To use a local path as a model version source, "
                         "the run_id request parameter has to be specified"),
    ({"source": "file:///etc/passwd"}, "To use a local path as a model version source"),
    ({"source": "/etc", "run_id": "0" * 32}, "To use a local path as a model version source"),
    ({"source": "s3://bucket/../../etc"}, "an absolute path must be provided without relative path references"),
    ({"source": "s3://bucket/%2e%2e/%2e%2e/etc"}, "without relative path references"),
    ({"source": "runs:/abc/model"}, "The run_id request parameter must identify the resource"),
    ({"source": "models:/m-123"}, "The model_id request parameter must identify the resource"),
    ({"source": "models:/m-123", "model_id": "m-123"}, "The model_id request parameter must identify the resource"),
    ({"source": "mlflow-artifacts:/1/abc/artifacts/model"}, "The run_id request parameter must identify"),
])
def test_version_sources_mlflow_refuses(client: TestClient, body: dict[str, str], words: str) -> None:
    client.post(f"{API}/registered-models/create", json={"name": "m"})
    _error(client.post(f"{API}/model-versions/create", json={"name": "m", **body}), 400, "INVALID_PARAMETER_VALUE", words)
    assert client.get(f"{API}/model-versions/search", params={"filter": "name = 'm'"}).json().get("model_versions", []) == []


def test_any_remote_source_with_an_unknown_run_is_recorded(client: TestClient, project: Workspace) -> None:
    from shipyard.registry import resolve

    made = client.post(f"{API}/model-versions/create",
                       json={"name": "m", "source": "s3://bucket/model", "run_id": "f" * 32})
    assert made.status_code == 200, made.text
    assert made.json()["model_version"]["run_id"] == "f" * 32 and made.json()["model_version"]["tags"] == []
    # runs:/ of a run this server never saw: MLflow accepts it; nothing to read, so it is recorded
    made = client.post(f"{API}/model-versions/create", json={"name": "m", "source": "runs:/r1/model", "run_id": "r1"})
    assert made.status_code == 200, made.text
    with project.store.read() as session:
        mv = resolve(session, "m@2")
    assert mv.flavor == "external" and "r1" in mv.lineage["mlflow"]["unpackaged"]   # why it was not read


def test_rename_and_delete_versions_as_mlflow(client: TestClient, project: Workspace) -> None:
    for _ in range(3):
        client.post(f"{API}/model-versions/create", json={"name": "m", "source": "s3://b/x"})
    renamed = client.post(f"{API}/registered-models/rename", json={"name": "m", "new_name": "n"})
    assert renamed.status_code == 200 and renamed.json()["registered_model"]["name"] == "n"
    _error(client.get(f"{API}/registered-models/get", params={"name": "m"}), 404, "RESOURCE_DOES_NOT_EXIST",
           "Registered Model with name=m not found")
    client.post(f"{API}/registered-models/alias", json={"name": "n", "alias": "staging", "version": "3"})
    assert client.request("DELETE", f"{API}/model-versions/delete", json={"name": "n", "version": "3"}).status_code == 200
    _error(client.request("DELETE", f"{API}/model-versions/delete", json={"name": "n", "version": "3"}),
           404, "RESOURCE_DOES_NOT_EXIST", "Model Version (name=n, version=3) not found")
    model = client.get(f"{API}/registered-models/get", params={"name": "n"}).json()["registered_model"]
    assert model["aliases"] == [] and model["latest_versions"][0]["version"] == "2"
    again = client.post(f"{API}/model-versions/create", json={"name": "n", "source": "s3://b/y"}).json()
    assert again["model_version"]["version"] == "4"   # numbers are never reused
    with project.store.write() as session:
        from shipyard.registry import record_verdict

        record_verdict(session, "n@4", {"passed": True, "checks": []}, "ok")
    assert client.post(f"{API}/registered-models/alias", json={"name": "n", "alias": "champion", "version": "4"}).status_code == 200
    _error(client.request("DELETE", f"{API}/model-versions/delete", json={"name": "n", "version": "4"}),
           403, "PERMISSION_DENIED", "n@4 is the champion; refusing to delete it")


@pytest.mark.parametrize(("serialization", "flavor", "trusted"), [("skops", "sklearn", True), ("cloudpickle", "pickle", False)])
def test_runs_source_becomes_a_loadable_version(client: TestClient, project: Workspace, tmp_path: Path,
                                                serialization: str, flavor: str, trusted: bool) -> None:
    import pandas as pd

    from shipyard.errors import UnsafeModel
    from shipyard.models import load_model
    from shipyard.registry import resolve

    run_id = _run_with_mlflow_model(project, tmp_path, serialization)
    made = client.post(f"{API}/model-versions/create", json={"name": "m", "source": f"runs:/{run_id}/model", "run_id": run_id})
    assert made.status_code == 200, made.text
    with project.store.read() as session:
        mv = resolve(session, "m@1")
    assert mv.flavor == flavor and mv.run_id == run_id and mv.signature is not None
    assert mv.signature.columns == ["a", "b"] and mv.lineage["mlflow"]["serialization"] == serialization
    frame = pd.DataFrame({"a": [0.1, 0.9], "b": [0.5, 0.5]})
    if not trusted:
        with pytest.raises(UnsafeModel, match="refusing without trust"):
            load_model(project.objects, mv.model_oid, mv.flavor)
    loaded = load_model(project.objects, mv.model_oid, mv.flavor, trust=not trusted)
    assert list(loaded.predict(frame)) == ["no", "yes"]
    # the run's artifact URI (what MLflow's client sends for runs:/ with an MLmodel) reads the same files
    again = client.post(f"{API}/model-versions/create", json={
        "name": "m", "source": f"mlflow-artifacts:/1/{run_id}/artifacts/model", "run_id": run_id})
    assert again.status_code == 200, again.text
    with project.store.read() as session:
        assert resolve(session, "m@2").content_oid == mv.content_oid


def test_alias_rules_over_rest(client: TestClient) -> None:
    client.post(f"{API}/registered-models/create", json={"name": "m"})
    client.post(f"{API}/model-versions/create", json={"name": "m", "source": "s3://b/s"})
    assert client.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "staging", "version": "1"}).status_code == 200
    assert client.get(f"{API}/registered-models/alias", params={"name": "m", "alias": "staging"}).json()["model_version"]["aliases"] == ["staging"]
    _error(client.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "v3", "version": "1"}),
           400, "INVALID_PARAMETER_VALUE", "looks like a version")
    _error(client.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "champion", "version": "1"}),
           403, "PERMISSION_DENIED", "has no gate verdict; refusing to make it champion. Gate it first: shipyard gate m@1")
    _error(client.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "x", "version": "9"}),
           404, "RESOURCE_DOES_NOT_EXIST", "no version 9")
    _error(client.get(f"{API}/model-versions/get", params={"name": "m", "version": "9"}),
           404, "RESOURCE_DOES_NOT_EXIST", "Model Version (name=m, version=9) not found")
    assert client.request("DELETE", f"{API}/registered-models/alias", json={"name": "m", "alias": "staging"}).status_code == 200
    _error(client.get(f"{API}/registered-models/alias", params={"name": "m", "alias": "staging"}), 404,
           "RESOURCE_DOES_NOT_EXIST", "Registered model alias staging not found")


@pytest.mark.parametrize(("method", "path", "kwargs", "words"), [
    ("POST", "/registered-models/create", {"json": {}}, "Missing value for required parameter 'name'."),
    ("POST", "/registered-models/create", {"json": {"name": "bad name"}}, "model name 'bad name' is not allowed"),
    ("POST", "/registered-models/create", {"json": {"name": "m", "tags": "x"}}, "Invalid value \"x\" for parameter 'tags'"),
    ("POST", "/model-versions/create", {"json": {"name": "m"}}, "Missing value for required parameter 'source'."),
    ("POST", "/model-versions/create", {"json": {"name": "m", "source": 3}},
     "Invalid value 3 for parameter 'source' supplied:  Hint: Value was of type 'int'."),
    ("GET", "/model-versions/get", {"params": {"name": "m", "version": "one"}}, "Parameter 'version' must be an integer, got 'one'."),
    ("POST", "/registered-models/set-tag", {"json": {"name": "m"}}, "Missing value for required parameter 'key'."),
    ("GET", "/registered-models/search", {"params": {"max_results": "1001"}}, "It must be at most 1000"),
    ("POST", "/registered-models/alias", {"content": b"{not json"}, "not valid JSON"),
])
def test_bad_input_names_the_field(client: TestClient, method, path, kwargs, words) -> None:  # type: ignore[no-untyped-def]
    response = client.request(method, API + path, **kwargs)
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]


def _logged_model_with_mlflow_model(project: Workspace, tmp_path: Path) -> tuple[str, str, str]:
    """(model_id, its run, its artifact location): a logged model holding an MLflow sklearn model."""
    from shipyard.store import runs as runs_repo
    from shipyard.tracking import logged_models

    run_id = _run_with_mlflow_model(project, tmp_path)
    with project.store.read() as session:
        experiment_id = session.get(runs_repo.Run, run_id).experiment_id
    model = logged_models.create(project.store, experiment_id, name="model", source_run_id=run_id)
    for file in sorted((tmp_path / "mlflow-skops").iterdir()):
        logged_models.store_artifact(project.store, project.objects, model.model_id, file.name, file.read_bytes())
    return model.model_id, run_id, model.artifact_location


def test_logged_model_sources(client: TestClient, project: Workspace, tmp_path: Path) -> None:
    from shipyard.registry import resolve

    model_id, run_id, location = _logged_model_with_mlflow_model(project, tmp_path)
    made = client.post(f"{API}/model-versions/create",
                       json={"name": "m", "source": f"models:/{model_id}", "model_id": model_id})
    assert made.status_code == 200, made.text
    body = made.json()["model_version"]
    assert body["model_id"] == model_id and body["run_id"] == run_id   # the logged model's source run
    # the logged model's artifact URI with its model_id reads the same files
    again = client.post(f"{API}/model-versions/create", json={"name": "m", "source": location, "model_id": model_id})
    assert again.status_code == 200, again.text
    with project.store.read() as session:
        first, second = resolve(session, "m@1"), resolve(session, "m@2")
    assert first.flavor == second.flavor == "sklearn" and first.content_oid == second.content_oid
    uri = client.get(f"{API}/model-versions/get-download-uri", params={"name": "m", "version": "1"})
    assert uri.json() == {"artifact_uri": location}
    latest = client.get(f"{API}/registered-models/get-latest-versions", params={"name": "m", "stages": "None"})
    assert [v["version"] for v in latest.json()["model_versions"]] == ["2"]
    assert client.get(f"{API}/registered-models/get-latest-versions",
                      params={"name": "m", "stages": "Production"}).json() == {"model_versions": []}
    _error(client.post(f"{API}/model-versions/create",
                       json={"name": "m", "source": location.replace(model_id, "m-0"), "model_id": model_id}),
           400, "INVALID_PARAMETER_VALUE", "The model_id request parameter must identify the resource")
    _error(client.post(f"{API}/model-versions/create",
                       json={"name": "m", "source": f"runs:/{run_id}/model", "model_id": model_id}),
           400, "INVALID_PARAMETER_VALUE", "The model_id request parameter must identify the resource")
