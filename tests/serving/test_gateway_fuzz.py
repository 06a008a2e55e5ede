"""Property test: random JSON, tensors, binary bodies and content types at every gateway route never
get a 5xx (a 5xx means the model itself failed, and these models do not), and the gateway is
healthy afterwards. The gateway listens on 127.0.0.1; the models are real scikit-learn ones, one
with only doubles and one with a string feature."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shipyard.serving.routing import single_table
from tests.serving.models import (
    IRIS_FEATURES,
    PENGUIN,
    PENGUIN_FEATURES,
    ROW,
    iris_classifier,
    penguin_classifier,
)

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning"),
              pytest.mark.filterwarnings("ignore::RuntimeWarning")]

NAMES = [*IRIS_FEATURES, *PENGUIN_FEATURES, "x", ""]
DATATYPES = ["FP64", "FP32", "FP16", "INT64", "INT8", "UINT8", "BOOL", "BYTES", "fp64", "STRING"]
numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(2**80), max_value=2**80))
strings = st.one_of(st.sampled_from(["Infinity", "-inf", "1e999", "nan", "NaN", "5.1", "Biscoe", "", "\x00"]),
                    st.text(max_size=8))
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.sampled_from(NAMES), inner, max_size=4)),
                      max_leaves=12)
rows_of = st.lists(st.lists(scalars, min_size=0, max_size=5), min_size=0, max_size=3)
records = st.lists(st.dictionaries(st.sampled_from(NAMES), values, max_size=5), max_size=3)

# one feature of a valid row replaced: these reach the column checks and the models
near_rows = st.builds(lambda feature, value: {**ROW, feature: value}, st.sampled_from(IRIS_FEATURES), values)
near_penguins = st.builds(lambda feature, value: {**PENGUIN, feature: value}, st.sampled_from(list(PENGUIN)), values)
mlflow_bodies = st.one_of(
    st.builds(lambda r: {"dataframe_records": r}, st.lists(st.one_of(near_rows, near_penguins), min_size=1, max_size=3)),
    st.builds(lambda r: {"instances": [list(r.values())]}, near_rows),
    st.builds(lambda r: {"inputs": {k: [v] for k, v in r.items()}}, st.one_of(near_rows, near_penguins)),
    st.builds(lambda cols, data: {"dataframe_split": {"columns": cols, "data": data}},
              st.lists(st.sampled_from(NAMES), max_size=5), rows_of),
    st.builds(lambda r: {"dataframe_records": r}, records),
    st.builds(lambda r: {"instances": r}, st.one_of(rows_of, records, values)),
    st.builds(lambda m: {"inputs": m}, st.one_of(st.dictionaries(st.sampled_from(NAMES),
                                                                 st.lists(scalars, max_size=3), max_size=5),
                                                 rows_of, values)),
    st.dictionaries(st.sampled_from(["dataframe_split", "instances", "inputs", "params", "x"]), values, max_size=3),
    values,
)
tensor = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(NAMES), values), "shape": st.one_of(
        st.lists(st.integers(min_value=-2, max_value=4), max_size=3), st.just([2**62, 2**62]), values),
     "datatype": st.one_of(st.sampled_from(DATATYPES), values), "data": st.one_of(st.lists(scalars, max_size=6),
                                                                                rows_of, values)},
    optional={"parameters": st.one_of(st.fixed_dictionaries({"binary_data_size": st.integers(-1, 40)}), values)})
near_tensors = st.builds(
    lambda row, datatype, shape: {"inputs": [{"name": k, "shape": shape, "datatype": datatype, "data": [v]}
                                             for k, v in row.items()]},
    st.one_of(near_rows, near_penguins), st.sampled_from(DATATYPES), st.sampled_from([[1], [1, 1], [1, 1, 1]]))
oip_bodies = st.one_of(
    near_tensors,
    st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=5)},
                          optional={"outputs": st.one_of(st.lists(st.fixed_dictionaries(
                              {"name": st.sampled_from(["predict", "score", "x"])},
                              optional={"parameters": values}), max_size=3), values),
                              "parameters": st.one_of(st.fixed_dictionaries({"binary_data_output": values}), values),
                              "id": values}),
    values)
content_types = st.sampled_from([None, "application/json", "text/csv", "text/plain", "application/json; charset=x",
                                 "application/octet-stream", "text/csv; charset=utf-8", ";;", "application/json; a"])


def encode(doc: Any) -> bytes:
    # the standard library writes NaN and Infinity literals, as MLflow's client does
    return json.dumps(doc, allow_nan=True).encode()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from tests.serving.conftest import Harness, LiveServer

    tables = {"iris": {**single_table("iris", 1), "candidate": 2, "weight": 50.0, "strategy": "canary"},
              "penguin": single_table("penguin", 1)}
    models = {("iris", 1): iris_classifier(), ("iris", 2): iris_classifier(0.01), ("penguin", 1): penguin_classifier()}
    harness = Harness(tmp_path_factory.mktemp("fuzz"), models, tables)
    server = LiveServer(harness)
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client
    server.close()
    harness.close()


def no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text[:2000])
    if response.status_code >= 400 and response.status_code != 404:
        assert response.json()["error"]  # every refusal says what is wrong


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])


@FUZZ
@given(body=mlflow_bodies, model=st.sampled_from(["iris", "penguin", "nope"]), content_type=content_types)
def test_invocations_and_v1_never_5xx(gateway: httpx.Client, body: Any, model: str, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    no_server_error(gateway.post(f"/invocations?model={model}", content=encode(body), headers=headers))
    no_server_error(gateway.post(f"/v1/models/{model}:predict", content=encode(body)))


@FUZZ
@given(body=oip_bodies, model=st.sampled_from(["iris", "penguin"]), version=st.sampled_from([None, "1", "2", "x"]))
def test_oip_infer_never_5xx(gateway: httpx.Client, body: Any, model: str, version: str | None) -> None:
    path = f"/v2/models/{model}/infer" if version is None else f"/v2/models/{model}/versions/{version}/infer"
    no_server_error(gateway.post(path, content=encode(body)))


@FUZZ
@given(body=oip_bodies, tail=st.binary(max_size=48), cut=st.one_of(st.integers(-5, 400), st.text(alphabet="0123456789e+-x", min_size=1, max_size=4)))
def test_oip_binary_bodies_never_5xx(gateway: httpx.Client, body: Any, tail: bytes, cut: Any) -> None:
    head = encode(body)
    length = str(len(head)) if cut == 0 else str(cut)
    no_server_error(gateway.post("/v2/models/iris/infer", content=head + tail,
                                 headers={"Inference-Header-Content-Length": length}))


@FUZZ
@given(raw=st.binary(max_size=64), path=st.sampled_from(
    ["/invocations", "/v2/models/iris/infer", "/v1/models/iris:predict", "/v1/feedback", "/v2", "/ping"]))
def test_raw_bytes_never_5xx(gateway: httpx.Client, raw: bytes, path: str) -> None:
    no_server_error(gateway.post(path, content=raw))


@FUZZ
@given(body=values, path=st.sampled_from(
    ["/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/iris", "/v2/models/iris/ready",
     "/v2/models/iris/versions/2", "/v2/models/iris/versions/99999999999999999999/ready", "/ping", "/health",
     "/version", "/ready", "/metrics", "/v2/models/%00", "/nope"]))
def test_get_routes_and_feedback_never_5xx(gateway: httpx.Client, body: Any, path: str) -> None:
    no_server_error(gateway.get(path))
    no_server_error(gateway.post("/v1/feedback", content=encode(body)))
    no_server_error(gateway.post("/v1/feedback", content=encode({"feedback": [body]})))


def test_the_gateway_is_healthy_after_the_fuzzing(gateway: httpx.Client) -> None:
    """Runs after the properties above (same module-scoped server): still ready and answering."""
    assert gateway.get("/ready").status_code == 200
    r = gateway.post("/invocations?model=iris", json={"dataframe_records": [ROW]})
    assert r.status_code == 200 and r.json()["predictions"][0] in ("setosa", "versicolor", "virginica")
    r = gateway.get("/metrics")
    assert 'status="error"' not in "\n".join(
        line for line in r.text.splitlines() if line.startswith("shipyard_requests_total") and 'route="primary"' in line)
