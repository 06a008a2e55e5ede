"""MLflow 3 logged models over REST in process: the shapes, codes and messages the 3.17.2 client expects."""

from __future__ import annotations

import pytest
from starlette.testclient import TestClient

from shipyard.server.app import create_app
from shipyard.workspace import Workspace

API = "/api/2.0/mlflow"
PROXY = "/api/2.0/mlflow-artifacts/artifacts"


@pytest.fixture
def client(project: Workspace):  # type: ignore[no-untyped-def]
    with TestClient(create_app(project), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def exp_run(client: TestClient) -> tuple[str, str]:
    exp = client.post(f"{API}/experiments/create", json={"name": "e"}).json()["experiment_id"]
    run = client.post(f"{API}/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
    return exp, run


def _error(response, status: int, code: str, words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == code and words in response.json()["message"], response.json()


def _create(client: TestClient, exp: str, run: str, **extra: object) -> dict:
    body = {"experiment_id": exp, "name": "model", "source_run_id": run, "model_type": "sklearn",
            "tags": [{"key": "mlflow.source.name", "value": "train.py"}], "params": [{"key": "C", "value": "1.0"}],
            **extra}
    response = client.post(f"{API}/logged-models", json=body)
    assert response.status_code == 200, response.text
    return response.json()["model"]


def test_create_upload_finalize_get(client: TestClient, exp_run: tuple[str, str]) -> None:
    exp, run = exp_run
    model = _create(client, exp, run)
    info = model["info"]
    model_id = info["model_id"]
    assert info["status"] == "LOGGED_MODEL_PENDING" and info["experiment_id"] == exp and info["source_run_id"] == run
    assert info["artifact_uri"] == f"mlflow-artifacts:/{exp}/models/{model_id}/artifacts"
    assert model["data"]["params"] == [{"key": "C", "value": "1.0"}]
    base = f"{PROXY}/{exp}/models/{model_id}/artifacts"
    assert client.put(f"{base}/MLmodel", content=b"flavors: {}\n").status_code == 200
    assert client.put(f"{base}/data/model.pkl", content=b"\x80\x04.").status_code == 200
    listing = client.get(PROXY, params={"path": f"{exp}/models/{model_id}/artifacts"}).json()["files"]
    assert listing == [{"path": "MLmodel", "is_dir": False, "file_size": 12}, {"path": "data", "is_dir": True}]
    assert client.get(f"{base}/data/model.pkl").content == b"\x80\x04."
    done = client.patch(f"{API}/logged-models/{model_id}", json={"model_id": model_id, "status": "LOGGED_MODEL_READY"})
    assert done.json()["model"]["info"]["status"] == "LOGGED_MODEL_READY"
    got = client.get(f"{API}/logged-models/{model_id}").json()["model"]["info"]
    assert got["status"] == "LOGGED_MODEL_READY" and got["tags"] == [{"key": "mlflow.source.name", "value": "train.py"}]
    directories = client.get(f"{API}/logged-models/{model_id}/artifacts/directories",
                             params={"artifact_directory_path": "data"}).json()
    assert directories["files"] == [{"path": "data/model.pkl", "is_dir": False, "file_size": 3}]


def test_tags_params_delete(client: TestClient, exp_run: tuple[str, str]) -> None:
    exp, run = exp_run
    model_id = _create(client, exp, run)["info"]["model_id"]
    assert client.patch(f"{API}/logged-models/{model_id}/tags", json={"tags": [{"key": "k", "value": "v"}]}).status_code == 200
    assert client.post(f"{API}/logged-models/{model_id}/params",
                       json={"model_id": model_id, "params": [{"key": "depth", "value": "3"}]}).status_code == 200
    got = client.get(f"{API}/logged-models/{model_id}").json()["model"]
    assert {t["key"] for t in got["info"]["tags"]} == {"k", "mlflow.source.name"}
    assert {p["key"] for p in got["data"]["params"]} == {"C", "depth"}
    assert client.delete(f"{API}/logged-models/{model_id}/tags/k").status_code == 200
    _error(client.delete(f"{API}/logged-models/{model_id}/tags/k"), 404, "RESOURCE_DOES_NOT_EXIST", "No tag with key 'k'")
    assert client.delete(f"{API}/logged-models/{model_id}").status_code == 200
    _error(client.get(f"{API}/logged-models/{model_id}"), 404, "RESOURCE_DOES_NOT_EXIST",
           f"Logged model with ID '{model_id}' not found.")
    assert client.get(f"{API}/logged-models/{model_id}", params={"allow_deleted": "true"}).status_code == 200


def test_search_by_name_and_run(client: TestClient, exp_run: tuple[str, str]) -> None:
    exp, run = exp_run
    ids = [_create(client, exp, run, name=f"m{i}")["info"]["model_id"] for i in range(3)]
    found = client.post(f"{API}/logged-models/search", json={"experiment_ids": [exp], "filter": "name = 'm1'"}).json()
    assert [m["info"]["model_id"] for m in found["models"]] == [ids[1]]
    page = client.post(f"{API}/logged-models/search", json={"experiment_ids": [exp], "max_results": 2}).json()
    rest = client.post(f"{API}/logged-models/search",
                       json={"experiment_ids": [exp], "max_results": 2, "page_token": page["next_page_token"]}).json()
    assert len(page["models"]) == 2 and len(rest["models"]) == 1 and "next_page_token" not in rest
    ordered = client.post(f"{API}/logged-models/search", json={
        "experiment_ids": [exp], "order_by": [{"field_name": "name", "ascending": False}]}).json()
    assert [m["info"]["name"] for m in ordered["models"]] == ["m2", "m1", "m0"]


@pytest.mark.parametrize(("body", "status", "code", "words"), [
    ({}, 400, "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'experiment_id'."),
    ({"experiment_id": "1", "name": "a/b"}, 400, "INVALID_PARAMETER_VALUE", "Invalid model name ('a/b') provided."),
    ({"experiment_id": "1", "tags": "x"}, 400, "INVALID_PARAMETER_VALUE", "Invalid value \"x\" for parameter 'tags'"),
    ({"experiment_id": "999"}, 404, "RESOURCE_DOES_NOT_EXIST", "No Experiment with id=999 exists"),
])
def test_create_mistakes_are_4xx(client: TestClient, exp_run: tuple[str, str], body: dict, status: int, code: str,
                                 words: str) -> None:
    _error(client.post(f"{API}/logged-models", json=body), status, code, words)


def test_finalize_and_search_mistakes(client: TestClient, exp_run: tuple[str, str]) -> None:
    exp, run = exp_run
    model_id = _create(client, exp, run)["info"]["model_id"]
    _error(client.patch(f"{API}/logged-models/{model_id}", json={"model_id": model_id}), 400,
           "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'status'.")
    _error(client.patch(f"{API}/logged-models/{model_id}", json={"model_id": model_id, "status": "DONE"}), 400,
           "INVALID_PARAMETER_VALUE", "Invalid value \"DONE\" for parameter 'status' supplied")
    _error(client.post(f"{API}/logged-models/search", json={}), 400, "INVALID_PARAMETER_VALUE",
           "Missing value for required parameter 'experiment_ids'.")
    _error(client.post(f"{API}/logged-models/search", json={"experiment_ids": [exp], "filter": "colour = 'red'"}), 400,
           "INVALID_PARAMETER_VALUE", "Invalid attribute key 'colour'")
    _error(client.put(f"{PROXY}/{exp}/models/m-{'0' * 32}/artifacts/MLmodel", content=b"x"), 404,
           "RESOURCE_DOES_NOT_EXIST", "not found")
    _error(client.put(f"{PROXY}/{exp}/models/{model_id}/artifacts/..%2F..%2Fetc", content=b"x"), 400,
           "INVALID_PARAMETER_VALUE", "'..'")


def test_run_outputs_and_inputs_name_models(client: TestClient, exp_run: tuple[str, str]) -> None:
    exp, run = exp_run
    model_id = _create(client, exp, run)["info"]["model_id"]
    assert client.post(f"{API}/runs/outputs", json={"run_id": run, "models": [{"model_id": model_id, "step": 3}]}).status_code == 200
    assert client.post(f"{API}/runs/log-inputs", json={"run_id": run, "models": [{"model_id": model_id}]}).status_code == 200
    got = client.get(f"{API}/runs/get", params={"run_id": run}).json()["run"]
    assert got["outputs"]["model_outputs"] == [{"model_id": model_id, "step": 3}]
    assert got["inputs"]["model_inputs"] == [{"model_id": model_id}]
    _error(client.post(f"{API}/runs/outputs", json={"run_id": run}), 400, "INVALID_PARAMETER_VALUE",
           "Missing value for required parameter 'models'.")
    _error(client.post(f"{API}/runs/outputs", json={"run_id": run, "models": [{"model_id": f"m-{'1' * 32}"}]}), 404,
           "RESOURCE_DOES_NOT_EXIST", "not found")


@pytest.mark.parametrize("path", [
    "/api/2.0/mlflow/traces", "/api/3.0/mlflow/traces/search", "/api/2.0/mlflow/registered-models/create-prompt",
    "/api/3.0/mlflow/datasets/create", "/api/3.0/mlflow/gateway/secrets/create", "/api/2.0/mlflow/scorers/register",
])
def test_genai_surfaces_answer_endpoint_not_found(client: TestClient, path: str) -> None:
    _error(client.post(path, json={}), 404, "ENDPOINT_NOT_FOUND", "no route")
