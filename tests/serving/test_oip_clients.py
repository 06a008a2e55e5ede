"""Open Inference Protocol v2 with the real clients: tritonclient.http and kserve's InferenceRESTClient
against the gateway listening on 127.0.0.1 (binary tensor data on and off, versioned routes, output
selection), plus the protocol's checks on what a client may get wrong (400 naming the tensor)."""

from __future__ import annotations

import asyncio
import struct
from typing import Any

import numpy as np
import orjson
import pytest

from shipyard.serving.routing import single_table
from tests.serving.models import IRIS_FEATURES, iris_classifier, iris_regressor

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ROWS = np.asarray([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]])
EXPECTED = ["setosa", "virginica", "versicolor"]


def two_versions() -> tuple[dict[tuple[str, int], Any], dict[str, dict[str, Any]]]:
    """iris 1 is the champion; 2 (a different model) is routed as a candidate with no traffic."""
    table = {**single_table("iris", 1), "candidate": 2, "weight": 0.0, "strategy": "canary", "warm": [1, 2]}
    return {("iris", 1): iris_classifier(), ("iris", 2): iris_classifier(0.01)}, {"iris": table}


def triton_inputs(binary: bool) -> list[Any]:
    import tritonclient.http as triton

    inputs = []
    for i, name in enumerate(IRIS_FEATURES):
        tensor = triton.InferInput(name, [len(ROWS)], "FP64")
        tensor.set_data_from_numpy(ROWS[:, i].copy(), binary_data=binary)
        inputs.append(tensor)
    return inputs


def test_tritonclient_metadata_health_and_versioned_routes(live) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.http as triton

    server = live(*two_versions())
    client = triton.InferenceServerClient(server.host)
    try:
        meta = client.get_server_metadata()
        assert meta["name"] == "shipyard" and "binary_tensor_data" in meta["extensions"]
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("iris") and client.is_model_ready("iris", "2")
        assert not client.is_model_ready("iris", "7")
        model = client.get_model_metadata("iris", model_version="1")
        assert model["versions"] == ["1"]
        assert [i["name"] for i in model["inputs"]] == IRIS_FEATURES
        assert {i["datatype"] for i in model["inputs"]} == {"FP64"}
        assert [o["name"] for o in model["outputs"]] == ["predict", "score"]
        with pytest.raises(triton.InferenceServerException, match="no served version '9'"):
            client.get_model_metadata("iris", model_version="9")
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_infer_selects_outputs(live, binary: bool) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.http as triton

    server = live(*two_versions())
    client = triton.InferenceServerClient(server.host)
    try:
        only_predict = [triton.InferRequestedOutput("predict", binary_data=binary)]
        result = client.infer("iris", triton_inputs(binary), model_version="1", outputs=only_predict)
        assert [o["name"] for o in result.get_response()["outputs"]] == ["predict"]
        assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == EXPECTED
        assert result.as_numpy("score") is None
        assert result.get_response()["model_version"] == "1"
        # no outputs named: tritonclient asks for every output in binary
        result = client.infer("iris", triton_inputs(binary), model_version="2")
        scores = result.as_numpy("score")
        assert scores.dtype == np.float64 and scores.shape == (3,) and ((scores > 0) & (scores <= 1)).all()
        assert result.get_response()["model_version"] == "2"  # pinned past the routing (weight 0)
        assert len(result.as_numpy("predict")) == 3
    finally:
        client.close()


def test_tritonclient_mistakes_are_400_naming_the_tensor(live) -> None:  # type: ignore[no-untyped-def]
    import tritonclient.http as triton

    server = live(*two_versions())
    client = triton.InferenceServerClient(server.host)
    try:
        wrong = triton_inputs(True)
        wrong[2] = triton.InferInput("petal_length", [3], "BYTES").set_data_from_numpy(
            np.asarray([b"a", b"b", b"c"], dtype=object))
        with pytest.raises(triton.InferenceServerException) as caught:
            client.infer("iris", wrong, model_version="1")
        assert caught.value.status() == "400" and "petal_length" in caught.value.message()
        with pytest.raises(triton.InferenceServerException, match="unknown output 'proba'"):
            client.infer("iris", triton_inputs(False), outputs=[triton.InferRequestedOutput("proba")])
    finally:
        client.close()


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_kserve_rest_client_v2(live, binary: bool) -> None:  # type: ignore[no-untyped-def]
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    server = live(*two_versions())

    async def talk() -> tuple[Any, ...]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=30))
        try:
            live_ = await client.is_server_live(server.url)
            ready = await client.is_server_ready(server.url)
            model_ready = await client.is_model_ready(server.url, "iris")
            inputs = []
            for i, name in enumerate(IRIS_FEATURES):
                tensor = InferInput(name, [len(ROWS)], "FP64")
                tensor.set_data_from_numpy(ROWS[:, i].copy(), binary_data=binary)
                inputs.append(tensor)
            response = await client.infer(server.url, InferRequest("iris", inputs, request_id="r-1"), model_name="iris")
            return live_, ready, model_ready, response
        finally:
            await client.close()

    live_, ready, model_ready, response = asyncio.run(talk())
    assert live_ is True and ready is True and model_ready is True
    assert response.id == "r-1"
    assert response.outputs[0].name == "predict" and response.outputs[0].data == EXPECTED


@pytest.mark.anyio
async def test_tensor_mistakes_are_400_naming_the_tensor(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})

    def tensor(name: str, data: list[Any], datatype: str = "FP64", shape: list[int] | None = None) -> dict[str, Any]:
        return {"name": name, "shape": shape if shape is not None else [len(data)], "datatype": datatype,
                "data": data}

    good = [tensor(f, [1.0]) for f in IRIS_FEATURES]
    cases = [
        ([*good[:3], tensor("petal_width", ["wide"])], "inputs[3].data", "'petal_width' holds 'wide'"),
        ([*good[:3], tensor("petal_width", [True])], "inputs[3].data", "FP64 tensor 'petal_width' holds True"),
        ([*good[:3], tensor("petal_width", [1.5], "INT64")], "inputs[3].data", "INT64 tensor 'petal_width'"),
        ([*good[:3], tensor("petal_width", [], shape=[0])], "inputs[3].shape", "'petal_width' has shape [0]"),
        ([*good, good[0]], "inputs[4].name", "'sepal_length' is given twice"),
        ([*good[:3], tensor("petal_width", [1.0], "FP65")], "inputs[3].datatype", "unknown datatype 'FP65'"),
        ([*good[:3], tensor("petal_width", [1.0, 2.0])], "inputs[3].shape", "'petal_width' has shape [2]"),
    ]
    for inputs, field, words in cases:
        r = await h.client.post("/v2/models/iris/infer", json={"inputs": inputs})
        assert r.status_code == 400, (field, r.text)
        assert r.json()["field"] == field and words in r.json()["error"], r.json()
    for text in (b"Infinity", b"-Infinity", b"1e999"):
        body = b'{"inputs": [' + b",".join(
            orjson.dumps(t) for t in good[:3]) + b', {"name": "petal_width", "shape": [1], "datatype": "FP64", ' \
            b'"data": [' + text + b"]}]}"
        r = await h.client.post("/v2/models/iris/infer", content=body)
        assert r.status_code == 400 and r.json()["field"] == "inputs[3].data", r.text
    assert h.rows().height == 0


@pytest.mark.anyio
async def test_binary_body_mistakes_are_400(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("petal", 1): iris_regressor()}, {"petal": single_table("petal", 1)})
    header = {"inputs": [{"name": f, "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}
                         for f in IRIS_FEATURES[:3]],
              "outputs": [{"name": "predict", "parameters": {"binary_data": True}}]}
    head = orjson.dumps(header)
    data = np.asarray([5.1, 6.7], dtype="<f8").tobytes() * 3
    ok = await h.client.post("/v2/models/petal/infer", content=head + data,
                             headers={"Inference-Header-Content-Length": str(len(head))})
    assert ok.status_code == 200, ok.text
    size = int(ok.headers["inference-header-content-length"])
    answer = orjson.loads(ok.content[:size])
    assert answer["outputs"][0]["parameters"]["binary_data_size"] == 16
    assert np.frombuffer(ok.content[size:], dtype="<f8").shape == (2,)
    for content, length, words in [
        (head + data[:-8], len(head), "binary_data_size"),
        (head + data + b"x", len(head), "no input declares"),
        (head + data, len(head) + 5000, "not within the body"),
        (head + data, "ten", "expected a number of bytes"),
        (head + np.asarray([np.inf, 1.0], dtype="<f8").tobytes() + data[16:], len(head), "inf"),
    ]:
        r = await h.client.post("/v2/models/petal/infer", content=content,
                                headers={"Inference-Header-Content-Length": str(length)})
        assert r.status_code == 400 and words in r.text, (words, r.text)


@pytest.mark.anyio
async def test_bytes_tensors_in_binary_form(harness) -> None:  # type: ignore[no-untyped-def]
    from tests.serving.models import PENGUIN, penguin_classifier

    h = harness({("penguin", 1): penguin_classifier()}, {"penguin": single_table("penguin", 1)})
    island = b"".join(struct.pack("<I", len(s)) + s for s in (b"Biscoe", b"Dream"))
    numbers = np.asarray([PENGUIN["bill_length_mm"]] * 2, dtype="<f8").tobytes()
    header = {"inputs": [
        {"name": "island", "shape": [2], "datatype": "BYTES", "parameters": {"binary_data_size": len(island)}},
        {"name": "bill_length_mm", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}},
        {"name": "flipper_length_mm", "shape": [2, 1], "datatype": "FP64", "data": [[218.0], [190.0]]}],
        "parameters": {"binary_data_output": True}}
    head = orjson.dumps(header)
    r = await h.client.post("/v2/models/penguin/infer", content=head + island + numbers,
                            headers={"Inference-Header-Content-Length": str(len(head))})
    assert r.status_code == 200, r.text
    import tritonclient.http as triton

    result = triton.InferResult.from_response_body(r.content, header_length=int(r.headers[
        "inference-header-content-length"]))
    assert result.as_numpy("predict")[0].decode() == "Gentoo"
