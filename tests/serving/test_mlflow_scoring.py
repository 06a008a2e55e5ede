"""MLflow scoring-server parity with mlflow's own ScoringServerClient against the gateway on
127.0.0.1: /ping, /version, the four JSON shapes, CSV, a NaN literal, 415 for other content types,
and the client's mistakes (non-finite numbers as strings, a list for a string) as 4xx naming the field."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard import __version__
from shipyard.serving.routing import single_table
from tests.serving.models import IRIS_FEATURES, PENGUIN, ROW, iris_classifier, penguin_classifier

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.filterwarnings("ignore::FutureWarning")]

FRAME = pd.DataFrame([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], columns=IRIS_FEATURES)


def models() -> tuple[dict[tuple[str, int], Any], dict[str, dict[str, Any]]]:
    return {("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)}


def test_scoring_server_client_pings_and_invokes(live) -> None:  # type: ignore[no-untyped-def]
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    server = live(*models())
    client = ScoringServerClient("127.0.0.1", server.port)
    client.wait_server_ready(timeout=30)
    client.ping()
    assert client.get_version() == __version__
    assert client.invoke(FRAME).get_predictions().iloc[:, 0].tolist() == ["setosa", "virginica"]
    assert client.invoke(FRAME.to_numpy()).get_predictions().iloc[:, 0].tolist() == ["setosa", "virginica"]


def test_a_missing_value_is_sent_as_nan_and_reaches_the_model(live) -> None:  # type: ignore[no-untyped-def]
    import requests
    from mlflow.utils.proto_json_utils import dump_input_data

    server = live({("penguin", 1): penguin_classifier(), ("iris", 1): iris_classifier()},
                  {"penguin": single_table("penguin", 1), "iris": single_table("iris", 1)})
    frame = pd.DataFrame([PENGUIN, {**PENGUIN, "bill_length_mm": np.nan}])
    # MLflow's client writes the missing value as a NaN literal; ScoringServerClient cannot name
    # one of two served models, so its body goes through requests with ?model=
    body = dump_input_data(frame)
    assert "NaN" in body
    r = requests.post(f"{server.url}/invocations?model=penguin", data=body,
                      headers={"Content-Type": "application/json"}, timeout=30)
    # the random forest takes missing values: both rows are predicted
    assert r.status_code == 200 and len(r.json()["predictions"]) == 2, r.text
    # a logistic regression cannot take them: the client's NaN is a 422 naming the column
    iris_frame = FRAME.copy()
    iris_frame.loc[1, "petal_width"] = np.nan
    r = requests.post(f"{server.url}/invocations?model=iris", data=dump_input_data(iris_frame),
                      headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 422 and r.json()["field"] == "petal_width", r.text
    assert "missing value" in r.json()["error"]


@pytest.mark.anyio
async def test_four_json_shapes_csv_and_content_types(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness(*models())
    c = h.client
    values = list(ROW.values())
    for body in ({"dataframe_split": {"columns": list(ROW), "data": [values]}},
                 {"dataframe_split": {"index": [0], "columns": list(ROW), "data": [values]}},
                 {"dataframe_records": [ROW]}, {"instances": [values]}, {"inputs": {k: [v] for k, v in ROW.items()}},
                 {"inputs": [values]}):
        r = await c.post("/invocations", json=body)
        assert r.status_code == 200 and r.json() == {"predictions": ["setosa"]}, (body, r.text)
    csv = FRAME.to_csv(index=False).encode()
    for content_type in ("text/csv", "text/csv; charset=utf-8"):
        r = await c.post("/invocations", content=csv, headers={"content-type": content_type})
        assert r.status_code == 200 and r.json() == {"predictions": ["setosa", "virginica"]}, r.text
    valid = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
    for content_type in ("text/plain", "application/xml", "application/json; charset=latin-1",
                         "application/json; format=pandas-split"):
        r = await c.post("/invocations", content=valid, headers={"content-type": content_type})
        assert r.status_code == 415 and r.json()["field"] == "content-type", (content_type, r.text)
    r = await c.post("/invocations", content=b"sepal_length,sepal_width\n1,2\n", headers={"content-type": "text/csv"})
    assert r.status_code == 422 and "missing feature 'petal_length'" in r.json()["error"]
    r = await c.post("/invocations", content=b"\xff\xfe,\n", headers={"content-type": "text/csv"})
    assert r.status_code == 422 and r.json()["field"] == "body"
    for path in ("/ping", "/health", "/version"):
        assert (await c.get(path)).status_code == 200, path


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["Infinity", "-inf", "1e999", "inf"])
async def test_non_finite_numbers_are_422_naming_the_feature(harness, value: str) -> None:  # type: ignore[no-untyped-def]
    h = harness(*models())
    for body in ({"dataframe_records": [{**ROW, "petal_width": value}]},
                 {"dataframe_split": {"columns": list(ROW), "data": [[5.1, 3.5, 1.4, value]]}},
                 {"instances": [[5.1, 3.5, 1.4, value]]},
                 {"inputs": {**{k: [v] for k, v in ROW.items()}, "petal_width": [value]}}):
        r = await h.client.post("/invocations", json=body)
        assert r.status_code == 422, (body, r.text)
        assert "'petal_width' expects a finite number" in r.json()["error"], r.text
    for literal in (b"Infinity", b"-Infinity", b"1e999"):
        r = await h.client.post("/invocations", content=b'{"instances": [[5.1, 3.5, 1.4, ' + literal + b"]]}",
                                headers={"content-type": "application/json"})
        assert r.status_code == 422 and "'petal_width' expects a finite number" in r.json()["error"], r.text
    assert h.rows().height == 0


@pytest.mark.anyio
async def test_wrong_types_for_a_string_feature_are_422(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("penguin", 1): penguin_classifier()}, {"penguin": single_table("penguin", 1)})
    for island in (["Biscoe"], {"name": "Biscoe"}, 3, True):
        r = await h.client.post("/invocations", json={"dataframe_records": [{**PENGUIN, "island": island}]})
        assert r.status_code == 422 and "'island' expects a string" in r.json()["error"], (island, r.text)
    for bill in (["47"], {"mm": 47}, "long"):
        r = await h.client.post("/invocations", json={"dataframe_records": [{**PENGUIN, "bill_length_mm": bill}]})
        assert r.status_code == 422 and "'bill_length_mm' expects a number" in r.json()["error"], (bill, r.text)
    r = await h.client.post("/invocations", json={"dataframe_records": [PENGUIN]})
    assert r.status_code == 200 and r.json() == {"predictions": ["Gentoo"]}
