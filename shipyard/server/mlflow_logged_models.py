"""MLflow 3 logged models over REST, as the 3.17.2 client calls them.

``POST /logged-models`` (create), ``GET|PATCH|DELETE /logged-models/{id}`` (get, finalize,
delete), ``POST /logged-models/search``, ``PATCH /logged-models/{id}/tags``,
``DELETE /logged-models/{id}/tags/{key}``, ``POST /logged-models/{id}/params`` and
``GET /logged-models/{id}/artifacts/directories``, under ``/api/2.0/mlflow`` and
``/ajax-api/2.0/mlflow``. The files themselves go through the artifact proxy (``mlflow.py``) under
``<experiment>/models/<model id>/artifacts/<path>``. Bodies and answers are proto3 JSON; errors
use MLflow's codes and messages.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shipyard.errors import InputError
from shipyard.server.common import in_thread, invalid_value, json_body, mlflow_param, mlflow_routes
from shipyard.server.errors import json_response
from shipyard.tracking import logged_models as service
from shipyard.tracking.paths import safe_relative
from shipyard.tracking.validation import json_number

# proto enum LoggedModelStatus <-> our status
STATUS_NAMES = {"PENDING": "LOGGED_MODEL_PENDING", "READY": "LOGGED_MODEL_READY", "FAILED": "LOGGED_MODEL_UPLOAD_FAILED"}
_STATUS_IN = {**{v: k for k, v in STATUS_NAMES.items()}, "1": "PENDING", "2": "READY", "3": "FAILED"}


def _ws(request: Request) -> Any:
    return request.app.state.workspace


def model_json(m: service.LoggedModel) -> dict[str, Any]:
    """A LoggedModel message (info + data) in proto3 JSON."""
    info: dict[str, Any] = {
        "experiment_id": str(m.experiment_id), "model_id": m.model_id, "name": m.name,
        "artifact_uri": m.artifact_location, "creation_timestamp_ms": m.creation_timestamp,
        "last_updated_timestamp_ms": m.last_updated_timestamp, "status": STATUS_NAMES[m.status],
        "tags": [{"key": k, "value": val} for k, val in m.tags.items()],
    }
    for key, value in (("model_type", m.model_type), ("source_run_id", m.source_run_id),
                       ("status_message", m.status_message)):
        if value:
            info[key] = value
    metrics = []
    for point in m.metrics:
        item = {"key": point.key, "value": json_number(point.value), "timestamp": point.timestamp, "step": point.step,
                "model_id": m.model_id}
        item.update({k: getattr(point, k) for k in ("run_id", "dataset_name", "dataset_digest") if getattr(point, k)})
        metrics.append(item)
    return {"info": info, "data": {"params": [{"key": k, "value": val} for k, val in m.params.items()],
                                   "metrics": metrics}}


def _pairs(data: dict[str, Any], name: str) -> dict[str, str]:
    """``[{key, value}]`` (MLflow's tags/params lists) as a dict, each entry checked."""
    items = mlflow_param(data, name, list, default=[])
    out: dict[str, str] = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
            raise InputError(invalid_value(f"{name}[{i}].key", item, "every entry needs a string key"))
        value = item.get("value")
        out[item["key"]] = "" if value is None else str(value)
    return out


def _experiment_id(raw: Any) -> int:
    text = str(raw)
    if not text.isdigit() or len(text) > 18:
        raise InputError(invalid_value("experiment_id", raw, "experiment ids are integers"))
    return int(text)


async def create(request: Request) -> Response:
    data = await json_body(request)
    exp_id = _experiment_id(mlflow_param(data, "experiment_id", (str, int), required=True))
    name = mlflow_param(data, "name", str)
    model_type = mlflow_param(data, "model_type", str)
    run_id = mlflow_param(data, "source_run_id", str)
    tags, params = _pairs(data, "tags"), _pairs(data, "params")
    model = await in_thread(service.create, _ws(request).store, exp_id, name=name or None, source_run_id=run_id,
                            tags=tags, params=params, model_type=model_type)
    return json_response({"model": model_json(model)})


async def get(request: Request) -> Response:
    allow_deleted = request.query_params.get("allow_deleted", "false").lower() == "true"
    model = await in_thread(service.get, _ws(request).store, request.path_params["model_id"], allow_deleted=allow_deleted)
    return json_response({"model": model_json(model)})


async def finalize(request: Request) -> Response:
    data = await json_body(request)
    raw = mlflow_param(data, "status", (str, int), required=True)
    status = _STATUS_IN.get(str(raw))
    if status is None:
        raise InputError(invalid_value("status", raw, "expected LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED"))
    model = await in_thread(service.finalize, _ws(request).store, request.path_params["model_id"], status)
    return json_response({"model": model_json(model)})


async def delete(request: Request) -> Response:
    await in_thread(service.delete, _ws(request).store, request.path_params["model_id"])
    return json_response({})


async def search(request: Request) -> Response:
    data = await json_body(request)
    raw_ids = mlflow_param(data, "experiment_ids", list, required=True)
    if not raw_ids or not all(isinstance(i, str) for i in raw_ids):
        raise InputError(invalid_value("experiment_ids", raw_ids, "a list of experiment id strings"))
    ids = [int(i) for i in raw_ids if i.isdigit() and len(i) <= 18]
    order_by = mlflow_param(data, "order_by", list, default=[])
    if not all(isinstance(o, dict) for o in order_by):
        raise InputError(invalid_value("order_by", order_by, "a list of {field_name, ascending} objects"))
    models, token = await in_thread(
        service.search, _ws(request).store, ids, filter_string=mlflow_param(data, "filter", str),
        order_by=order_by, max_results=mlflow_param(data, "max_results", int),
        page_token=mlflow_param(data, "page_token", str),
    )
    out: dict[str, Any] = {"models": [model_json(m) for m in models]}
    if token:
        out["next_page_token"] = token
    return json_response(out)


async def set_tags(request: Request) -> Response:
    data = await json_body(request)
    await in_thread(service.set_tags, _ws(request).store, request.path_params["model_id"], _pairs(data, "tags"))
    return json_response({})


async def delete_tag(request: Request) -> Response:
    params = request.path_params
    await in_thread(service.delete_tag, _ws(request).store, params["model_id"], params["tag_key"])
    return json_response({})


async def log_params(request: Request) -> Response:
    data = await json_body(request)
    await in_thread(service.log_params, _ws(request).store, request.path_params["model_id"], _pairs(data, "params"))
    return json_response({})


async def list_artifacts(request: Request) -> Response:
    raw = request.query_params.get("artifact_directory_path") or ""
    prefix = safe_relative(raw) if raw else ""
    model_id = request.path_params["model_id"]
    files = await in_thread(service.list_artifacts, _ws(request).store, model_id, prefix)
    model = await in_thread(service.get, _ws(request).store, model_id, allow_deleted=True)
    return json_response({"root_uri": model.artifact_location, "files": files})


_ENDPOINTS: list[tuple[str, Any, list[str]]] = [
    ("/logged-models", create, ["POST"]),
    ("/logged-models/search", search, ["POST"]),
    ("/logged-models/{model_id}", get, ["GET"]),
    ("/logged-models/{model_id}", finalize, ["PATCH"]),
    ("/logged-models/{model_id}", delete, ["DELETE"]),
    ("/logged-models/{model_id}/tags", set_tags, ["PATCH"]),
    ("/logged-models/{model_id}/tags/{tag_key:path}", delete_tag, ["DELETE"]),
    ("/logged-models/{model_id}/params", log_params, ["POST"]),
    ("/logged-models/{model_id}/artifacts/directories", list_artifacts, ["GET"]),
]

routes = mlflow_routes(_ENDPOINTS)
