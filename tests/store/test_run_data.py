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
