"""The MLflow-compatible routes in process: shapes, limits, error codes, all-or-nothing batches."""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient

from shipyard.server.app import ROUTE_MODULES, create_app
from shipyard.workspace import Workspace

API = "/api/2.0/mlflow"


@pytest.fixture
def client(project: Workspace):  # type: ignore[no-untyped-def]
    with TestClient(create_app(project), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def run_id(client: TestClient) -> str:
    exp = client.post(f"{API}/experiments/create", json={"name": "e"}).json()["experiment_id"]
    body = {"experiment_id": exp, "start_time": "1700000000000", "tags": [{"key": "mlflow.runName", "value": "r"}]}
    return client.post(f"{API}/runs/create", json=body).json()["run"]["info"]["run_id"]


def _data(client: TestClient, run_id: str) -> dict:
    return client.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["data"]


def _error(response, status: int, code: str, words: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error_code"] == code, body
    assert words in body["message"], body


def test_route_modules_are_a_plain_list() -> None:
    assert ROUTE_MODULES[:2] == ["shipyard.server.tracking", "shipyard.server.mlflow"]
    assert {"shipyard.server.mlflow_logged_models", "shipyard.server.mlflow_artifacts"} <= set(ROUTE_MODULES)


def test_experiment_lifecycle(client: TestClient) -> None:
    _error(client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "nope"}), 404,
           "RESOURCE_DOES_NOT_EXIST", "'nope'")
    exp = client.post(f"{API}/experiments/create", json={"name": "penguins", "tags": [{"key": "k", "value": "v"}]})
    exp_id = exp.json()["experiment_id"]
    _error(client.post(f"{API}/experiments/create", json={"name": "penguins"}), 400, "RESOURCE_ALREADY_EXISTS",
           "Experiment(name=penguins) already exists")
    got = client.get(f"{API}/experiments/get", params={"experiment_id": exp_id}).json()["experiment"]
    assert got["name"] == "penguins" and got["tags"] == [{"key": "k", "value": "v"}]
    assert client.post(f"{API}/experiments/update", json={"experiment_id": exp_id, "new_name": "birds"}).status_code == 200
    assert client.post(f"{API}/experiments/delete", json={"experiment_id": exp_id}).status_code == 200
    found = client.post(f"{API}/experiments/search", json={"view_type": "DELETED_ONLY"}).json()["experiments"]
    assert [e["name"] for e in found] == ["birds"]
    _error(client.get(f"{API}/experiments/get", params={"experiment_id": "999"}), 404, "RESOURCE_DOES_NOT_EXIST",
           "No Experiment with id=999 exists")


def test_log_batch_and_search(client: TestClient, run_id: str) -> None:
    body = {"run_id": run_id,
            "metrics": [{"key": "loss", "value": 1.0 / (i + 1), "timestamp": "1700000000000", "step": str(i)} for i in range(50)],
            "params": [{"key": "depth", "value": "3"}], "tags": [{"key": "team", "value": "a"}]}
    assert client.post(f"{API}/runs/log-batch", json=body).status_code == 200
    assert client.post(f"{API}/runs/log-metric", json={"run_id": run_id, "key": "acc", "value": 0.93,
                                                        "timestamp": 1, "step": 0}).status_code == 200
    history = client.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "loss"}).json()
    assert [m["step"] for m in history["metrics"]] == list(range(50))
    found = client.post(f"{API}/runs/search", json={
        "experiment_ids": ["1"], "filter": "metrics.acc > 0.9 and (params.depth = '3' or tags.team = 'b')",
        "order_by": ["metrics.acc DESC"], "max_results": 10}).json()["runs"]
    assert [r["info"]["run_id"] for r in found] == [run_id]
    _error(client.post(f"{API}/runs/search", json={"filter": "metrics.acc >> 1"}), 400, "INVALID_PARAMETER_VALUE",
           "column 14")


def test_update_delete_restore_and_tags(client: TestClient, run_id: str) -> None:
    info = client.post(f"{API}/runs/update", json={"run_id": run_id, "status": "FINISHED", "end_time": 5}).json()
    assert info["run_info"]["status"] == "FINISHED"
    client.post(f"{API}/runs/set-tag", json={"run_id": run_id, "key": "x", "value": "1"})
    client.post(f"{API}/runs/delete-tag", json={"run_id": run_id, "key": "x"})
    assert "x" not in {t["key"] for t in _data(client, run_id)["tags"]}
    _error(client.post(f"{API}/runs/delete-tag", json={"run_id": run_id, "key": "x"}), 404, "RESOURCE_DOES_NOT_EXIST",
           f"No tag with name: x in run with id {run_id}")
    client.post(f"{API}/runs/delete", json={"run_id": run_id})
    _error(client.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "a", "value": "1"}), 400,
           "INVALID_PARAMETER_VALUE", f"The run {run_id} must be in the 'active' state. Current state is deleted.")
    client.post(f"{API}/runs/restore", json={"run_id": run_id})
    assert client.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "a", "value": "1"}).status_code == 200


# -- bad input: a clear 4xx in MLflow's shape, never a 500, nothing half-written ---------------------
def test_malformed_json(client: TestClient, run_id: str) -> None:
    response = client.post(f"{API}/runs/log-batch", content=b'{"run_id": "' + run_id.encode() + b'", "metrics": [',
                           headers={"content-type": "application/json"})
    _error(response, 400, "MALFORMED_REQUEST", "not valid JSON")
    _error(client.post(f"{API}/runs/log-batch", content=b"[1, 2]"), 400, "MALFORMED_REQUEST", "JSON object")


@pytest.mark.parametrize(("body", "words"), [
    ({"metrics": [{"key": "m", "value": "high", "timestamp": 1, "step": 0}]},
     "Invalid value \"high\" for parameter 'metrics[0].value' supplied: (timestamp=1). Please specify value as a "
     "valid double (64-bit floating point)"),
    ({"metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": "two"}]},
     "Invalid value \"two\" for parameter 'metrics[0].step' supplied: metric 'm' (value=1.0). Step must be a valid long"),
    ({"metrics": [{"key": "m", "value": 1.0}]}, "Missing value for required parameter 'metrics[0].timestamp'."),
    ({"metrics": {"key": "m"}}, "Invalid value {\"key\":\"m\"} for parameter 'metrics' supplied"),
    ({"params": "depth=3"}, "Invalid value \"depth=3\" for parameter 'params' supplied"),
    ({"params": [{"key": 3, "value": "x"}]}, "Invalid value 3 for parameter 'params[0].key' supplied"),
    ({"params": [{"value": "x"}]}, "Missing value for required parameter 'params[0].key'."),
    ({"params": [{"key": "a", "value": "1"}, {"key": "a", "value": "1"}]},
     "Duplicate parameter keys have been submitted: ['a']."),
    ({"tags": [["team", "a"]]}, "Invalid value [\"team\",\"a\"] for parameter 'tags[0]' supplied"),
])
def test_wrong_types(client: TestClient, run_id: str, body: dict, words: str) -> None:
    _error(client.post(f"{API}/runs/log-batch", json={"run_id": run_id, **body}), 400, "INVALID_PARAMETER_VALUE", words)


def test_unknown_run_ids(client: TestClient) -> None:
    for route, body in (("runs/log-batch", {"run_id": "f" * 32, "params": [{"key": "a", "value": "1"}]}),
                        ("runs/log-metric", {"run_id": "nope", "key": "m", "value": 1.0, "timestamp": 1}),
                        ("runs/update", {"run_id": "x" * 200, "status": "FINISHED"})):
        _error(client.post(f"{API}/{route}", json=body), 404, "RESOURCE_DOES_NOT_EXIST", f"Run with id={body['run_id']} not found")
    _error(client.get(f"{API}/runs/get", params={"run_id": "f" * 32}), 404, "RESOURCE_DOES_NOT_EXIST", "not found")


@pytest.mark.parametrize(("body", "words"), [
    ({"metrics": []}, "Missing value for required parameter 'run_id'. See the API docs"),
    ({"run_id": "", "metrics": []}, "Missing value for required parameter 'run_id'."),
    ({"run_id": 12, "metrics": []}, "Invalid value 12 for parameter 'run_id' supplied:  Hint: Value was of type 'int'."),
    ({"run_id": "x" * 300}, f"Invalid value \"{'x' * 300}"[:200]),
    ({"run_id": "../etc"}, "Invalid value \"../etc\" for parameter 'run_id' supplied."),
])
def test_bad_run_ids_are_invalid_parameter_values(client: TestClient, body: dict, words: str) -> None:
    _error(client.post(f"{API}/runs/log-batch", json=body), 400, "INVALID_PARAMETER_VALUE", words)


def test_oversized_batches_change_nothing(client: TestClient, run_id: str) -> None:
    metrics = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]
    _error(client.post(f"{API}/runs/log-batch", json={"run_id": run_id, "metrics": metrics}), 400,
           "INVALID_PARAMETER_VALUE", "A batch logging request can contain at most 1000 metrics. Got 1001 metrics.")
    params = [{"key": f"p{i}", "value": "1"} for i in range(101)]
    _error(client.post(f"{API}/runs/log-batch", json={"run_id": run_id, "params": params}), 400,
           "INVALID_PARAMETER_VALUE", "at most 100 params")
    tags = [{"key": f"t{i}", "value": "1"} for i in range(101)]
    _error(client.post(f"{API}/runs/log-batch", json={"run_id": run_id, "tags": tags}), 400,
           "INVALID_PARAMETER_VALUE", "at most 100 tags")
    big = {"run_id": run_id, "tags": [{"key": "blob", "value": "x" * (1024 * 1024)}]}
    _error(client.post(f"{API}/runs/log-batch", json=big), 413, "INVALID_PARAMETER_VALUE", "limit")
    data = _data(client, run_id)
    assert data["metrics"] == [] and data["params"] == [] and [t["key"] for t in data["tags"]] == ["mlflow.runName"]


@pytest.mark.parametrize(("sent", "stored"), [('"NaN"', "NaN"), ('"Infinity"', 1.7976931348623157e308),
                                             ('"-Infinity"', -1.7976931348623157e308), ('"1e999"', 1.7976931348623157e308),
                                             ('"0.5"', 0.5)])
def test_nan_and_infinity_are_stored_as_mlflow_stores_them(client: TestClient, run_id: str, sent: str,
                                                            stored: object) -> None:
    body = f'{{"run_id": "{run_id}", "metrics": [{{"key": "m", "value": {sent}, "timestamp": 1, "step": 0}}]}}'
    response = client.post(f"{API}/runs/log-batch", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200, response.text
    assert _data(client, run_id)["metrics"][0]["value"] == stored
    history = client.get(f"{API}/metrics/get-history", params={"run_id": run_id, "metric_key": "m"}).json()
    assert history["metrics"][0]["value"] == stored


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b'"nan"'])
def test_bare_nan_literals_are_refused_and_change_nothing(client: TestClient, run_id: str, raw: bytes) -> None:
    good = b'{"key": "ok", "value": 1.0, "timestamp": 1, "step": 0}'
    bad = b'{"key": "bad", "value": ' + raw + b', "timestamp": 1, "step": 0}'
    body = b'{"run_id": "' + run_id.encode() + b'", "metrics": [' + good + b", " + bad + b"]}"
    response = client.post(f"{API}/runs/log-batch", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["error_code"] in ("MALFORMED_REQUEST", "INVALID_PARAMETER_VALUE")
    assert _data(client, run_id)["metrics"] == []


def test_very_long_and_unicode_keys(client: TestClient, run_id: str) -> None:
    long_key = {"run_id": run_id, "metrics": [{"key": "k" * 251, "value": 1.0, "timestamp": 1, "step": 0}]}
    _error(client.post(f"{API}/runs/log-batch", json=long_key), 400, "INVALID_PARAMETER_VALUE", "251 characters")
    emoji = {"run_id": run_id, "params": [{"key": "🚢", "value": "1"}]}
    _error(client.post(f"{API}/runs/log-batch", json=emoji), 400, "INVALID_PARAMETER_VALUE",
           "Names may only contain alphanumerics, underscores (_), dashes (-), periods (.), spaces ( ), colon(:) and slashes (/).")
    ok = {"run_id": run_id, "metrics": [{"key": "точность", "value": 0.9, "timestamp": 1, "step": 0}],
          "params": [{"key": "モデル", "value": "rf"}]}
    assert client.post(f"{API}/runs/log-batch", json=ok).status_code == 200
    data = _data(client, run_id)
    assert data["metrics"][0]["key"] == "точность" and data["params"] == [{"key": "モデル", "value": "rf"}]


def test_param_change_is_refused_and_batch_rolled_back(client: TestClient, run_id: str) -> None:
    client.post(f"{API}/runs/log-parameter", json={"run_id": run_id, "key": "depth", "value": "3"})
    body = {"run_id": run_id, "metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": 0}],
            "params": [{"key": "depth", "value": "4"}]}
    _error(client.post(f"{API}/runs/log-batch", json=body), 400, "INVALID_PARAMETER_VALUE",
           f"Changing param values is not allowed. Param with key='depth' was already logged with value='3' for run "
           f"ID='{run_id}'. Attempted logging new value '4'.")
    assert _data(client, run_id)["metrics"] == []


def test_unknown_route_and_method(client: TestClient) -> None:
    _error(client.get(f"{API}/runs/teleport"), 404, "ENDPOINT_NOT_FOUND", "no route")
    _error(client.get(f"{API}/runs/log-batch"), 405, "BAD_REQUEST", "not allowed")


def test_ajax_prefix_mirrors_the_api(client: TestClient) -> None:
    created = client.post("/ajax-api/2.0/mlflow/experiments/create", json={"name": "ui"})
    assert created.status_code == 200
    assert json.loads(client.get(f"{API}/experiments/get-by-name", params={"experiment_name": "ui"}).text)["experiment"]["name"] == "ui"


def test_artifact_proxy_round_trip(client: TestClient, run_id: str) -> None:
    base = f"/api/2.0/mlflow-artifacts/artifacts/1/{run_id}/artifacts"
    assert client.put(f"{base}/model/model.skops", content=b"weights").status_code == 200
    assert client.get(f"{base}/model/model.skops").content == b"weights"
    listing = client.get("/api/2.0/mlflow-artifacts/artifacts", params={"path": f"1/{run_id}/artifacts"}).json()
    assert listing["files"] == [{"path": "model", "is_dir": True}]
    listed = client.get(f"{API}/artifacts/list", params={"run_id": run_id, "path": "model"}).json()
    assert listed["files"] == [{"path": "model/model.skops", "is_dir": False, "file_size": 7}]
    _error(client.get(f"{base}/missing.bin"), 404, "RESOURCE_DOES_NOT_EXIST", "no artifact")


def test_server_info_answers_mlflow_3_clients_without_a_login(project) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from shipyard.auth import service as auth
    from shipyard.server.app import create_app

    auth.create_project(project.store, "p", actor="ops")
    with TestClient(create_app(project, auth_project="p")) as client:
        for prefix in ("/api", "/ajax-api"):
            answer = client.get(f"{prefix}/3.0/mlflow/server-info")
            assert answer.status_code == 200, answer.text
            assert answer.json()["store_type"] == "SqlStore" and answer.json()["multipart_uploads_enabled"] is False
        assert client.post("/api/3.0/mlflow/server-info").status_code in (401, 405)  # only GET is public
        assert client.get("/api/2.0/mlflow/experiments/search").status_code == 401  # the rest still is not
