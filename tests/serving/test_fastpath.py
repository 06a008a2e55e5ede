"""The request path's fast paths keep the contract: numeric input as a matrix (Rows), models taking
matrices, the columnar request-log table, and opportunistic micro-batching."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from shipyard.serving.batching import Batcher
from shipyard.serving.codec import Inputs, RequestError, Rows, to_rows
from shipyard.serving.logtable import request_table
from shipyard.serving.protocols import Feature
from shipyard.serving.requestlog import LogEntry
from shipyard.serving.routing import single_table
from tests.serving.models import IRIS_FEATURES, ROW, MatrixFitted, iris, iris_classifier

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.anyio]

DOUBLES = tuple(Feature(f) for f in IRIS_FEATURES)
ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]
EXPECTED = ["setosa", "virginica", "versicolor"]


def matrix_classifier() -> MatrixFitted:
    return MatrixFitted(iris_classifier().estimator, IRIS_FEATURES)


async def test_matrix_model_answers_every_protocol_like_the_frame_model(harness) -> None:  # type: ignore[no-untyped-def]
    model = matrix_classifier()
    h = harness({("iris", 1): model}, {"iris": single_table("iris", 1)})
    records = [dict(zip(IRIS_FEATURES, r, strict=True)) for r in ROWS]
    shuffled = IRIS_FEATURES[::-1]
    bodies = [
        ("/invocations", {"dataframe_split": {"columns": IRIS_FEATURES, "data": ROWS}}),
        ("/invocations", {"dataframe_split": {"columns": shuffled, "data": [r[::-1] for r in ROWS]}}),
        ("/invocations", {"dataframe_records": records}),
        ("/invocations", {"instances": ROWS}),
        ("/invocations", {"inputs": {f: [r[i] for r in ROWS] for i, f in enumerate(IRIS_FEATURES)}}),
        ("/v2/models/iris/infer", {"inputs": [{"name": f, "shape": [3], "datatype": "FP64",
                                               "data": [r[i] for r in ROWS]} for i, f in enumerate(IRIS_FEATURES)]}),
    ]
    for path, body in bodies:
        r = await h.client.post(path, json=body)
        assert r.status_code == 200, (path, body, r.text)
        doc = r.json()
        assert (doc["outputs"][0]["data"] if "outputs" in doc else doc["predictions"]) == EXPECTED, body
    assert model.matrix_calls == len(bodies)  # every one took the matrix path
    logged = h.rows()
    assert logged.height == 3 * len(bodies)
    assert logged["feature.sepal_length"].to_list() == [r[0] for r in ROWS] * len(bodies)
    assert logged["prediction"].to_list() == EXPECTED * len(bodies)
    assert logged["score"].null_count() == 0 and logged["request_id"].str.contains("/").all()


async def test_bad_value_still_names_the_feature(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): matrix_classifier()}, {"iris": single_table("iris", 1)})
    r = await h.client.post("/invocations", json={"dataframe_records": [{**ROW, "petal_width": "wide"}]})
    assert r.status_code == 422 and "petal_width" in r.json()["error"]
    r = await h.client.post("/invocations", json={"inputs": {**{k: [v] for k, v in ROW.items()}, "sepal_width": ["x"]}})
    assert r.status_code == 422 and "sepal_width" in r.json()["error"]


def test_rows_keep_a_matrix_only_when_every_column_is_numeric() -> None:
    rows = to_rows(Inputs(IRIS_FEATURES, None, ROWS, 3), DOUBLES, "data")
    assert rows.array is not None and rows.array.dtype == np.float64 and rows.columns == tuple(IRIS_FEATURES)
    assert list(rows.frame.columns) == IRIS_FEATURES and rows.frame.to_numpy().tolist() == ROWS
    mixed = (*DOUBLES[:3], Feature("petal_width", "string"))
    with pytest.raises(RequestError, match="petal_width"):
        to_rows(Inputs(IRIS_FEATURES, None, ROWS, 3), mixed, "data")
    named = to_rows(Inputs(IRIS_FEATURES, None, [[*r[:3], "w"] for r in ROWS], 3), mixed, "data")
    assert named.array is None and named.frame["petal_width"].tolist() == ["w"] * 3


def test_enriched_columns_with_long_features_keep_the_matrix() -> None:
    """The gateway's enriched request: named columns (the entity key first, then the online store's
    longs and doubles) in another order than the model's; it stays a float matrix, not pandas."""
    features = (Feature("trips", "long"), Feature("rate", "double"), Feature("active", "boolean"))
    values = {"driver_id": [1001, 1002], "rate": [0.5, 0.25], "active": [True, False], "trips": [12, 7]}
    rows = to_rows(Inputs(["driver_id", "rate", "active", "trips"], values, None, 2), features, "inputs")
    assert rows.array is not None and rows.columns == ("trips", "rate", "active")
    assert rows.array.tolist() == [[12.0, 0.5, 1.0], [7.0, 0.25, 0.0]]
    with pytest.raises(RequestError, match="trips"):
        to_rows(Inputs(["rate", "active", "trips"], {"rate": [0.5], "active": [True], "trips": ["many"]}, None, 1),
                features, "inputs")


def entry(rid: str, rows: Any, preds: Any, scores: Any = None, status: str = "ok", version: int = 1) -> LogEntry:
    return LogEntry(rid, 1_700_000_000.5, "iris", version, "primary", status, 1.5,
                    None if status == "ok" else "error: RuntimeError: boom", rows, preds, scores, True)


def test_request_table_columns_ids_and_nulls() -> None:
    import pandas as pd

    three = Rows(tuple(IRIS_FEATURES), np.asarray(ROWS))
    one = Rows(tuple(IRIS_FEATURES), np.asarray(ROWS[:1]))
    group = [
        entry("a", three, np.asarray(EXPECTED, dtype=object), np.asarray([0.9, 0.8, 0.7])),
        entry("b", one, None, status="error", version=2),  # a failed candidate: no prediction, no score
        entry("c", pd.DataFrame(ROWS[1:2], columns=IRIS_FEATURES), np.asarray([7]), None),  # made by hand
    ]
    table = request_table(group, IRIS_FEATURES, True).to_pydict()
    assert table["request_id"] == ["a/0", "a/1", "a/2", "b", "c"]
    assert table["version"] == [1, 1, 1, 2, 1] and table["status"] == ["ok"] * 3 + ["error", "ok"]
    assert table["prediction"] == [*EXPECTED, None, "7"]
    assert table["score"] == [0.9, 0.8, 0.7, None, None]
    assert table["feature.petal_length"] == [1.4, 5.2, 4.2, 1.4, 5.2]
    assert table["error"][3].startswith("error:") and table["error"][0] is None
    assert len(set(table["ts"])) == 1 and table["latency_ms"] == [1.5] * 5


def test_request_table_of_a_regressor_without_features() -> None:
    group = [entry("r", None, np.asarray([1.25, 2.5])), entry("s", None, None, status="error")]
    group = [e._replace(labels=False) for e in group]
    table = request_table(group, [], False).to_pydict()
    assert table["request_id"] == ["r/0", "r/1", "s"] and table["prediction"] == [1.25, 2.5, None]


def counting_batcher(**kwargs: Any) -> tuple[Batcher, list[int]]:
    model = iris_classifier()
    calls: list[int] = []

    def call(rows: Rows) -> tuple[Any, Any]:
        calls.append(len(rows))
        return model.predict(rows.frame), None

    return Batcher(call, arriving=lambda: 0, **kwargs), calls


async def test_batcher_merges_concurrent_requests_and_runs_large_ones_alone() -> None:
    batcher, calls = counting_batcher(max_batch_size=8, max_latency_ms=5)
    one = Rows(tuple(IRIS_FEATURES), np.asarray(ROWS[:1]))
    results = await asyncio.gather(*[batcher.submit(one) for _ in range(12)])
    assert all(list(preds) == ["setosa"] for preds, _ in results)
    assert calls == [8, 4]  # two batches, capped at max_batch_size rows
    calls.clear()
    x, _ = iris()
    big = Rows(tuple(IRIS_FEATURES), x.to_numpy()[:6])  # >= half a batch: alone, no merging
    await asyncio.gather(batcher.submit(big), batcher.submit(big))
    assert calls == [6, 6]
    calls.clear()
    assert list((await batcher.submit(one))[0]) == ["setosa"] and calls == [1]  # alone: no wait


async def test_cancelled_leader_does_not_strand_its_batch() -> None:
    batcher, calls = counting_batcher(max_batch_size=8, max_latency_ms=5)
    one = Rows(tuple(IRIS_FEATURES), np.asarray(ROWS[:1]))
    leader = asyncio.ensure_future(batcher.submit(one))
    followers = [asyncio.ensure_future(batcher.submit(one)) for _ in range(3)]
    await asyncio.sleep(0)  # the leader is forming its batch; the followers queue behind it
    leader.cancel()
    results = await asyncio.wait_for(asyncio.gather(*followers), 5)
    assert [list(p) for p, _ in results] == [["setosa"]] * 3 and leader.cancelled()
    assert calls == [4]  # one batch, dispatched although its leader gave up


async def test_a_request_the_model_refuses_fails_alone_in_a_batch() -> None:
    model = iris_classifier()
    calls: list[int] = []

    def call(rows: Rows) -> tuple[Any, Any]:
        calls.append(len(rows))
        if np.isnan(rows.array).any():
            raise ValueError("Input X contains NaN")
        return model.predict(rows.frame), None

    batcher = Batcher(call, arriving=lambda: 0, max_batch_size=8, max_latency_ms=5)
    good = Rows(tuple(IRIS_FEATURES), np.asarray(ROWS[:1]))
    bad = Rows(tuple(IRIS_FEATURES), np.asarray([[np.nan, 3.5, 1.4, 0.2]]))
    results = await asyncio.gather(batcher.submit(good), batcher.submit(bad), batcher.submit(good),
                                   return_exceptions=True)
    assert [list(r[0]) for r in (results[0], results[2])] == [["setosa"], ["setosa"]]  # type: ignore[index]
    assert isinstance(results[1], ValueError) and "NaN" in str(results[1])
    assert calls == [3, 1, 1, 1]  # the merged call, then each request alone


async def test_after_a_batch_of_one_requests_skip_the_loop_turn_until_the_next_probe() -> None:
    from shipyard.serving.batching import PROBE_EVERY

    batcher, calls = counting_batcher(max_batch_size=8, max_latency_ms=5)
    one = Rows(tuple(IRIS_FEATURES), np.asarray(ROWS[:1]))
    await batcher.submit(one)  # leads a batch of one: nobody else around
    burst = await asyncio.gather(*[batcher.submit(one) for _ in range(PROBE_EVERY + 4)])
    assert all(list(p) == ["setosa"] for p, _ in burst)
    # the first PROBE_EVERY of the burst ran alone at once; the probe after them merged the rest
    assert calls == [1] * (1 + PROBE_EVERY) + [4]


def test_a_forked_process_makes_its_own_request_ids() -> None:
    import os

    from shipyard.serving.answers import new_request_id

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write one id and leave at once
        os.write(write, new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    os.close(read)
    parent = new_request_id()
    assert len(child) == len(parent) == 32 and child[:16] != parent[:16]


async def test_a_model_with_long_and_boolean_inputs_answers_rows_records_and_columns(harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A registered scikit-learn model whose signature has long and boolean inputs, as the feature
    store example's has: every body shape takes the float-matrix path, and the model still gets its
    integer and boolean columns typed (its signature refuses a double where it declared a long)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    from shipyard.models import load_model, package_model, save_model
    from shipyard.objects.store import ObjectStore

    rng = np.random.default_rng(3)
    x = pd.DataFrame({"trips": rng.integers(0, 50, 200), "active": rng.integers(0, 2, 200).astype(bool),
                      "rate": rng.random(200)})
    y = np.where(x["trips"] + 20 * x["rate"] > 30, "yes", "no")
    objects = ObjectStore.open(tmp_path / "objects")
    packaged = package_model(objects, save_model(LogisticRegression().fit(x, y), tmp_path / "m", "sklearn").parent,
                             "sklearn", sample=x)
    assert [c.type for c in packaged.signature.inputs] == ["long", "boolean", "double"]
    model = load_model(objects, packaged.model_oid, "sklearn")
    h = harness({("trips", 1): model}, {"trips": single_table("trips", 1)})
    rows = [[40, True, 0.9], [2, False, 0.1]]
    expected = LogisticRegression().fit(x, y).predict(pd.DataFrame(rows, columns=list(x.columns))).tolist()
    bodies = [{"dataframe_split": {"columns": list(x.columns), "data": rows}},  # rows in the model's order
              {"dataframe_split": {"columns": ["rate", "trips", "active"], "data": [[r[2], r[0], r[1]] for r in rows]}},
              {"dataframe_records": [dict(zip(x.columns, r, strict=True)) for r in rows]},
              {"inputs": {"trips": [40, 2], "active": [True, False], "rate": [0.9, 0.1]}}]
    for body in bodies:
        r = await h.client.post("/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["predictions"] == expected, body
    r = await h.client.post("/invocations", json={"dataframe_split": {"columns": list(x.columns), "data": [[2.5, True, 0.5]]}})
    assert r.status_code == 422 and "'trips': expected long, got double" in r.json()["error"]  # the client's mistake
    typed = to_rows(Inputs(["trips", "active", "rate"], None, rows, 2),
                    (Feature("trips", "long"), Feature("active", "boolean"), Feature("rate", "double")), "data")
    assert typed.array is not None and [str(t) for t in typed.frame.dtypes] == ["int64", "bool", "float64"]
    huge = to_rows(Inputs(["trips", "active", "rate"], None, [[2**60 + 1, True, 0.5]], 1),
                   (Feature("trips", "long"), Feature("active", "boolean"), Feature("rate", "double")), "data")
    assert huge.array is None and huge.frame["trips"].tolist() == [2**60 + 1]  # past 2**53: kept whole
