"""MLflow's artifact proxy: ``/api/2.0/mlflow-artifacts/artifacts/<path>`` (PUT, GET; GET with
``?path=`` lists), backed by Shipyard's object store.

Two kinds of location live under it, as MLflow lays them out: a run's files at
``<experiment>/<run id>/artifacts/<path>`` and a logged model's at
``<experiment>/models/<model id>/artifacts/<path>``. Every path is checked by ``safe_relative``
(decoded until stable; no absolute path, backslash, control character, empty or ``..`` segment);
``.`` segments, which the client sends when it downloads ``"."``, name nothing.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.errors import InputError, NotFound
from shipyard.server.common import in_thread, read_body
from shipyard.server.errors import json_response
from shipyard.server.tracking import MAX_ARTIFACT_BYTES
from shipyard.tracking import logged_models, service
from shipyard.tracking.paths import safe_relative

ARTIFACTS_ROOT = "/api/2.0/mlflow-artifacts/artifacts"
_RUN_ARTIFACT = re.compile(r"^(\d+)/([0-9a-f]{32})/artifacts(?:/(.*))?$")
_MODEL_ARTIFACT = re.compile(r"^(\d+)/models/(m-[0-9a-f]{32})/artifacts(?:/(.*))?$")


def _ws(request: Request) -> Any:
    return request.app.state.workspace


def _split_artifact(path: str) -> tuple[str, str, str]:
    """("run" or "model", its id, path inside it) from ``<experiment>/<run>/artifacts/<path>`` or
    ``<experiment>/models/<model id>/artifacts/<path>`` (where MLflow 3 puts a logged model's files)."""
    match = _RUN_ARTIFACT.match(path)
    if match is not None:
        return "run", match.group(2), match.group(3) or ""
    match = _MODEL_ARTIFACT.match(path)
    if match is not None:
        return "model", match.group(2), match.group(3) or ""
    raise NotFound(f"artifact location {path!r} is not <experiment>/<run id>/artifacts/<path> "
                   "nor <experiment>/models/<model id>/artifacts/<path>",
                   hint="this server stores the artifacts of runs and logged models only")


def _without_dot_segments(path: str) -> str:
    """``path`` without "." segments, which name nothing (the client lists "<run>/artifacts/./dir"
    for ``download_artifacts(".")``); ".." and everything else is left for ``safe_relative``."""
    return "/".join(part for part in path.rstrip("/").split("/") if part != ".")


def _proxy_path(request: Request) -> str:
    raw = (request.scope.get("raw_path") or request.url.path.encode()).decode("latin-1").split("?", 1)[0]
    if raw.startswith(ARTIFACTS_ROOT + "/"):
        safe_relative(raw[len(ARTIFACTS_ROOT) + 1:])
    return safe_relative(_without_dot_segments(request.path_params["path"]))


async def artifact_put(request: Request) -> Response:
    path = _proxy_path(request)
    kind, owner, inner = _split_artifact(path)
    if not inner:
        raise InputError(f"artifact path {path!r} names the {kind}'s artifact folder, not a file")
    body = await read_body(request, MAX_ARTIFACT_BYTES)
    ws = _ws(request)
    store_fn = service.store_artifact_bytes if kind == "run" else logged_models.store_artifact
    await in_thread(store_fn, ws.store, ws.objects, owner, inner, body)
    return json_response({})


async def artifact_get(request: Request) -> Response:
    path = _proxy_path(request)
    kind, owner, inner = _split_artifact(path)
    ws = _ws(request)
    read_fn = service.read_artifact if kind == "run" else logged_models.read_artifact
    data = await in_thread(read_fn, ws.store, ws.objects, owner, inner)
    return Response(data, media_type="application/octet-stream")


async def artifact_list(request: Request) -> Response:
    raw = _without_dot_segments(request.query_params.get("path") or "")
    path = safe_relative(raw) if raw else ""
    if not path:
        return json_response({"files": []})
    kind, owner, inner = _split_artifact(path)

    def work() -> dict[str, Any]:
        if kind == "model":
            files = logged_models.list_artifacts(_ws(request).store, owner, inner)
        else:
            with _ws(request).store.read() as session:
                files = service.list_artifacts(session, owner, inner)
        prefix = inner + "/" if inner else ""
        return {"files": [{**f, "path": f["path"][len(prefix):]} for f in files]}

    return json_response(await in_thread(work))


routes = [
    Route(ARTIFACTS_ROOT, artifact_list, methods=["GET"]),
    Route(ARTIFACTS_ROOT + "/{path:path}", artifact_put, methods=["PUT"]),
    Route(ARTIFACTS_ROOT + "/{path:path}", artifact_get, methods=["GET"]),
]
