"""The MLflow-compatible subset, so MLflow's own client (``MLFLOW_TRACKING_URI=http://...``) works.

Served under ``/api/2.0/mlflow/`` and mirrored under ``/ajax-api/2.0/mlflow/``: experiments
(create, get, get-by-name, search, update, delete, restore, set-experiment-tag), runs (create,
update, get, search, delete, restore, log-metric, log-parameter, set-tag, delete-tag, log-batch,
log-inputs), metrics/get-history, artifacts/list; and the artifact proxy
``/api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/<path>`` (PUT, GET, and GET with
``?path=`` to list) backed by the object store. MLflow's limits hold (1000 metrics, 100 params,
100 tags per batch, 1 MB per request) and errors use its codes and ``{error_code, message}``.
Bodies are proto3 JSON: int64 fields may arrive as strings, unknown fields are ignored.
"""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.errors import AlreadyExists, InputError, NotFound
from shipyard.server.common import field, in_thread, json_body, read_body
from shipyard.server.errors import json_response
from shipyard.server.tracking import MAX_ARTIFACT_BYTES
from shipyard.store import runs as repo
from shipyard.store.runs import MetricValue, now_ms
from shipyard.tracking import search, service
from shipyard.tracking import validation as v
from shipyard.tracking.paths import safe_relative

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACTS_ROOT = "/api/2.0/mlflow-artifacts/artifacts"
VIEW_TYPES = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all", "1": "active", "2": "deleted", "3": "all"}
_RUN_ARTIFACT = re.compile(r"^(\d+)/([0-9a-f]{32})/artifacts(?:/(.*))?$")


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


def _run_id_of(data: dict[str, Any], route: str) -> str:
    run_id = data.get("run_id") or data.get("run_uuid")
    if not isinstance(run_id, str) or not run_id:
        raise InputError(f"{route}: missing required field 'run_id'")
    if len(run_id) > 32:
        raise NotFound(f"run {run_id[:40]!r} does not exist")
    return run_id


def _experiment_id_of(data: dict[str, Any], route: str) -> int:
    raw = data.get("experiment_id")
    if raw is None:
        raise InputError(f"{route}: missing required field 'experiment_id'")
    text = str(raw)
    if not text.isdigit() or len(text) > 18:
        raise NotFound(f"experiment {text[:40]!r} does not exist")
    return int(text)


def _kv_list(items: Any, what: str, route: str) -> list[tuple[Any, Any]]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise InputError(f"{route}: field {what!r} must be a list of {{key, value}} objects")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise InputError(f"{route}: {what}[{i}] must be an object with key and value")
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


def run_json(r: service.RunRecord) -> dict[str, Any]:
    tags = dict(r.tags)
    if r.name:
        tags.setdefault("mlflow.runName", r.name)
    if r.parent_run_id:
        tags.setdefault("mlflow.parentRunId", r.parent_run_id)
    if r.git_commit:
        tags.setdefault("mlflow.source.git.commit", r.git_commit)
    return {
        "info": run_info_json(r),
        "data": {
            "metrics": [{"key": k, "value": val, "step": r.metric_steps[k][0], "timestamp": r.metric_steps[k][1]}
                        for k, val in r.metrics.items()],
            "params": [{"key": k, "value": val} for k, val in r.params.items()],
            "tags": [{"key": k, "value": val} for k, val in tags.items()],
        },
        "inputs": {"dataset_inputs": [
            {"tags": [{"key": "mlflow.data.context", "value": i["context"]}] if i.get("context") else [],
             "dataset": {k: i[k] for k in ("name", "digest", "source_type", "source", "schema", "profile") if i.get(k) is not None}}
            for i in r.inputs
        ]},
    }


def _get_run_record(session: Any, run_id: str) -> service.RunRecord:
    return service.records(session, [repo.get_run(session, run_id)])[0]


# -- experiments -------------------------------------------------------------------------------------
async def experiments_create(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    name = field(data, "name", str, route)
    if not name.strip() or len(name) > v.MAX_EXPERIMENT_NAME_LENGTH:
        raise InputError(f"{route}: experiment name must be 1 to {v.MAX_EXPERIMENT_NAME_LENGTH} characters")
    location = field(data, "artifact_location", str, route, required=False)
    tags = {k: val for k, val in _kv_list(data.get("tags"), "tags", route)}
    tags = v.check_tags(tags)

    def work() -> str:
        with _ws(request).store.write() as session:
            if session.scalar(select(repo.Experiment.id).where(repo.Experiment.name == name)) is not None:
                raise AlreadyExists(f"experiment {name!r} already exists")
            exp = repo.Experiment(name=name, artifact_location=location or None, lifecycle_stage="active")
            session.add(exp)
            session.flush()
            repo.set_experiment_tags(session, exp.id, tags)
            return str(exp.id)

    return json_response({"experiment_id": await in_thread(work)})


async def experiments_get(request: Request) -> Response:
    data = await _params(request)
    exp_id = _experiment_id_of(data, _route(request))

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            exp = repo.get_experiment(session, exp_id)
            return experiment_json(exp, repo.experiment_tags(session, [exp.id])[exp.id])

    return json_response({"experiment": await in_thread(work)})


async def experiments_get_by_name(request: Request) -> Response:
    data = await _params(request)
    name = field(data, "experiment_name", str, _route(request))

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            exp = session.scalar(select(repo.Experiment).where(repo.Experiment.name == name))
            if exp is None:
                raise NotFound(f"experiment {name!r} does not exist")
            return experiment_json(exp, repo.experiment_tags(session, [exp.id])[exp.id])

    return json_response({"experiment": await in_thread(work)})


async def experiments_search(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    view = VIEW_TYPES.get(str(data.get("view_type") or "ACTIVE_ONLY"))
    if view is None:
        raise InputError(f"{route}: view_type must be ACTIVE_ONLY, DELETED_ONLY or ALL")
    max_results = v.check_int(data.get("max_results") or 1000, "max_results", minimum=1)
    offset = search.decode_token(data.get("page_token"))
    name_filter = data.get("filter") or ""
    match = re.fullmatch(r"\s*(?:attribute\.)?name\s*(=|LIKE|ILIKE)\s*'([^']*)'\s*", name_filter, re.IGNORECASE)
    if name_filter and match is None:
        raise InputError(f"{route}: only filters on the experiment name are supported, e.g. name LIKE 'penguins%'")

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            query = select(repo.Experiment).order_by(repo.Experiment.id)
            if view != "all":
                query = query.where(repo.Experiment.lifecycle_stage == view)
            if match:
                op, value = match.group(1).upper(), match.group(2)
                column = repo.Experiment.name
                query = query.where(column == value if op == "=" else
                                    column.like(value) if op == "LIKE" else column.ilike(value))
            rows = list(session.scalars(query.offset(offset).limit(max_results + 1)))
            tags = repo.experiment_tags(session, [e.id for e in rows])
            out: dict[str, Any] = {"experiments": [experiment_json(e, tags[e.id]) for e in rows[:max_results]]}
            if len(rows) > max_results:
                out["next_page_token"] = search.encode_token(offset + max_results)
            return out

    return json_response(await in_thread(work))


async def experiments_update(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    exp_id = _experiment_id_of(data, route)
    new_name = field(data, "new_name", str, route, required=False)

    def work() -> None:
        with _ws(request).store.write() as session:
            exp = repo.get_experiment(session, exp_id)
            if new_name:
                taken = session.scalar(select(repo.Experiment.id).where(repo.Experiment.name == new_name))
                if taken is not None and taken != exp.id:
                    raise AlreadyExists(f"experiment {new_name!r} already exists")
                exp.name = new_name
                exp.updated_at = now_ms()

    await in_thread(work)
    return json_response({})


def _lifecycle_experiment(stage: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        data = await json_body(request)
        exp_id = _experiment_id_of(data, _route(request))

        def work() -> None:
            with _ws(request).store.write() as session:
                exp = repo.get_experiment(session, exp_id)
                exp.lifecycle_stage = stage
                exp.updated_at = now_ms()

        await in_thread(work)
        return json_response({})

    return endpoint


async def experiments_set_tag(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    exp_id = _experiment_id_of(data, route)
    tags = v.check_tags({field(data, "key", str, route): field(data, "value", str, route)})

    def work() -> None:
        with _ws(request).store.write() as session:
            repo.get_experiment(session, exp_id)
            repo.set_experiment_tags(session, exp_id, tags)

    await in_thread(work)
    return json_response({})


# -- runs --------------------------------------------------------------------------------------------
async def runs_create(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    exp_raw = data.get("experiment_id")
    exp_id = _experiment_id_of(data, route) if exp_raw not in (None, "") else None
    tags = {k: val for k, val in _kv_list(data.get("tags"), "tags", route)}
    tags = v.check_tags(tags)
    run_name = field(data, "run_name", str, route, required=False) or tags.get("mlflow.runName")
    start_time = v.check_int(data["start_time"], "start_time", minimum=0) if data.get("start_time") is not None else None
    user = field(data, "user_id", str, route, required=False) or tags.get("mlflow.user")
    parent = tags.get("mlflow.parentRunId")
    git = {"commit": tags["mlflow.source.git.commit"][:64]} if tags.get("mlflow.source.git.commit") else None

    def work() -> dict[str, Any]:
        with _ws(request).store.write() as session:
            parent_id = parent if parent and session.get(repo.Run, parent) is not None else None
            run_id = service.create_run(
                session, experiment_id=exp_id, experiment=None if exp_id is not None else repo.DEFAULT_EXPERIMENT,
                name=run_name, parent_run_id=parent_id, tags=tags, source="mlflow", user=user, git=git,
                start_time=start_time,
            )
            return run_json(_get_run_record(session, run_id))

    return json_response({"run": await in_thread(work)})


async def runs_update(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    run_id = _run_id_of(data, route)
    status = field(data, "status", str, route, required=False)
    end_time = v.check_int(data["end_time"], "end_time", minimum=0) if data.get("end_time") is not None else None
    run_name = field(data, "run_name", str, route, required=False)

    def work() -> dict[str, Any]:
        with _ws(request).store.write() as session:
            repo.update_run(session, run_id, status=status, end_time=end_time, name=run_name or None)
            return run_info_json(_get_run_record(session, run_id))

    return json_response({"run_info": await in_thread(work)})


async def runs_get(request: Request) -> Response:
    data = await _params(request)
    run_id = _run_id_of(data, _route(request))

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            return run_json(service.records(session, [repo.get_run(session, run_id)])[0])

    return json_response({"run": await in_thread(work)})


async def runs_search(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    raw_ids = data.get("experiment_ids") or []
    if isinstance(raw_ids, str):
        raw_ids = [raw_ids]
    if not isinstance(raw_ids, list):
        raise InputError(f"{route}: experiment_ids must be a list")
    ids = []
    for raw in raw_ids:
        if not str(raw).isdigit():
            raise InputError(f"{route}: experiment id {raw!r} is not a number")
        ids.append(int(raw))
    view = VIEW_TYPES.get(str(data.get("run_view_type") or "ACTIVE_ONLY"))
    if view is None:
        raise InputError(f"{route}: run_view_type must be ACTIVE_ONLY, DELETED_ONLY or ALL")
    max_results = v.check_int(data.get("max_results") or 1000, "max_results", minimum=1)
    order_by = data.get("order_by") or []
    if isinstance(order_by, str):
        order_by = [order_by]
    filter_string = field(data, "filter", str, route, required=False)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            runs, token = search.search_runs(
                session, filter_string=filter_string, order_by=order_by, experiment_ids=ids or None,
                max_results=max_results, page_token=data.get("page_token"), lifecycle=view, with_files=True,
            )
        out: dict[str, Any] = {"runs": [run_json(r) for r in runs]}
        if token:
            out["next_page_token"] = token
        return out

    return json_response(await in_thread(work))


def _lifecycle_run(stage: str):  # type: ignore[no-untyped-def]
    async def endpoint(request: Request) -> Response:
        data = await json_body(request)
        run_id = _run_id_of(data, _route(request))

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


def _unique(pairs: list[tuple[Any, Any]], what: str, route: str) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in pairs:
        if not isinstance(key, str):
            raise InputError(f"{route}: every {what} needs a string key, got {key!r}")
        if value is None:
            raise InputError(f"{route}: {what} {key!r} has no value")
        if what == "param" and key in out and out[key] != str(value):
            raise InputError(f"{route}: param {key!r} appears twice with different values")
        out[key] = value
    return out


async def runs_log_batch(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    run_id = _run_id_of(data, route)
    raw_metrics = data.get("metrics") or []
    if not isinstance(raw_metrics, list):
        raise InputError(f"{route}: field 'metrics' must be a list")
    params = _unique(_kv_list(data.get("params"), "params", route), "param", route)
    tags = _unique(_kv_list(data.get("tags"), "tags", route), "tag", route)
    v.check_batch(raw_metrics, _kv_list(data.get("params"), "params", route), _kv_list(data.get("tags"), "tags", route))
    metrics = service.parse_metrics(raw_metrics)
    return await _write_batch(request, run_id, metrics, params, tags)


async def runs_log_metric(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    run_id = _run_id_of(data, route)
    metrics = service.parse_metrics([{"key": data.get("key"), "value": data.get("value"),
                                      "step": data.get("step"), "timestamp": data.get("timestamp")}])
    return await _write_batch(request, run_id, metrics, {}, {})


async def runs_log_parameter(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    run_id = _run_id_of(data, route)
    key = field(data, "key", str, route)
    return await _write_batch(request, run_id, [], {key: field(data, "value", (str, int, float), route)}, {})


async def runs_set_tag(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    run_id = _run_id_of(data, route)
    key = field(data, "key", str, route)
    return await _write_batch(request, run_id, [], {}, {key: field(data, "value", (str, int, float), route)})


async def runs_delete_tag(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    run_id = _run_id_of(data, route)
    key = field(data, "key", str, route)

    def work() -> None:
        with _ws(request).store.write() as session:
            service.active_run(session, run_id)
            repo.delete_tag(session, run_id, key)

    await in_thread(work)
    return json_response({})


async def runs_log_inputs(request: Request) -> Response:
    route = _route(request)
    data = await json_body(request)
    run_id = _run_id_of(data, route)
    datasets = data.get("datasets") or []
    if not isinstance(datasets, list):
        raise InputError(f"{route}: field 'datasets' must be a list")
    inputs = []
    for i, item in enumerate(datasets):
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
            raise InputError(f"{route}: datasets[{i}] must be an object with a 'dataset' object")
        tags = dict(_kv_list(item.get("tags"), f"datasets[{i}].tags", route))
        inputs.append({**item["dataset"], "context": tags.get("mlflow.data.context") or ""})
    rows = service.check_inputs(inputs)

    def work() -> None:
        with _ws(request).store.write() as session:
            service.log_inputs(session, run_id, rows)

    await in_thread(work)
    return json_response({})


async def metrics_get_history(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    run_id = _run_id_of(data, route)
    key = field(data, "metric_key", str, route)
    max_results = data.get("max_results")
    limit = v.check_int(max_results, "max_results", minimum=1) if max_results not in (None, "") else None
    offset = search.decode_token(data.get("page_token"))

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            history = service.metric_history(session, run_id, key)
        end = len(history) if limit is None else offset + limit
        out: dict[str, Any] = {"metrics": [{"key": key, "value": val, "step": step, "timestamp": ts}
                                           for val, step, ts in history[offset:end]]}
        if end < len(history):
            out["next_page_token"] = search.encode_token(end)
        return out

    return json_response(await in_thread(work))


async def artifacts_list(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    run_id = _run_id_of(data, route)
    path = data.get("path") or ""

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            run = repo.get_run(session, run_id)
            files = service.list_artifacts(session, run_id, path)
            return {"root_uri": f"mlflow-artifacts:/{run.experiment_id}/{run_id}/artifacts", "files": files}

    return json_response(await in_thread(work))


# -- artifact proxy ----------------------------------------------------------------------------------
def _split_artifact(path: str) -> tuple[str, str]:
    """(run id, path inside the run) from ``<experiment>/<run>/artifacts/<path>``."""
    match = _RUN_ARTIFACT.match(path)
    if match is None:
        raise NotFound(f"artifact location {path!r} is not <experiment>/<run id>/artifacts/<path>",
                       hint="this server stores run artifacts only")
    return match.group(2), match.group(3) or ""


def _proxy_path(request: Request) -> str:
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1").split("?", 1)[0]
    if raw.startswith(ARTIFACTS_ROOT + "/"):
        safe_relative(raw[len(ARTIFACTS_ROOT) + 1:])
    return safe_relative(request.path_params["path"])


async def artifact_put(request: Request) -> Response:
    path = _proxy_path(request)
    run_id, inner = _split_artifact(path)
    if not inner:
        raise InputError(f"artifact path {path!r} names the run's artifact folder, not a file")
    body = await read_body(request, MAX_ARTIFACT_BYTES)
    ws = _ws(request)
    await in_thread(service.store_artifact_bytes, ws.store, ws.objects, run_id, inner, body)
    return json_response({})


async def artifact_get(request: Request) -> Response:
    path = _proxy_path(request)
    run_id, inner = _split_artifact(path)
    ws = _ws(request)
    data = await in_thread(service.read_artifact, ws.store, ws.objects, run_id, inner)
    return Response(data, media_type="application/octet-stream")


async def artifact_list(request: Request) -> Response:
    raw = request.query_params.get("path") or ""
    path = safe_relative(raw) if raw else ""
    if not path:
        return json_response({"files": []})
    run_id, inner = _split_artifact(path)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            files = service.list_artifacts(session, run_id, inner)
        prefix = inner + "/" if inner else ""
        return {"files": [{**f, "path": f["path"][len(prefix):]} for f in files]}

    return json_response(await in_thread(work))


async def logged_models_search(request: Request) -> Response:
    """MLflow 3 logged models are not stored here: the search is valid and finds none (the client
    asks during ``download_artifacts`` before it falls back to the run's own artifacts)."""
    await json_body(request)
    return json_response({"models": []})


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
    ("/metrics/get-history", metrics_get_history, ["GET"]),
    ("/artifacts/list", artifacts_list, ["GET"]),
    ("/logged-models/search", logged_models_search, ["POST"]),
]

routes = [Route(prefix + path, endpoint, methods=methods)
          for prefix in PREFIXES for path, endpoint, methods in _ENDPOINTS]
routes += [
    Route(ARTIFACTS_ROOT, artifact_list, methods=["GET"]),
    Route(ARTIFACTS_ROOT + "/{path:path}", artifact_put, methods=["PUT"]),
    Route(ARTIFACTS_ROOT + "/{path:path}", artifact_get, methods=["GET"]),
]
