import pytest

from shipyard.errors import InputError
from shipyard.store import runs


def test_run_lifecycle_params_metrics(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as session:
        exp = runs.experiment_by_name(session, "penguins")
        run = runs.create_run(session, experiment_id=exp.id, name="train", tags={"stage": "train"})
        runs.log_params(session, run.id, {"lr": 0.1, "depth": 3})
        runs.log_metrics(session, run.id, [runs.MetricValue("loss", 1.0 / (i + 1), step=i) for i in range(5)])
        run_id = run.id
    with store.write() as session:
        runs.log_params(session, run_id, {"lr": 0.1})  # same value again is fine
        with pytest.raises(InputError, match="params cannot change"):
            runs.log_params(session, run_id, {"lr": 0.2})
    with store.write() as session:
        runs.finish_run(session, run_id)
    with store.read() as session:
        run = runs.get_run(session, run_id)
        latest = session.get(runs.LatestMetric, (run_id, "loss"))
        assert run.status == "FINISHED" and run.end_time is not None
        assert latest.step == 4 and latest.value == pytest.approx(0.2)


def test_merged_latest_metrics_keep_nan_and_let_the_first_run_win(store) -> None:  # type: ignore[no-untyped-def]
    import math

    from shipyard.ci.collect import run_metrics as ci_metrics
    from shipyard.gates.runner import run_metrics as gate_metrics

    with store.write() as session:
        exp = runs.experiment_by_name(session, "nan")
        parent = runs.create_run(session, experiment_id=exp.id, name="pipeline")
        child = runs.create_run(session, experiment_id=exp.id, name="evaluate", parent_run_id=parent.id)
        runs.log_metrics(session, parent.id, [runs.MetricValue("auc", 0.5), runs.MetricValue("loss", 1.0)])
        runs.log_metrics(session, child.id, [runs.MetricValue("auc", float("nan"))])
        ids = (parent.id, child.id)
    with store.read() as session:
        merged = runs.merged_latest_metrics(session, [ids[1], ids[0]])
        assert math.isnan(merged["auc"]) and merged["loss"] == 1.0  # stored as 0 with is_nan
        assert runs.merged_latest_metrics(session, list(ids))["auc"] == 0.5
        assert math.isnan(ci_metrics(session, ids[0])["auc"])  # the stage run's value wins in CI
        assert gate_metrics(session, ids[0])["auc"] == 0.5  # the gate reads the run itself first
