"""Shipyard's own tracking REST API under ``/api/v1/`` (what the Python API's HTTP backend speaks).

    POST /api/v1/runs                          create a run {experiment, name, parent_run_id, tags, git, ...}
    GET  /api/v1/runs?filter=&order_by=&max_results=&page_token=&experiment=
    GET  /api/v1/runs/{run_id}                 one run with params, metrics, tags, inputs, artifacts
    POST /api/v1/runs/{run_id}/batch           {batch_id, metrics: [[key, value, step, ts]], params, tags}
    POST /api/v1/runs/{run_id}/end             {status, end_time}
    POST /api/v1/runs/{run_id}/inputs          {inputs: [{name, digest, context, source, ...}]}
    GET  /api/v1/runs/{run_id}/metrics/{key}   full history [[value, step, timestamp], ...]
    PUT  /api/v1/runs/{run_id}/artifacts/{path} raw bytes; GET the same path to download

A batch is validated whole and written in one transaction; a repeated ``batch_id`` is skipped.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.errors import InputError
from shipyard.server.common import field, in_thread, json_body, read_body
from shipyard.server.errors import json_response
from shipyard.tracking import search, service
from shipyard.tracking.paths import safe_relative
from shipyard.tracking.validation import check_int

MAX_ARTIFACT_BYTES = 2 * 1024**3


def _ws(request: Request) -> Any:
    return request.app.state.workspace


def _run_id(request: Request) -> str:
    run_id = request.path_params["run_id"]
    if not (0 < len(run_id) <= 32):
        raise InputError(f"run id {run_id!r} is not a run id")
    return run_id


async def create_run(request: Request) -> Response:
    route = "POST /api/v1/runs"
    data = await json_body(request)
    fields = {
        "experiment": field(data, "experiment", str, route, required=False),
        "name": field(data, "name", str, route, required=False),
        "parent_run_id": field(data, "parent_run_id", str, route, required=False),
        "tags": field(data, "tags", dict, route, required=False),
        "source": field(data, "source", str, route, required=False, default="api"),
        "user": field(data, "user", str, route, required=False),
        "host": field(data, "host", str, route, required=False),
        "git": field(data, "git", dict, route, required=False),
        "start_time": field(data, "start_time", int, route, required=False),
    }

    def work() -> dict[str, Any]:
        store = _ws(request).store
        with store.write() as session:
            run_id = service.create_run(session, **fields)
        with store.read() as session:
            return service.get_run(session, run_id).to_dict()

    return json_response({"run": await in_thread(work)})


async def list_runs(request: Request) -> Response:
    q = request.query_params
    max_results = check_int(q.get("max_results", "100"), "max_results", minimum=1)
    experiments = q.getlist("experiment") or None

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            runs, token = search.search_runs(
                session, filter_string=q.get("filter"), order_by=q.getlist("order_by"),
                experiment_names=experiments, max_results=min(max_results, search.MAX_RESULTS),
                page_token=q.get("page_token"),
            )
        return {"runs": [r.to_dict() for r in runs], "next_page_token": token}

    return json_response(await in_thread(work))


async def get_run(request: Request) -> Response:
    run_id = _run_id(request)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            return service.get_run(session, run_id).to_dict()

    return json_response({"run": await in_thread(work)})


async def log_batch(request: Request) -> Response:
    run_id = _run_id(request)
    route = f"POST /api/v1/runs/{run_id}/batch"
    data = await json_body(request)
    batch_id = field(data, "batch_id", str, route, required=False)
    if batch_id is not None and not (0 < len(batch_id) <= 64):
        raise InputError(f"{route}: batch_id must be 1 to 64 characters")
    metrics = service.parse_metrics(field(data, "metrics", list, route, required=False, default=[]))
    params = field(data, "params", dict, route, required=False, default={})
    tags = field(data, "tags", dict, route, required=False, default={})

    def work() -> bool:
        with _ws(request).store.write() as session:
            return service.log_batch(session, run_id, metrics=metrics, params=params, tags=tags, batch_id=batch_id)

    written = await in_thread(work)
    return json_response({"written": written, "metrics": len(metrics), "params": len(params), "tags": len(tags)})


async def end_run(request: Request) -> Response:
    run_id = _run_id(request)
    route = f"POST /api/v1/runs/{run_id}/end"
    data = await json_body(request)
    status = field(data, "status", str, route, required=False, default="FINISHED")
    end_time = field(data, "end_time", int, route, required=False)
    if end_time is not None:
        check_int(end_time, "end_time", minimum=0)

    def work() -> None:
        with _ws(request).store.write() as session:
            service.end_run(session, run_id, status, end_time)

    await in_thread(work)
    return json_response({"run_id": run_id, "status": status})


async def log_inputs(request: Request) -> Response:
    run_id = _run_id(request)
    data = await json_body(request)
    inputs = field(data, "inputs", list, f"POST /api/v1/runs/{run_id}/inputs")

    def work() -> None:
        with _ws(request).store.write() as session:
            service.log_inputs(session, run_id, inputs)

    await in_thread(work)
    return json_response({"inputs": len(inputs)})


async def metric_history(request: Request) -> Response:
    run_id = _run_id(request)
    key = request.path_params["key"]

    def work() -> list[tuple[float, int, int]]:
        with _ws(request).store.read() as session:
            return service.metric_history(session, run_id, key)

    return json_response({"key": key, "history": await in_thread(work)})


def artifact_path(request: Request) -> str:
    """The artifact path from the raw URL (so encoded traversal is seen before any decoding)."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    raw_text = raw.decode("latin-1").split("?", 1)[0]
    marker = "/artifacts/"
    if marker in raw_text:
        safe_relative(raw_text.split(marker, 1)[1])
    return safe_relative(request.path_params["path"])


async def put_artifact(request: Request) -> Response:
    run_id = _run_id(request)
    path = artifact_path(request)
    data = await read_body(request, MAX_ARTIFACT_BYTES)
    ws = _ws(request)
    oid = await in_thread(service.store_artifact_bytes, ws.store, ws.objects, run_id, path, data)
    return json_response({"path": path, "oid": oid, "size": len(data)})


async def get_artifact(request: Request) -> Response:
    run_id = _run_id(request)
    path = artifact_path(request)
    ws = _ws(request)
    data = await in_thread(service.read_artifact, ws.store, ws.objects, run_id, path)
    return Response(data, media_type="application/octet-stream")


routes = [
    Route("/api/v1/runs", create_run, methods=["POST"]),
    Route("/api/v1/runs", list_runs, methods=["GET"]),
    Route("/api/v1/runs/{run_id}", get_run, methods=["GET"]),
    Route("/api/v1/runs/{run_id}/batch", log_batch, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/end", end_run, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/inputs", log_inputs, methods=["POST"]),
    Route("/api/v1/runs/{run_id}/metrics/{key:path}", metric_history, methods=["GET"]),
    Route("/api/v1/runs/{run_id}/artifacts/{path:path}", put_artifact, methods=["PUT"]),
    Route("/api/v1/runs/{run_id}/artifacts/{path:path}", get_artifact, methods=["GET"]),
]
