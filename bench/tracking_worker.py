"""One timed tracking task, run by our interpreter or by MLflow's (bench/.peers/mlflow).

``python tracking_worker.py SIDE TASK WORKDIR [URI]`` prints the seconds the task took, measured
inside the process (interpreter start-up and imports excluded, the same for both sides). SIDE is
``ours`` or ``mlflow``; the REST tasks always use MLflow's client, pointed at URI.
"""

from __future__ import annotations

import json
import os
import sys
import time

N_METRIC = 2000
N_BATCH = 10
N_RUNS = 100
N_SEARCH_RUNS = 10_000
N_REST_CALLS = 200
N_MODEL_ROUND_TRIPS = 5
FILTER = "tags.team = 'a' and metrics.acc > 0.5"
ORDER = ["metrics.loss ASC"]


def ours(task: str, work: str) -> float:
    os.chdir(work)
    os.environ["SHIPYARD_EXPERIMENT"] = f"bench-{task}"
    import shipyard

    if task == "log_metric":
        with shipyard.start_run():
            start = time.perf_counter()
            for i in range(N_METRIC):
                shipyard.log_metric("loss", 1.0 / (i + 1), step=i)
            shipyard.flush()
            return time.perf_counter() - start
    if task == "log_batch":
        with shipyard.start_run():
            start = time.perf_counter()
            for s in range(N_BATCH):
                shipyard.log_metrics({f"m{k}": float(k * s) for k in range(1000)}, step=s)
            shipyard.flush()
            return time.perf_counter() - start
    if task == "runs":
        shipyard.start_run().__exit__(None, None, None)  # warm: store open, experiment created
        start = time.perf_counter()
        for i in range(N_RUNS):
            with shipyard.start_run():
                shipyard.log_params({"lr": 10 ** -(i % 5), "depth": i % 10})
                shipyard.log_metric("acc", (i % 100) / 100)
        return time.perf_counter() - start
    if task == "search":
        from shipyard.tracking.search import search_runs
        from shipyard.workspace import Workspace

        ws = Workspace.discover()
        with ws.store.read() as session:
            start = time.perf_counter()
            runs, _ = search_runs(session, filter_string=FILTER, order_by=ORDER, max_results=1000,
                                  experiment_names=["bench-search"])
            elapsed = time.perf_counter() - start
        assert len(runs) == 1000, len(runs)
        return elapsed
    raise SystemExit(f"unknown task {task}")


def seed_ours(work: str) -> None:
    """10k runs written in one transaction with plain inserts (as seed_mlflow does for MLflow)."""
    import uuid

    os.chdir(work)
    from shipyard.store import runs as repo
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    ts = int(time.time() * 1000)
    with ws.store.write() as session:
        exp = repo.experiment_by_name(session, "bench-search").id
        runs, params, tags, metrics = [], [], [], []
        for i in range(N_SEARCH_RUNS):
            rid = uuid.uuid4().hex
            runs.append({"id": rid, "experiment_id": exp, "name": f"r{i}", "status": "FINISHED",
                         "start_time": 1_700_000_000_000 + i, "end_time": ts, "parent_run_id": None, "source": "api",
                         "user": "bench", "host": None, "git_commit": None, "git_branch": None, "git_dirty": None,
                         "lifecycle_stage": "active"})
            params += [{"run_id": rid, "key": "lr", "value": str(10 ** -(i % 5))},
                       {"run_id": rid, "key": "depth", "value": str(i % 10)},
                       {"run_id": rid, "key": "seed", "value": str(i)}]
            tags.append({"run_id": rid, "key": "team", "value": "a" if i % 2 else "b"})
            for key, value in (("acc", (i % 100) / 100), ("loss", 1 - (i % 100) / 100)):
                metrics.append({"run_id": rid, "key": key, "value": value, "step": 0, "timestamp": ts})
        for table, rows in ((repo.Run, runs), (repo.Param, params), (repo.Tag, tags), (repo.Metric, metrics),
                            (repo.LatestMetric, metrics)):
            session.execute(table.__table__.insert(), rows)


def mlflow_side(task: str, work: str) -> float:
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(f"sqlite:///{work}/mlflow.db")
    client = MlflowClient()
    mlflow.set_experiment(f"bench-{task}")
    if task == "log_metric":
        with mlflow.start_run():
            start = time.perf_counter()
            for i in range(N_METRIC):
                mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
            return time.perf_counter() - start
    if task == "log_batch":
        with mlflow.start_run() as run:
            ts = int(time.time() * 1000)
            start = time.perf_counter()
            for s in range(N_BATCH):
                client.log_batch(run.info.run_id, metrics=[Metric(f"m{k}", float(k * s), ts, s) for k in range(1000)])
            return time.perf_counter() - start
    if task == "runs":
        with mlflow.start_run():
            pass
        start = time.perf_counter()
        for i in range(N_RUNS):
            with mlflow.start_run():
                mlflow.log_params({"lr": 10 ** -(i % 5), "depth": i % 10})
                mlflow.log_metric("acc", (i % 100) / 100)
        return time.perf_counter() - start
    if task == "search":
        exp = client.get_experiment_by_name("bench-search")
        start = time.perf_counter()
        runs = client.search_runs([exp.experiment_id], FILTER, order_by=ORDER, max_results=1000)
        elapsed = time.perf_counter() - start
        assert len(runs) == 1000, len(runs)
        return elapsed
    raise SystemExit(f"unknown task {task}")


def seed_mlflow(work: str) -> None:
    """The same 10k runs written straight through MLflow's own SQLAlchemy models in one transaction
    (its client takes ~20 ms per run here, which would make seeding alone last an hour)."""
    import uuid

    import mlflow
    from mlflow.store.tracking.dbmodels.models import (
        SqlLatestMetric,
        SqlMetric,
        SqlParam,
        SqlRun,
        SqlTag,
    )
    from mlflow.tracking._tracking_service.utils import _get_store

    mlflow.set_tracking_uri(f"sqlite:///{work}/mlflow.db")
    exp = mlflow.set_experiment("bench-search").experiment_id
    store = _get_store()
    ts = int(time.time() * 1000)
    runs, params, tags, metrics = [], [], [], []
    for i in range(N_SEARCH_RUNS):
        rid = uuid.uuid4().hex
        runs.append({"run_uuid": rid, "name": f"r{i}", "source_type": "LOCAL", "source_name": "", "entry_point_name": "",
                     "user_id": "bench", "status": "FINISHED", "start_time": 1_700_000_000_000 + i, "end_time": ts,
                     "source_version": "", "lifecycle_stage": "active", "artifact_uri": f"{work}/art/{rid}",
                     "experiment_id": int(exp)})
        params += [{"key": "lr", "value": str(10 ** -(i % 5)), "run_uuid": rid},
                   {"key": "depth", "value": str(i % 10), "run_uuid": rid},
                   {"key": "seed", "value": str(i), "run_uuid": rid}]
        tags.append({"key": "team", "value": "a" if i % 2 else "b", "run_uuid": rid})
        for key, value in (("acc", (i % 100) / 100), ("loss", 1 - (i % 100) / 100)):
            metrics.append({"key": key, "value": value, "timestamp": ts, "step": 0, "is_nan": False, "run_uuid": rid})
    with store.ManagedSessionMaker() as session:
        for model, rows in ((SqlRun, runs), (SqlParam, params), (SqlTag, tags), (SqlMetric, metrics),
                            (SqlLatestMetric, metrics)):
            session.execute(model.__table__.insert(), rows)


def rest(task: str, uri: str) -> float:
    """MLflow's client against a server (ours or MLflow's): the same code both ways."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    mlflow.set_tracking_uri(uri)
    client = MlflowClient()
    exp = mlflow.set_experiment("bench-rest")
    run = client.create_run(exp.experiment_id)
    run_id = run.info.run_id
    client.log_metric(run_id, "warm", 1.0)
    if task == "rest_log_metric":
        start = time.perf_counter()
        for i in range(N_REST_CALLS):
            client.log_metric(run_id, "loss", 1.0 / (i + 1), step=i)
        return (time.perf_counter() - start) / N_REST_CALLS
    if task == "rest_log_batch":
        ts = int(time.time() * 1000)
        start = time.perf_counter()
        for s in range(N_BATCH):
            client.log_batch(run_id, metrics=[Metric(f"m{k}", float(k * s), ts, s) for k in range(1000)])
        return time.perf_counter() - start
    if task == "rest_model_round_trip":
        return model_round_trip(uri)
    raise SystemExit(f"unknown task {task}")


def model_round_trip(uri: str) -> float:
    """Median seconds of ``sklearn.log_model`` + ``register_model`` + ``load_model`` (MLflow 3 client).

    ``pip_requirements`` is given so the client skips its own requirement inference (a subprocess
    that imports the model, ~5 s, the same for any server); what is left is the client's own work
    plus the server's answers. One warm-up round trip first.
    """
    import statistics

    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("bench-models")
    rng = np.random.default_rng(0)
    x = rng.random((200, 4))
    model = LogisticRegression().fit(x, (x[:, 0] > 0.5).astype(int))
    times = []
    for i in range(N_MODEL_ROUND_TRIPS + 1):
        start = time.perf_counter()
        with mlflow.start_run():
            info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
        version = mlflow.register_model(info.model_uri, "bench-model").version
        loaded = mlflow.sklearn.load_model(f"models:/bench-model/{version}")
        elapsed = time.perf_counter() - start
        assert (loaded.predict(x) == model.predict(x)).all()
        if i:
            times.append(elapsed)
    return statistics.median(times)


if __name__ == "__main__":
    side, task, work = sys.argv[1:4]
    if task.startswith("rest_"):
        print(json.dumps(rest(task, sys.argv[4])))
    elif task == "seed":
        (seed_ours if side == "ours" else seed_mlflow)(work)
        print("0")
    else:
        print(json.dumps((ours if side == "ours" else mlflow_side)(task, work)))
