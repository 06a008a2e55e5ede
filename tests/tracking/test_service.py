"""Tracking services on real SQLite and PostgreSQL: batches, immutability, search, diffs."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from shipyard.errors import InputError, NotFound
from shipyard.store import runs as repo
from shipyard.tracking import diff, search, service


def _run(store, **kw) -> str:  # type: ignore[no-untyped-def]
    with store.write() as s:
        return service.create_run(s, experiment=kw.pop("experiment", "exp"), **kw)


def _count(store, table) -> int:  # type: ignore[no-untyped-def]
    with store.read() as s:
        return s.scalar(select(func.count()).select_from(table))


def test_batch_writes_metrics_params_tags(store) -> None:  # type: ignore[no-untyped-def]
    run_id = _run(store, name="a")
    metrics = service.parse_metrics([{"key": "loss", "value": 1.0 / (i + 1), "step": i} for i in range(998)])
    with store.write() as s:
        assert service.log_batch(s, run_id, metrics=metrics, params={"lr": 0.1}, tags={"team": "a"})
    with store.read() as s:
        record = service.get_run(s, run_id)
        history = service.metric_history(s, run_id, "loss")
    assert record.params == {"lr": "0.1"} and record.tags == {"team": "a"}
    assert record.metrics["loss"] == pytest.approx(1 / 998) and len(history) == 998


@pytest.mark.parametrize(("metrics", "params", "tags", "words"), [
    ([{"key": "ok", "value": 1.0}, {"key": "bad", "value": "nan"}], {}, {}, "valid double"),
    ([{"key": "ok", "value": 1.0}, {"key": "bad", "value": None}], {}, {}, "Missing value for required parameter"),
    ([{"key": "ok", "value": "high"}], {}, {}, r"Invalid value \"high\" for parameter 'metrics\[0\].value'"),
    ([{"key": "x" * 251, "value": 1.0}], {}, {}, "251 characters"),
    ([{"key": "ok", "value": 1.0, "step": "two"}], {}, {}, "Step must be a valid long"),
    ([{"key": "ok", "value": 1.0, "timestamp": -1}], {}, {}, "Timestamp must be a nonnegative long"),
    ([{"key": "ok", "value": 1.0}], {}, {"../etc": "x"}, "would resolve to '../etc'"),
    ([{"key": "ok", "value": 1.0}], {}, {"a/./b": "x"}, "would resolve to 'a/b'"),
    ([{"key": "ok", "value": 1.0}], {}, {"emoji🙂": "x"}, r"Names may only contain alphanumerics"),
])
def test_a_bad_item_fails_the_whole_batch(store, metrics, params, tags, words) -> None:  # type: ignore[no-untyped-def]
    run_id = _run(store)
    with pytest.raises(InputError, match=words), store.write() as s:
        service.log_batch(s, run_id, metrics=service.parse_metrics(metrics), params=params, tags=tags)
    assert _count(store, repo.Metric) == 0 and _count(store, repo.Param) == 0 and _count(store, repo.Tag) == 0


def test_param_conflict_rolls_back_the_batch(store) -> None:  # type: ignore[no-untyped-def]
    run_id = _run(store)
    with store.write() as s:
        service.log_batch(s, run_id, params={"depth": 3})
    with store.write() as s:  # the same value again is fine
        service.log_batch(s, run_id, params={"depth": "3"})
    points = service.parse_metrics([("acc", 0.5)])
    with pytest.raises(InputError, match="params cannot change"), store.write() as s:
        service.log_batch(s, run_id, metrics=points, params={"depth": 4})
    assert _count(store, repo.Metric) == 0


def test_unicode_keys_are_accepted(store) -> None:  # type: ignore[no-untyped-def]
    run_id = _run(store)
    with store.write() as s:
        service.log_batch(s, run_id, metrics=service.parse_metrics([("précision/классы", 0.5)]), params={"模型": "rf"})
    with store.read() as s:
        record = service.get_run(s, run_id)
    assert record.metrics == {"précision/классы": 0.5} and record.params == {"模型": "rf"}


def test_batch_limits(store) -> None:  # type: ignore[no-untyped-def]
    run_id = _run(store)
    too_many = service.parse_metrics([("m", 1.0)] * 1001)
    with pytest.raises(InputError, match="at most 1000 metrics"), store.write() as s:
        service.log_batch(s, run_id, metrics=too_many)
    with pytest.raises(InputError, match="at most 100 params"), store.write() as s:
        service.log_batch(s, run_id, params={f"p{i}": i for i in range(101)})
    with pytest.raises(InputError, match="at most 100 tags"), store.write() as s:
        service.log_batch(s, run_id, tags={f"t{i}": i for i in range(101)})
    assert _count(store, repo.Metric) == 0


def test_unknown_and_deleted_runs(store) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(NotFound, match=f"Run with id={'0' * 32} not found"), store.write() as s:
        service.log_batch(s, "0" * 32, params={"a": 1})
    run_id = _run(store)
    with store.write() as s:
        repo.update_run(s, run_id, lifecycle_stage="deleted")
    with pytest.raises(InputError, match=r"must be in the 'active' state\. Current state is deleted\."), store.write() as s:
        service.log_batch(s, run_id, params={"a": 1})


def test_long_values_are_truncated_as_mlflow_does(store) -> None:  # type: ignore[no-untyped-def]
    run_id = _run(store)
    with store.write() as s:
        service.log_batch(s, run_id, params={"p": "v" * 6001}, tags={"t": "w" * 8001})
    with store.read() as s:
        record = service.get_run(s, run_id)
    assert record.params["p"] == "v" * 6000 and record.tags["t"] == "w" * 8000


def test_batch_id_makes_retries_idempotent(store) -> None:  # type: ignore[no-untyped-def]
    run_id = _run(store)
    points = service.parse_metrics([("m", float(i), i) for i in range(10)])
    for expected in (True, False):
        with store.write() as s:
            assert service.log_batch(s, run_id, metrics=points, batch_id="b-1") is expected
    assert _count(store, repo.Metric) == 10


def _seed(store) -> dict[str, str]:  # type: ignore[no-untyped-def]
    ids = {}
    for i in range(12):
        run_id = _run(store, name=f"r{i}", start_time=1_000_000 + i)
        with store.write() as s:
            metrics = [("acc", i / 10)] if i != 11 else []
            service.log_batch(s, run_id, metrics=service.parse_metrics(metrics),
                              params={"depth": str(i % 3)}, tags={"team": "a" if i % 2 else "b"})
        ids[f"r{i}"] = run_id
    return ids


def _names(store, **kw) -> list[str]:  # type: ignore[no-untyped-def]
    with store.read() as s:
        runs, _ = search.search_runs(s, **kw)
    return [r.name for r in runs]


def test_search_filter_or_and_order(store) -> None:  # type: ignore[no-untyped-def]
    _seed(store)
    assert _names(store, filter_string="metrics.acc > 0.75 and params.depth = '0'", order_by=["metrics.acc DESC"]) == ["r9"]
    assert _names(store, filter_string="(params.depth = '1' or params.depth = '2') and tags.team = 'b'",
                  order_by=["attributes.start_time"]) == ["r2", "r4", "r8", "r10"]
    assert _names(store, filter_string="tags.team LIKE 'a%' and metrics.acc >= 0.5",
                  order_by=["metrics.acc ASC"]) == ["r5", "r7", "r9"]
    assert _names(store, filter_string="metrics.acc IS NULL") == ["r11"]
    ordered = _names(store, order_by=["metrics.acc DESC"])
    assert ordered[0] == "r10" and ordered[-1] == "r11"  # runs without the metric come last
    assert _names(store, filter_string="attributes.run_name IN ('r1', 'r3')", order_by=["start_time"]) == ["r1", "r3"]


def test_search_pages(store) -> None:  # type: ignore[no-untyped-def]
    _seed(store)
    seen, token = [], None
    while True:
        with store.read() as s:
            runs, token = search.search_runs(s, max_results=5, page_token=token, order_by=["attributes.start_time"])
        seen += [r.name for r in runs]
        if token is None:
            break
    assert seen == [f"r{i}" for i in range(12)]
    with pytest.raises(InputError, match="page token"), store.read() as s:
        search.search_runs(s, page_token="garbage!")


def test_diff_runs_and_parent_folding(store) -> None:  # type: ignore[no-untyped-def]
    old = _run(store, start_time=1)
    new = _run(store, start_time=2)
    stage = _run(store, parent_run_id=new, start_time=3)
    with store.write() as s:
        service.log_batch(s, old, metrics=service.parse_metrics([("acc", 0.8), ("loss", 0.5)]), params={"depth": "3"})
        service.log_batch(s, stage, metrics=service.parse_metrics([("acc", 0.9)]), params={"depth": "4"})
    with store.read() as s:
        a = diff.resolve_ref(s, None, None, exclude=new)
        b = diff.resolve_ref(s, "latest", None)
    assert (a.run_id, b.run_id) == (old, new)
    metrics = diff.diff_runs(a, b, "metrics")
    rows = {r.key: r for r in metrics.rows}
    assert rows["acc"].delta == pytest.approx(0.1) and rows["loss"].new is None
    markdown = metrics.to_markdown()
    assert "| acc | 0.8 | 0.9 | +0.1 (+12.5%) |" in markdown and "| loss | 0.5 | — | removed |" in markdown
    assert diff.diff_runs(a, b, "params").rows[0].to_dict()["new"] == "4"
    with pytest.raises(NotFound, match="neither a run id nor a git revision"), store.read() as s:
        diff.resolve_ref(s, "no-such-thing", None)
