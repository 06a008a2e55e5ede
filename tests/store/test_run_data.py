"""``runs.run_data``: a run's params, tags, newest metrics, dataset inputs and artifacts in one query."""

import json
import math

from shipyard.store import runs


def test_run_data_reads_every_table_of_many_runs_in_one_union(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as session:
        exp = runs.experiment_by_name(session, "e")
        a = runs.create_run(session, experiment_id=exp.id, name="a", tags={"team": "x", "note": ""}).id
        b = runs.create_run(session, experiment_id=exp.id, name="b").id
        empty = runs.create_run(session, experiment_id=exp.id, name="empty").id
        runs.log_params(session, a, {"lr": 0.1, "depth": 3})
        runs.log_params(session, b, {"lr": 0.2})
        runs.log_metrics(session, a, [runs.MetricValue("loss", 1.0 / (i + 1), step=i, timestamp=1000 + i)
                                      for i in range(3)] + [runs.MetricValue("nan", float("nan"), 0, 5)])
        runs.log_inputs(session, a, [{"name": "raw", "digest": "d1", "context": "train", "source": "s3://x",
                                      "source_type": "s3", "schema": '{"a": 1}', "profile": "p",
                                      "tags": json.dumps([{"key": "k", "value": "v"}])}])
        runs.log_artifacts(session, a, [("z.txt", "oid-z", 3), ("a/b.bin", "oid-b", 12)])
    with store.read() as session:
        data = runs.run_data(session, [a, b, empty])
        lean = runs.run_data(session, [a], with_files=False)[a]
    got = data[a]
    assert got.params == {"lr": "0.1", "depth": "3"} and got.tags == {"team": "x", "note": ""}
    assert got.metrics["loss"] == (1.0 / 3, 2, 1002)
    assert math.isnan(got.metrics["nan"][0]) and got.metrics["nan"][1:] == (0, 5)
    assert got.inputs == [{"name": "raw", "digest": "d1", "context": "train", "source": "s3://x", "source_type": "s3",
                           "schema": '{"a": 1}', "profile": "p", "tags": [{"key": "k", "value": "v"}]}]
    assert got.artifacts == [("a/b.bin", "oid-b", 12), ("z.txt", "oid-z", 3)]
    assert data[b].params == {"lr": "0.2"} and data[b].metrics == {} and data[b].artifacts == []
    assert data[empty] == runs.RunData({}, {}, {}, [], [])
    assert lean.params == got.params and lean.metrics.keys() == got.metrics.keys()
    assert lean.inputs == [] and lean.artifacts == []


def test_model_data_and_artifact_upsert(store) -> None:  # type: ignore[no-untyped-def]
    from shipyard.store import logged_models as lm

    with store.write() as session:
        exp = runs.experiment_by_name(session, "e")
        run = runs.create_run(session, experiment_id=exp.id, name="r").id
        for mid in ("m-1", "m-2"):
            session.add(lm.LoggedModel(id=mid, experiment_id=exp.id, name=mid, artifact_location="x"))
        session.flush()
        lm.set_tags(session, "m-1", {"t": "1"})
        lm.log_params(session, "m-1", {"p": "2"})
        lm.log_metrics(session, run, [runs.MetricValue("acc", 0.5, 2, 20, model_id="m-1", dataset_name="d"),
                                      runs.MetricValue("acc", float("nan"), 1, 10, model_id="m-1")])
        lm.record_artifacts(session, "m-1", [("MLmodel", "o1", 1), ("model.pkl", "o2", 2)])
    with store.write() as session:
        lm.record_artifacts(session, "m-1", [("MLmodel", "o3", 3)])  # uploaded again: replaces its row
    with store.read() as session:
        tags, params, metrics = lm.model_data(session, ["m-1", "m-2"])
        files = lm.artifacts_of(session, "m-1")
    assert tags == {"m-1": {"t": "1"}, "m-2": {}} and params == {"m-1": {"p": "2"}, "m-2": {}}
    assert [(m.step, m.timestamp, m.dataset_name, m.run_id) for m in metrics["m-1"]] == [(1, 10, None, run),
                                                                                          (2, 20, "d", run)]
    assert math.isnan(metrics["m-1"][0].value) and metrics["m-1"][1].value == 0.5 and metrics["m-2"] == []
    assert files == [("MLmodel", "o3", 3), ("model.pkl", "o2", 2)]
