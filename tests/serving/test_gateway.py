"""The gateway app in process (httpx ASGI transport): protocols, routing, fallback, log, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from shipyard.serving.routing import single_table
from tests.serving.models import (
    IRIS_FEATURES,
    ROW,
    Flaky,
    NaNs,
    Shifted,
    Slow,
    iris_classifier,
    iris_regressor,
)

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.anyio]


def oip(rows: list[dict[str, float]]) -> dict[str, Any]:
    return {"inputs": [{"name": k, "shape": [len(rows)], "datatype": "FP64", "data": [r[k] for r in rows]}
                       for k in rows[0]]}


def canary(weight: float, *, champion: int = 1, candidate: int = 2, strategy: str = "canary",
           shadow: float = 0.0, timeout_ms: float = 250.0) -> dict[str, Any]:
    return {"model": "iris", "strategy": strategy, "champion": champion, "candidate": candidate, "weight": weight,
            "shadow_percent": shadow, "sticky": {"header": "x-user", "key": None}, "warm": [champion, candidate],
            "deployment": 1, "candidate_timeout_ms": timeout_ms}


async def test_all_protocols_answer_with_version_and_request_id(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})
    c = h.client
    bodies = [
        ("/v2/models/iris/infer", oip([ROW])),
        ("/invocations", {"dataframe_split": {"columns": list(ROW), "data": [list(ROW.values())]}}),
        ("/invocations", {"dataframe_records": [ROW]}),
        ("/invocations", {"instances": [list(ROW.values())]}),
        ("/invocations", {"inputs": {k: [v] for k, v in ROW.items()}}),
        ("/v1/models/iris:predict", {"instances": [ROW]}),
    ]
    for path, body in bodies:
        r = await c.post(path, json=body)
        assert r.status_code == 200, (path, r.text)
        assert r.headers["x-shipyard-version"] == "1"
        assert len(r.headers["x-request-id"]) == 32
        doc = r.json()
        preds = doc["outputs"][0]["data"] if "outputs" in doc else doc["predictions"]
        assert preds == ["setosa"], (path, doc)
    for path in ("/health", "/ready", "/metrics", "/v2/models/iris", "/v2/models/iris/ready", "/nope"):
        r = await c.get(path)
        assert "x-shipyard-version" in r.headers and "x-request-id" in r.headers, path


async def test_client_request_id_is_kept_and_logged(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})
    r = await h.client.post("/invocations", json={"dataframe_records": [ROW, ROW]}, headers={"x-request-id": "abc-1"})
    assert r.headers["x-request-id"] == "abc-1"
    rows = h.rows()
    assert rows["request_id"].to_list() == ["abc-1/0", "abc-1/1"]
    assert rows.columns[:8] == ["request_id", "ts", "model", "version", "route", "status", "latency_ms", "error"]
    assert [f"feature.{f}" for f in IRIS_FEATURES] == rows.columns[8:12]
    assert rows["prediction"].to_list() == ["setosa", "setosa"]
    assert str(rows["ts"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    assert rows["score"].min() > 0.5


@pytest.mark.parametrize(("path", "body", "field", "words"), [
    ("/invocations", {"instancs": [[1, 2, 3, 4]]}, "instancs", "expected exactly one of"),
    ("/invocations", {"dataframe_split": {"columns": "x", "data": []}}, "dataframe_split.columns", "list of column"),
    ("/invocations", {"dataframe_split": {"columns": list(ROW), "data": [[1, 2]]}}, "dataframe_split.data[0]",
     "expected a list of 4 values"),
    ("/invocations", {"dataframe_records": [{"sepal_length": 1}]}, "dataframe_records", "missing feature 'sepal_width'"),
    ("/invocations", {"instances": [[1, 2, 3]]}, "instances[0]", "expected 4 values per row"),
    ("/invocations", {"dataframe_records": [{**ROW, "petal_width": "wide"}]}, "dataframe_records",
     "feature 'petal_width' expects a number"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": [1], "data": [1]}]}, "inputs[0].datatype",
     "required field is missing"),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "data": [1]}]},
     "inputs[0].data", "needs 2"),
    ("/v2/models/iris/infer", {"input": []}, "inputs", "non-empty list"),
])
async def test_wrong_schema_is_4xx_naming_the_field(harness, path, body, field, words) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})
    r = await h.client.post(path, json=body)
    # Triton and KServe answer 400 for a request off the protocol; MLflow-shaped bodies get 422
    assert r.status_code == (400 if path.startswith("/v2/") else 422), r.text
    assert r.json()["field"] == field
    assert words in r.json()["error"]
    assert h.rows().height == 0


async def test_not_json_and_unknown_model(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})
    r = await h.client.post("/invocations", content=b"{nope")
    assert r.status_code == 422 and r.json()["field"] == "body" and "not valid JSON" in r.json()["error"]
    r = await h.client.post("/v2/models/irsi/infer", json=oip([ROW]))
    assert r.status_code == 404 and "unknown model 'irsi'" in r.json()["error"]
    assert "did you mean 'iris'" in r.json()["hint"]
    r = await h.client.get("/v2/models/irsi/ready")
    assert r.status_code == 404


async def test_body_over_the_limit_is_413(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)}, max_body_bytes=1000)
    r = await h.client.post("/invocations", json={"instances": [list(ROW.values())] * 100})
    assert r.status_code == 413 and "limit is 1000 bytes" in r.json()["error"]

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(20):
            yield b" " * 100

    r = await h.client.post("/invocations", content=chunks())
    assert r.status_code == 413


async def test_canary_weight_and_sticky_header(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier(), ("iris", 2): iris_classifier(0.5)}, {"iris": canary(30.0)})
    seen: dict[str, set[str]] = {}
    versions = []
    for i in range(300):
        user = f"user-{i % 40}"
        r = await h.client.post("/v2/models/iris/infer", json=oip([ROW]), headers={"x-user": user})
        assert r.status_code == 200
        seen.setdefault(user, set()).add(r.headers["x-shipyard-version"])
        versions.append(r.headers["x-shipyard-version"])
    assert all(len(v) == 1 for v in seen.values())
    share = versions.count("2") / len(versions)
    assert 0.1 < share < 0.5
    rows = h.rows()
    assert set(rows.filter(rows["version"] == 2)["route"].to_list()) == {"canary"}
    assert set(rows.filter(rows["version"] == 1)["route"].to_list()) == {"primary"}


@pytest.mark.parametrize("fault", ["raises", "nan", "timeout", "not_loaded"])
async def test_failing_candidate_never_fails_a_request(harness, fault: str) -> None:  # type: ignore[no-untyped-def]
    if fault == "nan":
        champion, cand = iris_regressor(), NaNs(iris_regressor().estimator, IRIS_FEATURES[:3])
    elif fault == "raises":
        champion, cand = iris_classifier(), Flaky(iris_classifier(), every=1)
    elif fault == "timeout":
        champion, cand = iris_classifier(), Slow(iris_classifier(), 0.3)
    else:
        champion, cand = iris_classifier(), RuntimeError("model file is corrupt")
    h = harness({("iris", 1): champion, ("iris", 2): cand}, {"iris": canary(100.0, timeout_ms=50)})
    row = {k: ROW[k] for k in IRIS_FEATURES[:3]} if fault == "nan" else ROW
    for _ in range(5):
        r = await h.client.post("/invocations", json={"dataframe_records": [row]})
        assert r.status_code == 200, r.text
        assert r.headers["x-shipyard-version"] == "1" and r.headers["x-shipyard-route"] == "primary"
        assert all(np.isfinite(v) for v in r.json()["predictions"]) if fault == "nan" else True
    rows = h.rows()
    errors = rows.filter(rows["status"] == "error")
    assert errors.height == 5 and set(errors["version"].to_list()) == {2}
    assert set(errors["route"].to_list()) == {"canary"}
    metrics = (await h.client.get("/metrics")).text
    assert 'shipyard_candidate_errors_total{kind=' in metrics


async def test_champion_failure_is_a_500_naming_the_model(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): Flaky(iris_classifier(), every=1)}, {"iris": single_table("iris", 1)})
    r = await h.client.post("/invocations", json={"instances": [ROW]})
    assert r.status_code == 500 and "model 'iris' failed" in r.json()["error"]


async def test_shadow_runs_off_the_request_path_and_logs_both(harness) -> None:  # type: ignore[no-untyped-def]
    champion = iris_classifier()
    h = harness({("iris", 1): champion, ("iris", 2): Shifted(champion, "virginica")},
                {"iris": canary(0.0, strategy="shadow", shadow=100.0)})
    for _ in range(10):
        r = await h.client.post("/invocations", json={"instances": [ROW]})
        assert r.headers["x-shipyard-version"] == "1" and r.json()["predictions"] == ["setosa"]
    await h.gateway.drain_shadows()
    assert h.gateway.shadow_in_flight == 0
    rows = h.rows()
    shadow = rows.filter(rows["route"] == "shadow")
    assert shadow.height == 10 and set(shadow["prediction"].to_list()) == {"virginica"}
    primary = rows.filter(rows["route"] == "primary")
    assert sorted(shadow["request_id"].to_list()) == sorted(primary["request_id"].to_list())


async def test_ab_assigns_a_and_b(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier(), ("iris", 2): iris_classifier(0.5)},
                {"iris": canary(50.0, strategy="ab")})
    for i in range(60):
        await h.client.post("/invocations", json={"instances": [ROW]}, headers={"x-user": f"u{i}"})
    rows = h.rows()
    assert set(rows["route"].to_list()) == {"a", "b"}
    assert set(rows.filter(rows["route"] == "b")["version"].to_list()) == {2}


async def test_feedback_is_stored(harness) -> None:  # type: ignore[no-untyped-def]
    import polars as pl

    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})
    r = await h.client.post("/v1/feedback", json={"feedback": [{"request_id": "r1", "label": "setosa"},
                                                               {"request_id": "r2", "label": "virginica"}]})
    assert r.status_code == 202 and r.json() == {"accepted": 2}
    r = await h.client.post("/v1/feedback", json={"feedback": [{"request_id": "r1"}]})
    assert r.status_code == 422 and r.json()["field"] == "feedback[0].label"
    h.log.flush()
    files = list((h.log.feedback_dir).rglob("part-*.parquet"))
    got = pl.read_parquet(files[0], hive_partitioning=False)
    assert got.columns == ["request_id", "ts", "label"] and got["label"].to_list() == ["setosa", "virginica"]


async def test_ready_reports_a_stale_routing_table(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})

    def broken() -> int:
        raise ConnectionError("store unreachable")

    h.source.revision = broken
    assert h.gateway.follower.refresh() is False
    r = await h.client.get("/ready")
    assert r.status_code == 200 and r.json()["stale"] is True
    assert "store is unreachable" in r.json()["reason"] and r.headers["x-shipyard-routing"] == "stale"
    r = await h.client.post("/invocations", json={"instances": [ROW]})
    assert r.status_code == 200


async def test_champion_that_cannot_load_is_not_ready(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): RuntimeError("bad bytes")}, {"iris": single_table("iris", 1)})
    r = await h.client.get("/ready")
    assert r.status_code == 503 and "failed: RuntimeError: bad bytes" in r.json()["models"]["iris"]["1"]
    r = await h.client.post("/invocations", json={"instances": [ROW]})
    # not the client's mistake, nor the model failing on this input: unavailable here (retry elsewhere)
    assert r.status_code == 503 and "failed to load" in r.json()["error"]


async def test_micro_batching_merges_concurrent_requests(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)}, batching=True,
                max_batch_size=32, max_latency_ms=20)
    rows = [dict(zip(IRIS_FEATURES, r, strict=True)) for r in
            [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]]
    expected = ["setosa", "virginica", "versicolor"]
    results = await asyncio.gather(*[h.client.post("/invocations", json={"dataframe_records": [rows[i % 3]]})
                                     for i in range(30)])
    assert [r.json()["predictions"][0] for r in results] == [expected[i % 3] for i in range(30)]
    metrics = (await h.client.get("/metrics")).text
    count = [line for line in metrics.splitlines() if line.startswith("shipyard_batch_rows_count")]
    assert count and float(count[0].split()[-1]) < 30


async def test_metrics_per_model_and_version(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})
    await h.client.post("/invocations", json={"instances": [ROW]})
    text = (await h.client.get("/metrics")).text
    assert 'shipyard_requests_total{model="iris",route="primary",status="ok",version="1"} 1.0' in text
    assert 'shipyard_request_latency_seconds_count{model="iris",version="1"} 1.0' in text
    assert 'shipyard_predictions_total{label="setosa",model="iris",version="1"} 1.0' in text


@pytest.mark.parametrize("batching", [False, True])
async def test_a_version_no_longer_routed_is_freed(harness, batching: bool) -> None:  # type: ignore[no-untyped-def]
    """After a rollout replaces version 1, nothing in the gateway keeps its model alive."""
    import gc
    import weakref

    from tests.serving.models import Fitted

    first = Fitted(iris_classifier().estimator, IRIS_FEATURES)
    h = harness({("iris", 1): first, ("iris", 2): iris_classifier()}, {"iris": single_table("iris", 1)},
                batching=batching)
    r = await h.client.post("/invocations", json={"dataframe_records": [ROW]})
    assert r.status_code == 200 and r.headers["x-shipyard-version"] == "1"
    gone = weakref.ref(first)
    del first, h.loader.models[("iris", 1)]
    h.source.set({"iris": single_table("iris", 2)})
    h.gateway.follower.refresh()
    r = await h.client.post("/invocations", json={"dataframe_records": [ROW]})
    assert r.status_code == 200 and r.headers["x-shipyard-version"] == "2"
    h.log.flush()  # the request log's queue holds rows, not models
    gc.collect()
    assert gone() is None
