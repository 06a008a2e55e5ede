"""The MLflow registry routes in process: shapes, the alias rules, and bad input naming the field."""

from __future__ import annotations

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


def test_mounted() -> None:
    assert "shipyard.server.mlflow_registry" in ROUTE_MODULES


def test_create_get_search_update_delete(client: TestClient) -> None:
    made = client.post(f"{API}/registered-models/create", json={"name": "m", "tags": [{"key": "t", "value": "1"}]})
    assert made.status_code == 200 and made.json()["registered_model"]["tags"] == [{"key": "t", "value": "1"}]
    _error(client.post(f"{API}/registered-models/create", json={"name": "m"}), 409, "RESOURCE_ALREADY_EXISTS", "already exists")
    v = client.post(f"{API}/model-versions/create", json={"name": "m", "source": "/etc/passwd"}).json()["model_version"]
    assert v["version"] == "1" and v["status"] == "READY" and v["source"] == "/etc/passwd"  # recorded, never read
    got = client.get(f"{API}/registered-models/get", params={"name": "m"}).json()["registered_model"]
    assert got["latest_versions"][0]["version"] == "1"
    assert client.patch(f"{API}/model-versions/update", json={"name": "m", "version": "1", "description": "d"}).json()[
        "model_version"]["description"] == "d"
    client.post(f"{API}/registered-models/create", json={"name": "other"})
    found = client.get(f"{API}/registered-models/search", params={"filter": "name LIKE 'm%' AND tags.t = '1'"}).json()
    assert [m["name"] for m in found["registered_models"]] == ["m"]
    paged = client.get(f"{API}/registered-models/search", params={"max_results": "1"}).json()
    assert len(paged["registered_models"]) == 1 and paged["next_page_token"] == "1"
    assert client.request("DELETE", f"{API}/registered-models/delete", json={"name": "m"}).status_code == 200
    _error(client.get(f"{API}/registered-models/get", params={"name": "m"}), 404, "RESOURCE_DOES_NOT_EXIST", "'m' is not registered")


def test_alias_rules_over_rest(client: TestClient) -> None:
    client.post(f"{API}/registered-models/create", json={"name": "m"})
    client.post(f"{API}/model-versions/create", json={"name": "m", "source": "s"})
    assert client.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "staging", "version": "1"}).status_code == 200
    assert client.get(f"{API}/registered-models/alias", params={"name": "m", "alias": "staging"}).json()["model_version"]["aliases"] == ["staging"]
    _error(client.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "v3", "version": "1"}),
           400, "INVALID_PARAMETER_VALUE", "looks like a version")
    _error(client.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "champion", "version": "1"}),
           422, "INVALID_STATE", "has no gate verdict")
    _error(client.post(f"{API}/registered-models/alias", json={"name": "m", "alias": "x", "version": "9"}),
           404, "RESOURCE_DOES_NOT_EXIST", "no version 9")
    assert client.request("DELETE", f"{API}/registered-models/alias", json={"name": "m", "alias": "staging"}).status_code == 200
    _error(client.get(f"{API}/registered-models/alias", params={"name": "m", "alias": "staging"}), 404,
           "RESOURCE_DOES_NOT_EXIST", "no alias 'staging'")


@pytest.mark.parametrize(("method", "path", "kwargs", "words"), [
    ("POST", "/registered-models/create", {"json": {}}, "missing required field 'name'"),
    ("POST", "/registered-models/create", {"json": {"name": "bad name"}}, "model name 'bad name' is not allowed"),
    ("POST", "/registered-models/create", {"json": {"name": "m", "tags": "x"}}, "field 'tags' must be a list"),
    ("POST", "/model-versions/create", {"json": {"name": "m"}}, "missing required field 'source'"),
    ("GET", "/model-versions/get", {"params": {"name": "m", "version": "one"}}, "field 'version' must be a version number"),
    ("GET", "/model-versions/search", {"params": {"filter": "name = 'm' OR name = 'n'"}}, "unsupported filter clause"),
    ("GET", "/registered-models/search", {"params": {"max_results": "0"}}, "max_results must be an integer"),
    ("POST", "/registered-models/alias", {"content": b"{not json"}, "not valid JSON"),
])
def test_bad_input_names_route_and_field(client: TestClient, method, path, kwargs, words) -> None:  # type: ignore[no-untyped-def]
    response = client.request(method, API + path, **kwargs)
    assert response.status_code == 400, response.text
    assert words in response.json()["message"]
    assert path in response.json()["message"] or "model name" in words
