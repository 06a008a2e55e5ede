"""MLflow's tracking REST API, so MLflow's own client (``MLFLOW_TRACKING_URI=http://...``) works.

Served under ``/api/2.0/mlflow/`` and mirrored under ``/ajax-api/2.0/mlflow/``: experiments
(create, get, get-by-name, search, update, delete, restore, set-experiment-tag), runs (create,
update, get, search, delete, restore, log-metric, log-parameter, set-tag, delete-tag, log-batch,
log-inputs, outputs), metrics (get-history, get-history-bulk, get-history-bulk-interval),
artifacts/list. Logged models are in ``mlflow_logged_models``, the artifact proxy in
``mlflow_artifacts``. MLflow's limits, validation words and codes hold (``tracking/validation.py``);
bodies and answers are proto3 JSON: int64 fields may arrive as strings, doubles may be "NaN" or
"Infinity", unknown fields are ignored.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.errors import AlreadyExists, InputError, NotFound, PathEscapeError
from shipyard.server.common import API_DOCS, in_thread, json_body, mlflow_param, mlflow_routes
from shipyard.server.errors import json_response
from shipyard.store import runs as repo
from shipyard.store.runs import MetricValue, now_ms
from shipyard.tracking import logged_models, search, service
from shipyard.tracking import validation as v
from shipyard.tracking.paths import safe_relative

VIEW_TYPES = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all", "1": "active", "2": "deleted", "3": "all"}


def _ws(request: Request) -> Any:
    return request.app.state.workspace


async def _params(request: Request) -> dict[str, Any]:
    """GET: the query string; POST/PATCH: the JSON body."""
    if request.method == "GET":
        out: dict[str, Any] = {}
        for key in request.query_params:
            values = request.query_params.getlist(key)
            out[key] = values if len(values) > 1 else values[0]
        return out
    return await json_body(request)


def _route(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def _run_id_of(data: dict[str, Any], route: str = "") -> str:
    """The request's run id (``run_id``, or the older ``run_uuid``), checked by MLflow's rule."""
    raw = data.get("run_id") if data.get("run_id") not in (None, "") else data.get("run_uuid")
    if raw not in (None, "") and not isinstance(raw, str):
        raise InputError(v.invalid_value("run_id", raw, f" Hint: Value was of type '{type(raw).__name__}'.")
                         + API_DOCS)
    return v.check_run_id(raw)


def _experiment_id_of(data: dict[str, Any], route: str = "") -> int:
    """The request's experiment id: required, a string of digits (an int is accepted too)."""
    raw = mlflow_param(data, "experiment_id", (str, int), required=True)
    text = str(raw)
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"No Experiment with id={text[:40]} exists")
    return int(text)


def _kv_list(items: Any, what: str, route: str = "") -> list[tuple[Any, Any]]:
    """``[{key, value}]`` as pairs; a list is required, each entry an object (MLflow's messages)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(v.invalid_value(what, items, f" Hint: Value was of type '{type(items).__name__}'.")
                         + API_DOCS)
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(v.invalid_value(f"{what}[{i}]", item, "expected an object with key and value"))
        out.append((item.get("key"), item.get("value")))
    return out


# -- shapes ----------------------------------------------------------------------------------------
def experiment_json(exp: repo.Experiment, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "experiment_id": str(exp.id), "name": exp.name,
        "artifact_location": exp.artifact_location or f"mlflow-artifacts:/{exp.id}",
        "lifecycle_stage": exp.lifecycle_stage, "creation_time": exp.created_at,
        "last_update_time": exp.updated_at, "tags": [{"key": k, "value": val} for k, val in tags.items()],
    }


def run_info_json(r: service.RunRecord) -> dict[str, Any]:
    info = {
        "run_id": r.run_id, "run_uuid": r.run_id, "run_name": r.name or "", "experiment_id": str(r.experiment_id),
        "user_id": r.user or "", "status": r.status, "start_time": r.start_time,
        "artifact_uri": f"mlflow-artifacts:/{r.experiment_id}/{r.run_id}/artifacts",
        "lifecycle_stage": r.lifecycle_stage,
    }
    if r.end_time is not None:
        info["end_time"] = r.end_time
    return info


def run_json(r: service.RunRecord, models: dict[str, list[tuple[str, int]]] | None = None) -> dict[str, Any]:
    """A Run message: info, data (metrics as proto3 JSON doubles), inputs and outputs."""
    tags = dict(r.tags)
    if r.name:
        tags.setdefault("mlflow.runName", r.name)
    if r.parent_run_id:
        tags.setdefault("mlflow.parentRunId", r.parent_run_id)
    if r.git_commit:
        tags.setdefault("mlflow.source.git.commit", r.git_commit)
    models = models or {"input": [], "output": []}
    return {
        "info": run_info_json(r),
        "data": {
            "metrics": [_metric_json(k, val, r.metric_steps[k][0], r.metric_steps[k][1]) for k, val in r.metrics.items()],
            "params": [{"key": k, "value": val} for k, val in r.params.items()],
            "tags": [{"key": k, "value": val} for k, val in tags.items()],
        },
        "inputs": {
            "dataset_inputs": [
                {"tags": _input_tags_json(i),
                 "dataset": {k: i[k] for k in ("name", "digest", "source_type", "source", "schema", "profile")
                             if i.get(k) is not None}}
                for i in r.inputs
            ],
            "model_inputs": [{"model_id": m} for m, _ in models["input"]],
        },
        "outputs": {"model_outputs": [{"model_id": m, "step": step} for m, step in models["output"]]},
    }


def _input_tags_json(item: dict[str, Any]) -> list[dict[str, str]]:
    """A dataset input's tags: all of them when MLflow logged them, else the context Shipyard keeps."""
    if item.get("tags"):
        return list(item["tags"])
    return [{"key": "mlflow.data.context", "value": item["context"]}] if item.get("context") else []


def _get_run_record(session: Any, run_id: str) -> service.RunRecord:
    return service.records(session, [repo.get_run(session, run_id)])[0]


# -- experiments -------------------------------------------------------------------------------------
def resolve_location(location: str) -> str:
    """MLflow's ``resolve_uri_if_local``: a relative local path becomes absolute (from the server's
    working directory); URIs with a scheme (s3://, mlflow-artifacts:, file:///abs) stay as given."""
    if re.match(r"^[a-zA-Z][\\w+.-]*:", location) and not location.startswith("file:"):
        return location
    if location.startswith("file:"):
        path = location[len("file:"):]
        if path.startswith("//"):
            path = path[2:]
        return location if Path(path).is_absolute() else Path.cwd().joinpath(path).as_uri()
    return location if Path(location).is_absolute() else str(Path.cwd() / location)


async def experiments_create(request: Request) -> Response:
    data = await json_body(request)
    name = v.check_experiment_name(mlflow_param(data, "name", str, required=True))
    location = mlflow_param(data, "artifact_location", str)
    if location and location.startswith("runs:"):
        raise InputError(f"Artifact location cannot be a runs:/ URI. Given: '{location}'")
    location = resolve_location(location) if location else None
    tags = v.check_experiment_tags(dict(_kv_list(mlflow_param(data, "tags", list), "tags")))

    def work() -> str:
        with _ws(request).store.write() as session:
            if session.scalar(select(repo.Experiment.id).where(repo.Experiment.name == name)) is not None:
                raise AlreadyExists(f"Experiment(name={name}) already exists.",
                                    hint="use another name, or get it with mlflow.get_experiment_by_name")
            exp = repo.Experiment(name=name, artifact_location=location, lifecycle_stage="active")
            session.add(exp)
            session.flush()
            repo.set_experiment_tags(session, exp.id, tags)
            return str(exp.id)

    return json_response({"experiment_id": await in_thread(work)})


async def experiments_get(request: Request) -> Response:
    data = await _params(request)
    exp_id = _experiment_id_of(data)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            exp = repo.get_experiment(session, exp_id)
            return experiment_json(exp, repo.experiment_tags(session, [exp.id])[exp.id])

    return json_response({"experiment": await in_thread(work)})


async def experiments_get_by_name(request: Request) -> Response:
    data = await _params(request)
    name = mlflow_param(data, "experiment_name", str, required=True)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            exp = session.scalar(select(repo.Experiment).where(repo.Experiment.name == name))
            if exp is None:
                raise NotFound(f"Could not find experiment with name '{name}'")
            return experiment_json(exp, repo.experiment_tags(session, [exp.id])[exp.id])

    return json_response({"experiment": await in_thread(work)})


async def experiments_search(request: Request) -> Response:
    data = await _params(request)
    view = VIEW_TYPES.get(str(data.get("view_type") or "ACTIVE_ONLY"))
    if view is None:
        raise InputError(v.invalid_value("view_type", data.get("view_type"), "expected ACTIVE_ONLY, DELETED_ONLY or ALL"))
    max_results = v.check_int(data.get("max_results") or 1000, "max_results", minimum=1)
    if max_results > 50000:
        raise InputError(f"Invalid value {max_results} for parameter 'max_results' supplied. "
                         f"It must be at most 50000, but got value {max_results}")
    order_by = data.get("order_by") or []
    order_by = [order_by] if isinstance(order_by, str) else order_by
    filter_string = mlflow_param(data, "filter", str)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            rows, token = search.search_experiments(session, filter_string=filter_string, order_by=order_by,
                                                    lifecycle=view, max_results=max_results,
                                                    page_token=data.get("page_token"))
            tags = repo.experiment_tags(session, [e.id for e in rows])
            out: dict[str, Any] = {"experiments": [experiment_json(e, tags[e.id]) for e in rows]}
        if token:
            out["next_page_token"] = token
        return out

    return json_response(await in_thread(work))


async def experiments_update(request: Request) -> Response:
    data = await json_body(request)
    exp_id = _experiment_id_of(data)
    new_name = v.check_experiment_name(mlflow_param(data, "new_name", str, required=True))

    def work() -> None:
        with _ws(request).store.write() as session:
            exp = repo.get_experiment(session, exp_id)
            if exp.lifecycle_stage != "active":
                raise InputError(f"Cannot rename a non-active experiment. Experiment {exp.id} is deleted.")
            taken = session.scalar(select(repo.Experiment.id).where(repo.Experiment.name == new_name))
            if taken is not None and taken != exp.id:
                raise AlreadyExists(f"Experiment(name={new_name}) already exists.")
            exp.name = new_name
            exp.updated_at = now_ms()

    await in_thread(work)
    return json_response({})


def _lifecycle_experiment(stage: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        data = await json_body(request)
        exp_id = _experiment_id_of(data)

        def work() -> None:
            with _ws(request).store.write() as session:
                exp = repo.get_experiment(session, exp_id)
                if stage == "deleted" and exp.id == 0:
                    raise InputError("Cannot delete the default experiment '0'. This is an internally reserved "
                                     "experiment.")
                exp.lifecycle_stage = stage
                exp.updated_at = now_ms()

        await in_thread(work)
        return json_response({})

    return endpoint


async def experiments_set_tag(request: Request) -> Response:
    data = await json_body(request)
    exp_id = _experiment_id_of(data)
    key = mlflow_param(data, "key", str, required=True)
    tags = v.check_experiment_tags({key: mlflow_param(data, "value", str, default="")})

    def work() -> None:
        with _ws(request).store.write() as session:
            exp = repo.get_experiment(session, exp_id)
            if exp.lifecycle_stage != "active":
                raise InputError(f"The experiment {exp.id} must be in the 'active' state. "
                                 f"Current state is {exp.lifecycle_stage}.")
            repo.set_experiment_tags(session, exp.id, tags)

    await in_thread(work)
    return json_response({})


# -- runs --------------------------------------------------------------------------------------------
async def runs_create(request: Request) -> Response:
    data = await json_body(request)
    exp_raw = mlflow_param(data, "experiment_id", (str, int))
    exp_id = _experiment_id_of(data) if exp_raw not in (None, "") else None
    tags = v.check_tags(dict(_kv_list(mlflow_param(data, "tags", list), "tags")))
    run_name = mlflow_param(data, "run_name", str) or tags.get("mlflow.runName")
    start_time = v.check_int(data["start_time"], "start_time", minimum=0) if data.get("start_time") is not None else None
    user = mlflow_param(data, "user_id", str) or tags.get("mlflow.user")
    parent = tags.get("mlflow.parentRunId")
    git = {"commit": tags["mlflow.source.git.commit"][:64]} if tags.get("mlflow.source.git.commit") else None

    def work() -> dict[str, Any]:
        with _ws(request).store.write() as session:
            run_exp = None if exp_id is None else repo.resolve_experiment_id(session, exp_id)
            parent_id = parent if parent and session.get(repo.Run, parent) is not None else None
            run_id = service.create_run(
                session, experiment_id=run_exp, experiment=None if exp_id is not None else repo.DEFAULT_EXPERIMENT,
                name=run_name, parent_run_id=parent_id, tags=tags, source="mlflow", user=user, git=git,
                start_time=start_time,
            )
            # plain INSERTs above (no pending ORM state): the answer is read back as a Core row
            return run_json(service.records(session, [repo.run_row(session, run_id)])[0])

    return json_response({"run": await in_thread(work)})


async def runs_update(request: Request) -> Response:
    data = await json_body(request)
    run_id = _run_id_of(data)
    status = mlflow_param(data, "status", str)
    end_time = v.check_int(data["end_time"], "end_time") if data.get("end_time") is not None else None
    run_name = mlflow_param(data, "run_name", str)

    def work() -> dict[str, Any]:
        with _ws(request).store.write() as session:
            service.active_run(session, run_id)
            repo.update_run(session, run_id, status=status, end_time=end_time, name=run_name or None)
            return run_info_json(_get_run_record(session, run_id))

    return json_response({"run_info": await in_thread(work)})


async def runs_get(request: Request) -> Response:
    data = await _params(request)
    run_id = _run_id_of(data)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            record = service.records(session, [repo.run_row(session, run_id)])[0]
            return run_json(record, _run_models(session, [run_id])[run_id])

    return json_response({"run": await in_thread(work)})


def _run_models(session: Any, run_ids: list[str]) -> dict[str, dict[str, list[tuple[str, int]]]]:
    from shipyard.store import logged_models as lm_repo

    return lm_repo.run_models(session, run_ids)


async def runs_search(request: Request) -> Response:
    data = await _params(request)
    raw_ids = data.get("experiment_ids") or []
    if isinstance(raw_ids, str):
        raw_ids = [raw_ids]
    if not isinstance(raw_ids, list):
        raise InputError(v.invalid_value("experiment_ids", raw_ids, "expected a list of experiment ids") + API_DOCS)
    ids = []
    for raw in raw_ids:
        if not str(raw).isdigit():
            raise InputError(f"Invalid experiment ID '{raw}'. Experiment ID must be a valid integer.")
        ids.append(int(raw))
    view = VIEW_TYPES.get(str(data.get("run_view_type") or "ACTIVE_ONLY"))
    if view is None:
        raise InputError(v.invalid_value("run_view_type", data.get("run_view_type"),
                                         "expected ACTIVE_ONLY, DELETED_ONLY or ALL"))
    max_results = v.check_int(data.get("max_results") or 1000, "max_results", minimum=1)
    if max_results > search.MAX_RESULTS:
        raise InputError(v.invalid_value("max_results", max_results) + API_DOCS)
    order_by = data.get("order_by") or []
    if isinstance(order_by, str):
        order_by = [order_by]
    filter_string = mlflow_param(data, "filter", str)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            runs, token = search.search_runs(
                session, filter_string=filter_string, order_by=order_by, experiment_ids=ids or None,
                max_results=max_results, page_token=data.get("page_token"), lifecycle=view, with_files=True,
            )
            models = _run_models(session, [r.run_id for r in runs])
        out: dict[str, Any] = {"runs": [run_json(r, models[r.run_id]) for r in runs]}
        if token:
            out["next_page_token"] = token
        return out

    return json_response(await in_thread(work))


def _lifecycle_run(stage: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        data = await json_body(request)
        run_id = _run_id_of(data)

        def work() -> None:
            with _ws(request).store.write() as session:
                repo.update_run(session, run_id, lifecycle_stage=stage)

        await in_thread(work)
        return json_response({})

    return endpoint


async def _write_batch(request: Request, run_id: str, metrics: list[MetricValue], params: dict[str, Any],
                       tags: dict[str, Any]) -> Response:
    def work() -> None:
        with _ws(request).store.write() as session:
            service.log_batch(session, run_id, metrics=metrics, params=params, tags=tags)

    await in_thread(work)
    return json_response({})


def _batch_entries(pairs: list[tuple[Any, Any]], what: str) -> dict[str, Any]:
    """Params or tags of a batch: every key present (MLflow's paths), duplicate param keys refused."""
    out: dict[str, Any] = {}
    duplicates = []
    for i, (key, value) in enumerate(pairs):
        if key in (None, ""):
            raise InputError(f"Missing value for required parameter '{what}[{i}].key'.{API_DOCS}")
        v.check_key(key, what[:-1], f"{what}[{i}].key")
        if what == "params" and key in out:
            duplicates.append(key)
        out[key] = "" if value is None else value
    if duplicates:
        raise InputError(f"Duplicate parameter keys have been submitted: {duplicates}. Please ensure the request "
                         "contains only one param value per param key.")
    return out


async def runs_log_batch(request: Request) -> Response:
    data = await json_body(request)
    run_id = _run_id_of(data)
    raw_metrics = mlflow_param(data, "metrics", list, default=[])
    for i, m in enumerate(raw_metrics):
        if not isinstance(m, dict):
            raise InputError(v.invalid_value(f"metrics[{i}]", m, "expected an object with key, value, timestamp, step"))
        for part in ("key", "value", "timestamp"):
            if m.get(part) in (None, ""):
                raise InputError(f"Missing value for required parameter 'metrics[{i}].{part}'.{API_DOCS}")
    param_pairs = _kv_list(mlflow_param(data, "params", list), "params")
    tag_pairs = _kv_list(mlflow_param(data, "tags", list), "tags")
    metrics = service.parse_metrics(raw_metrics)
    params, tags = _batch_entries(param_pairs, "params"), _batch_entries(tag_pairs, "tags")
    v.check_batch(raw_metrics, param_pairs, tag_pairs)
    return await _write_batch(request, run_id, metrics, params, tags)


async def runs_log_metric(request: Request) -> Response:
    data = await json_body(request)
    run_id = _run_id_of(data)
    mlflow_param(data, "key", str, required=True)
    if data.get("value") in (None, ""):
        raise InputError(f"Missing value for required parameter 'value'.{API_DOCS}")
    if data.get("timestamp") in (None, ""):
        raise InputError(f"Missing value for required parameter 'timestamp'.{API_DOCS}")
    point = {k: data.get(k) for k in ("key", "value", "step", "timestamp", "model_id", "dataset_name", "dataset_digest")}
    metrics = service.parse_metrics([point], single=True)
    return await _write_batch(request, run_id, metrics, {}, {})


async def runs_log_parameter(request: Request) -> Response:
    data = await json_body(request)
    run_id = _run_id_of(data)
    key = mlflow_param(data, "key", str, required=True)
    return await _write_batch(request, run_id, [], {key: mlflow_param(data, "value", str, default="")}, {})


async def runs_set_tag(request: Request) -> Response:
    data = await json_body(request)
    run_id = _run_id_of(data)
    key = mlflow_param(data, "key", str, required=True)
    return await _write_batch(request, run_id, [], {}, {key: mlflow_param(data, "value", str, default="")})


async def runs_delete_tag(request: Request) -> Response:
    data = await json_body(request)
    run_id = _run_id_of(data)
    key = mlflow_param(data, "key", str, required=True)

    def work() -> None:
        with _ws(request).store.write() as session:
            service.active_run(session, run_id)
            repo.delete_tag(session, run_id, key)

    await in_thread(work)
    return json_response({})


async def runs_log_inputs(request: Request) -> Response:
    data = await json_body(request)
    run_id = _run_id_of(data)
    datasets = mlflow_param(data, "datasets", list, default=[])
    inputs = []
    for i, item in enumerate(datasets):
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
            raise InputError(v.invalid_value(f"datasets[{i}]", item, "expected an object with a 'dataset' object"))
        pairs = _kv_list(item.get("tags"), f"datasets[{i}].tags")
        inputs.append({**item["dataset"], "context": dict(pairs).get("mlflow.data.context") or "",
                       "tags": [{"key": k, "value": val} for k, val in pairs]})
    rows = service.check_inputs(inputs)
    models = _model_steps(mlflow_param(data, "models", list, default=[]), "models")

    def work() -> None:
        with _ws(request).store.write() as session:
            service.log_inputs(session, run_id, rows)
            logged_models.link_run(session, run_id, models, "input")

    await in_thread(work)
    return json_response({})


def _model_steps(items: list[Any], what: str) -> list[tuple[str, int]]:
    """``[{model_id, step?}]`` of log-inputs/log-outputs as (model id, step) pairs."""
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("model_id"), str) or not item["model_id"]:
            raise InputError(f"Missing value for required parameter '{what}[{i}].model_id'.{API_DOCS}")
        out.append((item["model_id"], v.check_int(item.get("step") or 0, f"{what}[{i}].step")))
    return out


async def runs_log_outputs(request: Request) -> Response:
    data = await json_body(request)
    run_id = _run_id_of(data)
    models = _model_steps(mlflow_param(data, "models", list, required=True), "models")

    def work() -> None:
        with _ws(request).store.write() as session:
            service.active_run(session, run_id)
            logged_models.link_run(session, run_id, models, "output")

    await in_thread(work)
    return json_response({})


# -- metric history ----------------------------------------------------------------------------------
def _metric_json(key: str, value: float, step: int, ts: int, run_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"key": key, "value": v.json_number(value), "timestamp": ts, "step": step}
    if run_id:
        out["run_id"] = run_id
    return out


async def metrics_get_history(request: Request) -> Response:
    data = await _params(request)
    run_id = _run_id_of(data)
    key = mlflow_param(data, "metric_key", str, required=True)
    max_results = data.get("max_results")
    limit = None
    if max_results not in (None, ""):
        limit = v.check_int(max_results, "max_results")
        if limit <= 0:
            raise InputError(f"Invalid value {limit} for parameter 'max_results' supplied. It must be a positive integer.")
    offset = search.decode_token(data.get("page_token"))

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            history = service.metric_history(session, run_id, key)
        end = len(history) if limit is None else offset + limit
        out: dict[str, Any] = {"metrics": [_metric_json(key, val, step, ts) for val, step, ts in history[offset:end]]}
        if end < len(history):
            out["next_page_token"] = search.encode_token(end)
        return out

    return json_response(await in_thread(work))


def _run_ids_param(request: Request, name: str, limit: int, what: str) -> list[str]:
    run_ids = request.query_params.getlist(name)
    if not run_ids:
        raise InputError(f"{what} request must specify at least one {name}." if name == "run_id" else
                         f"Missing value for required parameter '{name}'.{API_DOCS}")
    if len(run_ids) > limit:
        raise InputError(f"{what} request cannot specify more than {limit} {name}s. Received {len(run_ids)} {name}s."
                         if name == "run_id" else
                         f"{what} request must specify at most {limit} run_ids. Received {len(run_ids)} run_ids.")
    return [v.check_run_id(r, name) for r in run_ids]


async def metrics_get_history_bulk(request: Request) -> Response:
    """The UI's bulk history: every point of one metric for up to 100 runs (25,000 per run at most)."""
    run_ids = _run_ids_param(request, "run_id", 100, "GetMetricHistoryBulk")
    key = request.query_params.get("metric_key")
    if key is None:
        raise InputError("GetMetricHistoryBulk request must specify a metric_key.")
    limit = min(v.check_int(request.query_params.get("max_results", "25000"), "max_results", minimum=1), 25000)

    def work() -> dict[str, Any]:
        out = []
        with _ws(request).store.read() as session:
            for run_id in sorted(run_ids):
                history = service.metric_history(session, run_id, key)[:limit]
                history.sort(key=lambda p: (p[2], p[1], p[0]))
                out.extend(_metric_json(key, val, step, ts, run_id) for val, step, ts in history)
        return {"metrics": out}

    return json_response(await in_thread(work))


async def metrics_get_history_bulk_interval(request: Request) -> Response:
    """Up to ``max_results`` points per run, evenly sampled (first and last kept), for charts."""
    run_ids = _run_ids_param(request, "run_ids", 100, "GetMetricHistoryBulkInterval")
    q = request.query_params
    key = mlflow_param(dict(q), "metric_key", str, required=True)
    limit = v.check_int(q.get("max_results", "2500"), "max_results", message="max_results must be between 1 and 2500.")
    if not 1 <= limit <= 2500:
        raise InputError(f"max_results must be between 1 and 2500.{API_DOCS}")
    start, end = q.get("start_step"), q.get("end_step")
    if (start is None) != (end is None):
        raise InputError("If either start step or end step are specified, both must be specified.")
    steps = None
    if start is not None and end is not None:
        steps = (v.check_int(start, "start_step"), v.check_int(end, "end_step"))
        if steps[0] > steps[1]:
            raise InputError("end_step must be greater than start_step. "
                             f"Found start_step={steps[0]} and end_step={steps[1]}.")

    def work() -> dict[str, Any]:
        out = []
        with _ws(request).store.read() as session:
            for run_id in run_ids:
                repo.get_run(session, run_id)
            for run_id in run_ids:
                points = service.sampled_history(session, run_id, key, limit, steps)
                out.extend(_metric_json(key, val, step, ts, run_id) for val, step, ts in points)
        return {"metrics": out}

    return json_response(await in_thread(work))


async def artifacts_list(request: Request) -> Response:
    data = await _params(request)
    run_id = _run_id_of(data)
    path = data.get("path") or ""
    try:
        path = safe_relative(path) if path not in ("", ".", "./") else ""
    except PathEscapeError as exc:  # MLflow answers exactly this, without saying more
        raise InputError("Invalid path") from exc

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            run = repo.get_run(session, run_id)
            files = service.list_artifacts(session, run_id, path)
            return {"root_uri": f"mlflow-artifacts:/{run.experiment_id}/{run_id}/artifacts", "files": files}

    return json_response(await in_thread(work))


def on_startup(workspace: Any) -> None:
    """MLflow's server always has the Default experiment (id 0): create it when the store has none."""
    with workspace.store.write() as session:
        repo.experiment_by_name(session, repo.DEFAULT_EXPERIMENT)


_ENDPOINTS: list[tuple[str, Any, list[str]]] = [
    ("/experiments/create", experiments_create, ["POST"]),
    ("/experiments/get", experiments_get, ["GET"]),
    ("/experiments/get-by-name", experiments_get_by_name, ["GET"]),
    ("/experiments/search", experiments_search, ["POST", "GET"]),
    ("/experiments/update", experiments_update, ["POST"]),
    ("/experiments/delete", _lifecycle_experiment("deleted"), ["POST"]),
    ("/experiments/restore", _lifecycle_experiment("active"), ["POST"]),
    ("/experiments/set-experiment-tag", experiments_set_tag, ["POST"]),
    ("/runs/create", runs_create, ["POST"]),
    ("/runs/update", runs_update, ["POST"]),
    ("/runs/get", runs_get, ["GET"]),
    ("/runs/search", runs_search, ["POST", "GET"]),
    ("/runs/delete", _lifecycle_run("deleted"), ["POST"]),
    ("/runs/restore", _lifecycle_run("active"), ["POST"]),
    ("/runs/log-metric", runs_log_metric, ["POST"]),
    ("/runs/log-parameter", runs_log_parameter, ["POST"]),
    ("/runs/set-tag", runs_set_tag, ["POST"]),
    ("/runs/delete-tag", runs_delete_tag, ["POST"]),
    ("/runs/log-batch", runs_log_batch, ["POST"]),
    ("/runs/log-inputs", runs_log_inputs, ["POST"]),
    ("/runs/outputs", runs_log_outputs, ["POST"]),
    ("/metrics/get-history", metrics_get_history, ["GET"]),
    ("/metrics/get-history-bulk", metrics_get_history_bulk, ["GET"]),
    ("/metrics/get-history-bulk-interval", metrics_get_history_bulk_interval, ["GET"]),
    ("/artifacts/list", artifacts_list, ["GET"]),
]

# What an MLflow 3 client asks before anything else (and caches for 60 s only when it gets a 200).
# Like MLflow's, it answers without a login and says nothing a stranger may not know.
SERVER_INFO = {"store_type": "SqlStore", "workspaces_enabled": False, "trace_archival_enabled": False,
               "multipart_uploads_enabled": False, "multipart_downloads_enabled": False,
               "presigned_upload_run_id_supported": False, "presigned_upload_model_id_supported": False,
               "features_enabled": {"gateway": False}}
SERVER_INFO_PATHS = ("/api/3.0/mlflow/server-info", "/ajax-api/3.0/mlflow/server-info")


async def server_info(request: Request) -> Response:
    """MLflow 3's capability probe: a SQL store, no multipart or presigned uploads, no workspaces."""
    return json_response(SERVER_INFO)


routes = [*mlflow_routes(_ENDPOINTS), *(Route(path, server_info, methods=["GET"]) for path in SERVER_INFO_PATHS)]
