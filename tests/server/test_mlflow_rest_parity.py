"""MLflow's REST tests for classic tracking, adapted: each runs against ``shipyard server`` AND ``mlflow server``.

The cases follow mlflow/mlflow's ``tests/tracking/test_rest_tracking.py`` (experiments, runs, metrics,
params, tags, batches, artifacts, searches, bulk and interval metric history, dataset inputs, logged
models), rewritten for a server that lives for the whole module: names are unique per test and
searches are scoped to the test's own experiments. The same assertions run against MLflow 3.17.2's
own server (from this venv), so a difference between the two shows as a failure on one side only.
Requests go over real HTTP on 127.0.0.1 with MLflow's own client where the original used it.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.server.live import free_port, live_server

pytestmark = pytest.mark.slow
MAX_DOUBLE = 1.7976931348623157e308


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """``mlflow server`` 3.17.2 from this venv on SQLite, serving artifacts (its defaults otherwise)."""
    port = free_port()
    binary = str(Path(sys.executable).with_name("mlflow"))
    proc = subprocess.Popen([binary, "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                             "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
                             "--artifacts-destination", str(root / "mlartifacts")],
                            cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module", params=["shipyard", "mlflow"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Path]]:
    """(kind, base URL, the server's working directory)."""
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "shipyard":
        (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
        with live_server(root) as url:
            yield "shipyard", url, root
    else:
        with mlflow_server(root) as url:
            yield "mlflow", url, root


@pytest.fixture
def client(server: tuple[str, str, Path]):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(server[1])


@pytest.fixture
def url(server: tuple[str, str, Path]) -> str:
    return server[1]


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _post(url: str, route: str, body: dict) -> requests.Response:
    return requests.post(f"{url}/api/2.0/mlflow/{route}", json=body, timeout=30)


def _bad(response: requests.Response, words: str, status: int = 400, code: str = "INVALID_PARAMETER_VALUE") -> None:
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == code, response.text
    assert words in response.json()["message"], response.text


def _run(client, prefix: str = "run") -> tuple[str, str]:  # type: ignore[no-untyped-def]
    exp = client.create_experiment(_name(prefix))
    return exp, client.create_run(exp).info.run_id


# -- experiments ---------------------------------------------------------------------------------------
def test_create_get_experiment_with_relative_location(client, server) -> None:  # type: ignore[no-untyped-def]
    name = _name("My Experiment")
    exp_id = client.create_experiment(name, artifact_location="my_location", tags={"key1": "val1", "key2": "val2"})
    exp = client.get_experiment(exp_id)
    assert exp.name == name and exp.tags == {"key1": "val1", "key2": "val2"}
    assert exp.artifact_location == str(server[2] / "my_location")  # resolved against the server's directory
    assert client.get_experiment_by_name(name).experiment_id == exp_id
    assert client.get_experiment_by_name(_name("idontexist")) is None


def test_default_experiment_exists(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get_experiment("0").name == "Default"
    assert client.get_experiment_by_name("Default").experiment_id == "0"


@pytest.mark.parametrize(("body", "words"), [
    ({"name": 123}, "Invalid value 123 for parameter 'name'"),
    ({}, "Missing value for required parameter 'name'"),
    ({"name": "experiment name", "artifact_location": 9.0}, "Invalid value 9.0 for parameter 'artifact_location'"),
    ({"name": "experiment name", "artifact_location": "my_location", "tags": "5"},
     "Invalid value \"5\" for parameter 'tags'"),
])
def test_create_experiment_validation(url: str, body: dict, words: str) -> None:
    _bad(_post(url, "experiments/create", body), words)


def test_experiment_lifecycle_rename_and_tags(client) -> None:  # type: ignore[no-untyped-def]
    exp_id = client.create_experiment(_name("Deleterious"))
    client.delete_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "deleted"
    client.restore_experiment(exp_id)
    assert client.get_experiment(exp_id).lifecycle_stage == "active"
    new_name = _name("GoodName")
    client.rename_experiment(exp_id, new_name)
    assert client.get_experiment(exp_id).name == new_name
    client.set_experiment_tag(exp_id, "dataset", "imagenet1K")
    client.set_experiment_tag(exp_id, "dataset", "birdbike")
    client.set_experiment_tag(exp_id, "multiline tag", "value2\nvalue2")
    client.set_experiment_tag(exp_id, "empty", "")
    assert client.get_experiment(exp_id).tags == {"dataset": "birdbike", "multiline tag": "value2\nvalue2", "empty": ""}
    with pytest.raises(Exception, match="already exists"):
        client.create_experiment(new_name)


def test_search_experiments_filters_order_pages_and_views(client) -> None:  # type: ignore[no-untyped-def]
    prefix = _name("s")
    ids = []
    for suffix, tags in (("a", {"key": "value"}), ("ab", {"key": "vaLue"}), ("Abc", None)):
        ids.append(client.create_experiment(f"{prefix}-{suffix}", tags=tags))
        created = client.get_experiment(ids[-1]).creation_time
        while time.time() * 1000 <= created + 1:  # the next one must get a later creation time (the order
            time.sleep(0.0005)                      # under test); wait for the clock, not a fixed time
    mine = f"name LIKE '{prefix}-%'"

    def names(**kw: object) -> list[str]:
        return [e.name.removeprefix(prefix + "-") for e in client.search_experiments(**kw)]

    assert names(filter_string=f"attribute.name = '{prefix}-a'") == ["a"]
    assert names(filter_string=f"{mine} AND attribute.name != '{prefix}-a'") == ["Abc", "ab"]
    assert names(filter_string=f"name LIKE '{prefix}-a%'") == ["ab", "a"]
    assert names(filter_string=f"{mine} AND tag.key = 'value'") == ["a"]
    assert names(filter_string=f"{mine} AND tag.key != 'value'") == ["ab"]
    assert names(filter_string=f"{mine} AND tag.key ILIKE '%alu%'") == ["ab", "a"]
    assert names(filter_string=mine, order_by=["name DESC"]) == ["ab", "a", "Abc"]
    first = client.search_experiments(filter_string=mine, max_results=2)
    assert [e.name.removeprefix(prefix + "-") for e in first] == ["Abc", "ab"]
    assert names(filter_string=mine, max_results=2, page_token=first.token) == ["a"]
    client.delete_experiment(ids[1])
    from mlflow.entities import ViewType

    assert names(filter_string=mine, view_type=ViewType.ACTIVE_ONLY) == ["Abc", "a"]
    assert names(filter_string=mine, view_type=ViewType.DELETED_ONLY) == ["ab"]
    assert names(filter_string=mine, view_type=ViewType.ALL) == ["Abc", "ab", "a"]


# -- runs ------------------------------------------------------------------------------------------------
def test_create_run_all_args_and_defaults(client) -> None:  # type: ignore[no-untyped-def]
    exp = client.create_experiment(_name("Run A Lot"))
    tags = {"mlflow.user": "username", "mlflow.source.type": "LOCAL", "mlflow.source.name": "Hello",
            "mlflow.project.entryPoint": "entry", "mlflow.source.git.commit": "abc", "my": "tag"}
    created = client.create_run(exp, start_time=456, run_name="my name", tags=tags)
    fetched = client.get_run(created.info.run_id)
    for run in (created, fetched):
        assert run.info.run_id == created.info.run_id and run.info.experiment_id == exp
        assert run.info.user_id == "username" and run.info.start_time == 456 and run.info.run_name == "my name"
        assert tags.items() <= run.data.tags.items()
    assert [r.info.run_id for r in client.search_runs([exp])] == [created.info.run_id]
    plain = client.get_run(client.create_run(exp).info.run_id)
    assert plain.info.user_id == "unknown" and plain.info.status == "RUNNING" and plain.info.end_time is None


def test_log_metrics_params_tags_nan_and_inf(client) -> None:  # type: ignore[no-untyped-def]
    _, run_id = _run(client, "Oh My")
    client.log_metric(run_id, key="metric", value=123.456, timestamp=789, step=2)
    client.log_metric(run_id, key="nan_metric", value=float("nan"))
    client.log_metric(run_id, key="inf_metric", value=float("inf"))
    client.log_metric(run_id, key="-inf_metric", value=-float("inf"))
    client.log_metric(run_id, key="stepless-metric", value=987.654, timestamp=321)
    client.log_param(run_id, "param", "value")
    client.log_param(run_id, "empty", "")
    client.set_tag(run_id, "taggity", "do-dah")
    client.set_tag(run_id, "empty_tag", "")
    data = client.get_run(run_id).data
    assert data.metrics["metric"] == 123.456 and math.isnan(data.metrics["nan_metric"])
    assert data.metrics["inf_metric"] >= MAX_DOUBLE and data.metrics["-inf_metric"] <= -MAX_DOUBLE
    assert data.params == {"param": "value", "empty": ""}
    assert data.tags["taggity"] == "do-dah" and data.tags["empty_tag"] == ""
    [point] = client.get_metric_history(run_id, "metric")
    assert (point.key, point.value, point.timestamp, point.step) == ("metric", 123.456, 789, 2)
    [stepless] = client.get_metric_history(run_id, "stepless-metric")
    assert (stepless.timestamp, stepless.step) == (321, 0)
    assert client.get_metric_history(run_id, "a_test_accuracy") == []


@pytest.mark.parametrize(("body", "words"), [
    ({"run_id": 31, "key": "metric", "value": 41, "timestamp": 59, "step": 26}, "Invalid value 31 for parameter 'run_id' supplied"),
    ({"key": 31, "value": 41, "timestamp": 59, "step": 26}, "Invalid value 31 for parameter 'key' supplied"),
    ({"key": "foo", "value": 31, "timestamp": 59, "step": "foo"}, "Invalid value \"foo\" for parameter 'step' supplied"),
    ({"key": "foo", "value": 31, "timestamp": "foo", "step": 41}, "Invalid value \"foo\" for parameter 'timestamp' supplied"),
    ({"run_id": None, "key": "foo", "value": 31, "timestamp": 59, "step": 41}, "Missing value for required parameter 'run_id'"),
    ({"value": 31, "timestamp": 59, "step": 41}, "Missing value for required parameter 'key'"),
    ({"key": None, "value": 31, "timestamp": 59, "step": 41}, "Missing value for required parameter 'key'"),
])
def test_log_metric_validation(client, url: str, body: dict, words: str) -> None:  # type: ignore[no-untyped-def]
    _, run_id = _run(client, "metrics validation")
    _bad(_post(url, "runs/log-metric", {"run_id": run_id, **body}), words)


@pytest.mark.parametrize(("route", "body", "words"), [
    ("runs/log-parameter", {"run_id": 31, "key": "param", "value": 41}, "Invalid value 31 for parameter 'run_id' supplied"),
    ("runs/log-parameter", {"key": 31, "value": 41}, "Invalid value 31 for parameter 'key' supplied"),
    ("runs/set-tag", {"run_id": 31, "key": "tag", "value": 41}, "Invalid value 31 for parameter 'run_id' supplied"),
    ("runs/set-tag", {"key": "param", "value": 41}, "Invalid value 41 for parameter 'value' supplied"),
    ("runs/set-tag", {"value": "value"}, "Missing value for required parameter 'key'"),
])
def test_param_and_tag_validation(client, url: str, route: str, body: dict, words: str) -> None:  # type: ignore[no-untyped-def]
    _, run_id = _run(client, "params validation")
    _bad(_post(url, route, {"run_id": run_id, **body}), words)


def test_set_tag_accepts_run_uuid(client, url: str) -> None:  # type: ignore[no-untyped-def]
    _, run_id = _run(client, "run uuid")
    assert _post(url, "runs/set-tag", {"run_uuid": run_id, "key": "key", "value": "value"}).status_code == 200
    assert client.get_run(run_id).data.tags["key"] == "value"


def test_delete_tag(client) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    _, run_id = _run(client, "DeleteTag")
    client.set_tag(run_id, "taggity", "do-dah")
    client.delete_tag(run_id, "taggity")
    assert "taggity" not in client.get_run(run_id).data.tags
    with pytest.raises(MlflowException, match=r"Run .+ not found"):
        client.delete_tag("fake_run_id", "taggity")
    with pytest.raises(MlflowException, match="No tag with name: fakeTag"):
        client.delete_tag(run_id, "fakeTag")
    client.delete_run(run_id)
    with pytest.raises(MlflowException, match=f"The run {run_id} must be in"):
        client.delete_tag(run_id, "taggity")


def test_log_batch_and_its_validation(client, url: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.entities import Metric, Param, RunTag

    _, run_id = _run(client, "Batch em up")
    client.log_batch(run_id, metrics=[Metric("metric", 123.456, 789, 3)], params=[Param("param", "value"),
                     Param("empty", "")], tags=[RunTag("taggity", "do-dah"), RunTag("empty", "")])
    data = client.get_run(run_id).data
    assert data.metrics["metric"] == 123.456 and data.params == {"param": "value", "empty": ""}
    assert data.tags["taggity"] == "do-dah" and data.tags["empty"] == ""
    [point] = client.get_metric_history(run_id, "metric")
    assert (point.value, point.timestamp, point.step) == (123.456, 789, 3)
    for part in ("metrics", "params", "tags"):
        _bad(_post(url, "runs/log-batch", {"run_id": run_id, part: "foo"}),
             f"Invalid value \"foo\" for parameter '{part}' supplied")
    _bad(_post(url, "runs/log-batch", {"run_id": run_id, "metrics": [{"key": "mae", "value": 2.5}]}),
         "Missing value for required parameter 'metrics[0].timestamp'")
    ok = _post(url, "runs/log-batch", {"run_id": run_id, "metrics": [{"key": "mae", "value": 2.5, "timestamp": 123456789}]})
    assert ok.status_code == 200, ok.text


def test_batch_limits(client, url: str) -> None:  # type: ignore[no-untyped-def]
    _, run_id = _run(client, "limits")
    metrics = [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)]
    _bad(_post(url, "runs/log-batch", {"run_id": run_id, "metrics": metrics}),
         "A batch logging request can contain at most 1000 metrics. Got 1001 metrics.")
    params = [{"key": f"p{i}", "value": "1"} for i in range(101)]
    _bad(_post(url, "runs/log-batch", {"run_id": run_id, "params": params}),
         "A batch logging request can contain at most 100 params. Got 101 params.")
    dupes = [{"key": "p", "value": "1"}, {"key": "p", "value": "2"}]
    _bad(_post(url, "runs/log-batch", {"run_id": run_id, "params": dupes}), "Duplicate parameter keys have been submitted")
    client.log_param(run_id, "depth", "3")
    _bad(_post(url, "runs/log-parameter", {"run_id": run_id, "key": "depth", "value": "4"}),
         "Changing param values is not allowed. Param with key='depth' was already logged with value='3'")
    _bad(_post(url, "runs/log-parameter", {"run_id": run_id, "key": "../x", "value": "4"}),
         "Invalid value \"../x\" for parameter 'key' supplied")


def test_terminate_and_rename(client) -> None:  # type: ignore[no-untyped-def]
    _, run_id = _run(client, "Terminator")
    client.set_terminated(run_id)
    info = client.get_run(run_id).info
    assert info.status == "FINISHED" and info.end_time <= int(time.time() * 1000)
    _, failed = _run(client, "Terminator 2")
    client.set_terminated(failed, "FAILED")
    assert client.get_run(failed).info.status == "FAILED"
    client.update_run(run_id, name="name_abc")
    info = client.get_run(run_id).info
    assert info.run_name == "name_abc" and info.status == "FINISHED"


def test_search_runs_pagination_and_validation(client) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    exp = client.create_experiment(_name("search_pagination"))
    runs = sorted(client.create_run(exp, start_time=1).info.run_id for _ in range(10))
    page = client.search_runs([exp], max_results=4)
    assert [r.info.run_id for r in page] == runs[:4] and page.token
    page = client.search_runs([exp], max_results=4, page_token=page.token)
    assert [r.info.run_id for r in page] == runs[4:8] and page.token
    page = client.search_runs([exp], max_results=4, page_token=page.token)
    assert [r.info.run_id for r in page] == runs[8:] and page.token is None
    with pytest.raises(MlflowException, match=r"Invalid value 123456789 for parameter 'max_results' supplied"):
        client.search_runs([exp], max_results=123456789)


# -- artifacts -------------------------------------------------------------------------------------------
def test_artifacts_round_trip(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from mlflow.artifacts import download_artifacts

    exp, run_id = _run(client, "Art In Fact")
    location = client.get_experiment(exp).artifact_location
    assert location == f"mlflow-artifacts:/{exp}" and client.get_run(run_id).info.artifact_uri.startswith(location)
    src = tmp_path / "src"
    src.mkdir()
    (src / "my.file").write_text("Hello, World!")
    client.log_artifact(run_id, str(src / "my.file"))
    client.log_artifacts(run_id, str(src), "dir")
    assert {a.path for a in client.list_artifacts(run_id)} == {"my.file", "dir"}
    assert {a.path for a in client.list_artifacts(run_id, "dir")} == {"dir/my.file"}
    everything = download_artifacts(run_id=run_id, artifact_path=".", tracking_uri=client.tracking_uri,
                                    dst_path=str(tmp_path / "all"))
    assert Path(everything, "my.file").read_text() == "Hello, World!"
    assert Path(everything, "dir", "my.file").read_text() == "Hello, World!"


def test_artifact_list_refuses_a_climbing_path(client, url: str) -> None:  # type: ignore[no-untyped-def]
    _, run_id = _run(client, "paths")
    response = requests.get(f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": run_id, "path": "../path"}, timeout=30)
    assert response.status_code == 400
    body = response.json()  # MLflow adds error_class and sqlstate; the code and the message are the contract
    assert (body["error_code"], body["message"]) == ("INVALID_PARAMETER_VALUE", "Invalid path")


# -- metric history: bulk and interval -------------------------------------------------------------------
def _bulk(url: str, route: str, params: dict) -> requests.Response:
    return requests.get(f"{url}/ajax-api/2.0/mlflow/metrics/{route}", params=params, timeout=30)


def test_history_bulk_rejects_invalid_requests(url: str) -> None:
    _bad(_bulk(url, "get-history-bulk", {"metric_key": "key"}), "GetMetricHistoryBulk request must specify at least one run_id")
    _bad(_bulk(url, "get-history-bulk", {"run_id": [f"id_{i}" for i in range(1000)], "metric_key": "key"}),
         "GetMetricHistoryBulk request cannot specify more than")
    _bad(_bulk(url, "get-history-bulk", {"run_id": ["123"]}), "GetMetricHistoryBulk request must specify a metric_key")


def test_history_bulk_order_and_max_results(client, url: str) -> None:  # type: ignore[no-untyped-def]
    exp = client.create_experiment(_name("bulk"))
    run1, run2 = (client.create_run(exp).info.run_id for _ in range(2))
    history = [{"key": "metricA", "timestamp": 1, "step": 2, "value": 10.0},
               {"key": "metricA", "timestamp": 1, "step": 3, "value": 11.0},
               {"key": "metricA", "timestamp": 1, "step": 3, "value": 12.0},
               {"key": "metricA", "timestamp": 2, "step": 3, "value": 12.0}]
    for point in history:
        client.log_metric(run1, **point)
        client.log_metric(run2, **{**point, "value": point["value"] + 1.0})
    got = _bulk(url, "get-history-bulk", {"run_id": [run1], "metric_key": "metricA"}).json()["metrics"]
    assert got == [{**p, "run_id": run1} for p in history]
    both = _bulk(url, "get-history-bulk", {"run_id": [run1, run2], "metric_key": "metricA"}).json()["metrics"]
    expected = [{**p, "run_id": run1} for p in history] + [{**p, "run_id": run2, "value": p["value"] + 1.0} for p in history]
    assert both == sorted(expected, key=lambda m: m["run_id"])
    limited = _bulk(url, "get-history-bulk", {"run_id": [run1], "metric_key": "metricA", "max_results": 2}).json()
    assert limited["metrics"] == [{**p, "run_id": run1} for p in history[:2]]


@pytest.mark.parametrize(("params", "words"), [
    ({"metric_key": "key"}, "Missing value for required parameter 'run_ids'."),
    ({"run_ids": [f"id_{i}" for i in range(1000)], "metric_key": "key"},
     "GetMetricHistoryBulkInterval request must specify at most 100 run_ids."),
    ({"run_ids": ["123"], "metric_key": "key", "max_results": 0}, "max_results must be between 1 and 2500"),
    ({"run_ids": ["123"], "metric_key": ""}, "Missing value for required parameter 'metric_key'"),
    ({"run_ids": ["123"], "max_results": 5}, "Missing value for required parameter 'metric_key'"),
    ({"run_ids": ["123"], "metric_key": "key", "start_step": 1, "end_step": 0, "max_results": 5},
     "end_step must be greater than start_step. "),
    ({"run_ids": ["123"], "metric_key": "key", "start_step": 1, "max_results": 5},
     "If either start step or end step are specified, both must be specified."),
])
def test_history_bulk_interval_rejects_invalid_requests(url: str, params: dict, words: str) -> None:
    _bad(_bulk(url, "get-history-bulk-interval", params), words)


def test_history_bulk_interval_samples_evenly_keeping_the_ends(client, url: str) -> None:  # type: ignore[no-untyped-def]
    exp = client.create_experiment(_name("interval"))
    run_id = client.create_run(exp).info.run_id
    for i in range(10):
        client.log_metric(run_id, "metricA", 10.0, timestamp=1, step=i)
    got = _bulk(url, "get-history-bulk-interval", {"run_ids": [run_id], "metric_key": "metricA", "max_results": 5})
    steps = [m["step"] for m in got.json()["metrics"]]
    assert len(steps) == 5 and steps[0] == 0 and steps[-1] == 9 and steps == sorted(steps)
    window = _bulk(url, "get-history-bulk-interval", {"run_ids": [run_id], "metric_key": "metricA", "start_step": 0,
                                                      "end_step": 4, "max_results": 5}).json()["metrics"]
    assert window == [{"key": "metricA", "value": 10.0, "timestamp": 1, "step": i, "run_id": run_id} for i in range(5)]


# -- dataset inputs --------------------------------------------------------------------------------------
def test_log_inputs_keeps_every_tag(client, url: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.entities import Dataset, DatasetInput, InputTag

    _, run_id = _run(client, "log inputs")
    dataset = Dataset(name="name1", digest="digest1", source_type="source_type1", source="source1")
    client.log_inputs(run_id, [DatasetInput(dataset=dataset, tags=[InputTag(key="tag1", value="value1")])])
    [got] = client.get_run(run_id).inputs.dataset_inputs
    assert (got.dataset.name, got.dataset.digest, got.dataset.source_type, got.dataset.source) == (
        "name1", "digest1", "source_type1", "source1")
    assert [(t.key, t.value) for t in got.tags] == [("tag1", "value1")]
    _bad(_post(url, "runs/log-inputs", {"datasets": []}), "Missing value for required parameter 'run_id'")


# -- logged models (MLflow 3) ----------------------------------------------------------------------------
def test_logged_model_lifecycle_through_the_client(client) -> None:  # type: ignore[no-untyped-def]
    from mlflow.entities import LoggedModelStatus
    from mlflow.exceptions import MlflowException

    exp, run_id = _run(client, "logged models")
    model = client.create_logged_model(exp, name="model", source_run_id=run_id, params={"C": "1.0"},
                                       tags={"team": "birds"}, model_type="classifier")
    assert model.model_id.startswith("m-") and model.status == LoggedModelStatus.PENDING
    assert model.artifact_location == f"mlflow-artifacts:/{exp}/models/{model.model_id}/artifacts"
    client.set_logged_model_tags(model.model_id, {"k": "v"})
    client.delete_logged_model_tag(model.model_id, "team")
    client.log_model_params(model.model_id, {"depth": "3"})
    done = client.finalize_logged_model(model.model_id, LoggedModelStatus.READY)
    assert done.status == LoggedModelStatus.READY
    got = client.get_logged_model(model.model_id)
    assert got.tags == {"k": "v"} and got.params == {"C": "1.0", "depth": "3"} and got.model_type == "classifier"
    found = client.search_logged_models(experiment_ids=[exp], filter_string="name = 'model'")
    assert [m.model_id for m in found] == [model.model_id]
    client.delete_logged_model(model.model_id)
    with pytest.raises(MlflowException, match=f"Logged model with ID '{model.model_id}' not found"):
        client.get_logged_model(model.model_id)


def test_sklearn_log_model_and_load_model(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    script = (
        "import sys, json, mlflow, numpy as np\n"
        "from sklearn.linear_model import LogisticRegression\n"
        "mlflow.set_tracking_uri(sys.argv[1])\n"
        "X = np.arange(40, dtype=float).reshape(20, 2); y = (X[:, 0] > 19).astype(int)\n"
        "m = LogisticRegression().fit(X, y)\n"
        "with mlflow.start_run() as run:\n"
        "    info = mlflow.sklearn.log_model(m, name='model')\n"
        "a = mlflow.sklearn.load_model(info.model_uri)\n"
        "b = mlflow.sklearn.load_model(f'runs:/{run.info.run_id}/model')\n"
        "print(json.dumps([info.model_uri.startswith('models:/m-'), (a.predict(X) == m.predict(X)).all().item(),\n"
        "                  (b.predict(X) == m.predict(X)).all().item()]))\n"
    )
    env = {**os.environ, "GIT_PYTHON_REFRESH": "quiet", "MLFLOW_ENABLE_ASYNC_LOGGING": "false"}
    proc = subprocess.run([sys.executable, "-c", script, server[1]], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[true, true, true]"
