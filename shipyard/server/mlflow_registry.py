"""MLflow's model-registry REST API, so ``MlflowClient`` registers versions, tags them and moves aliases here.

Served under ``/api/2.0/mlflow/`` and ``/ajax-api/2.0/mlflow/``: registered-models create, get,
search, update, delete, set-tag, delete-tag, get-latest-versions; model-versions create, get,
search, update, set-tag, delete-tag; registered-models/alias set (POST), delete (DELETE) and
get-by-alias (GET). These handlers only translate HTTP: reading and checking request fields with
MLflow's messages, and calling ``shipyard.registry`` (``mlflow_api`` and ``search``), where every
write runs in one transaction with its audit event. So the rules hold over REST too: an alias
that looks like a version (``v3``) is refused, and ``champion`` needs a passing gate verdict
(403 PERMISSION_DENIED saying how to gate: a refusal by policy is the client's to fix).

``model-versions/create`` follows MLflow's source rules (local paths refused, ``runs:/`` and
``models:/m-...`` checked against ``run_id``/``model_id``); a logged model's or a run's MLflow
model is packaged as a first-class version (see ``registry.mlflow_api``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shipyard.errors import CheckFailed
from shipyard.registry import mlflow_api as api
from shipyard.registry import search
from shipyard.registry.mlflow_api import InvalidParameter, invalid_value
from shipyard.server.common import in_thread, json_body, mlflow_routes
from shipyard.server.errors import json_response

_SEE_DOCS = " See the API docs for more information about request parameters."


def _ws(request: Request) -> Any:
    return request.app.state.workspace


async def _params(request: Request) -> dict[str, Any]:
    """Query string for GET (and for DELETE without a body); the JSON body otherwise."""
    out: dict[str, Any] = {k: request.query_params.get(k) for k in request.query_params}
    if request.method != "GET":
        out.update(await json_body(request))
    return out


def _text(data: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    """A string field as MLflow checks it: missing -> "Missing value for required parameter";
    another JSON type -> "Invalid value ... for parameter"."""
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InvalidParameter(f"Missing value for required parameter '{key}'.{_SEE_DOCS}")
        return None
    if not isinstance(value, str):
        raise InvalidParameter(invalid_value(key, value, f" Hint: Value was of type '{type(value).__name__}'.").message
                               + _SEE_DOCS)
    return value


def _version(data: dict[str, Any]) -> int:
    text = _text(data, "version") or ""
    if not text.isdigit() or len(text) > 9:
        raise InvalidParameter(f"Parameter 'version' must be an integer, got '{text[:40]}'.")
    return int(text)


def _tags(data: dict[str, Any]) -> dict[str, Any]:
    items = data.get("tags") or []
    if not isinstance(items, list):
        raise InvalidParameter(invalid_value("tags", items, f" Hint: Value was of type '{type(items).__name__}'.").message
                               + _SEE_DOCS)
    out = {}
    for item in items:
        if not isinstance(item, dict):
            raise InvalidParameter(invalid_value("tags", items, "each tag must be an object with 'key' and 'value'").message)
        out[item.get("key")] = item.get("value")
    return out


def _order_by(request: Request, data: dict[str, Any]) -> list[str]:
    """``order_by`` repeats in a query string (``?order_by=a&order_by=b``) and is a list in JSON."""
    if request.method == "GET":
        return request.query_params.getlist("order_by")
    value = data.get("order_by") or []
    return [value] if isinstance(value, str) else [str(v) for v in value]


async def _work(request: Request, fn: Any, *, write: bool) -> Response:
    """Run ``fn(session, workspace)`` in a read or write transaction off the event loop."""
    ws = _ws(request)

    def run() -> Any:
        with (ws.store.write() if write else ws.store.read()) as session:
            return fn(session)

    return json_response(await in_thread(run))


# -- registered models -------------------------------------------------------------------------
async def models_create(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    tags = _tags(data)
    description = _text(data, "description", required=False)
    return await _work(request, lambda s: {"registered_model": api.create_model(s, name, description, tags)},
                       write=True)


async def models_get(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    return await _work(request, lambda s: {"registered_model": api.model_entity(s, api.model_of(s, name))},
                       write=False)


async def _search(request: Request, search_fn: Any, key: str) -> Response:
    """A search route: filter, order_by, max_results and page_token in; a page and its token out."""
    data = await _params(request)
    order_by = _order_by(request, data)

    def fn(session: Any) -> dict[str, Any]:
        found, token = search_fn(session, data.get("filter"), order_by, data.get("max_results"), data.get("page_token"))
        return {key: found, **({"next_page_token": token} if token else {})}

    return await _work(request, fn, write=False)


async def models_search(request: Request) -> Response:
    return await _search(request, search.search_models, "registered_models")


async def models_update(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    description = _text(data, "description", required=False)
    return await _work(request, lambda s: {"registered_model": api.update_model(s, name, description)}, write=True)


async def models_delete(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    return await _work(request, lambda s: api.delete_model(s, name) or {}, write=True)


async def models_rename(request: Request) -> Response:
    data = await _params(request)
    name, new_name = _text(data, "name") or "", _text(data, "new_name") or ""
    return await _work(request, lambda s: {"registered_model": api.rename_model(s, name, new_name)}, write=True)


async def models_set_tag(request: Request) -> Response:
    data = await _params(request)
    name, key = _text(data, "name") or "", _text(data, "key") or ""
    value = _text(data, "value", required=False)
    return await _work(request, lambda s: api.set_model_tag(s, name, key, value) or {}, write=True)


async def models_delete_tag(request: Request) -> Response:
    data = await _params(request)
    name, key = _text(data, "name") or "", _text(data, "key") or ""
    return await _work(request, lambda s: api.delete_model_tag(s, name, key) or {}, write=True)


async def models_latest(request: Request) -> Response:
    """``get-latest-versions``: stages are deprecated and every version's stage is None, so the
    newest version answers for ``None`` (or no stage asked) and nothing for other stages."""
    data = await _params(request)
    name = _text(data, "name") or ""
    stages = request.query_params.getlist("stages") if request.method == "GET" else (data.get("stages") or [])

    def fn(session: Any) -> dict[str, Any]:
        latest = api.model_entity(session, api.model_of(session, name))["latest_versions"]
        wanted = {str(x).lower() for x in stages}
        return {"model_versions": latest if not wanted or "none" in wanted else []}

    return await _work(request, fn, write=False)


# -- model versions ----------------------------------------------------------------------------
async def versions_create(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    source = _text(data, "source") or ""
    run_id = _text(data, "run_id", required=False)
    model_id = _text(data, "model_id", required=False)
    description = _text(data, "description", required=False)
    tags = _tags(data)
    ws = _ws(request)
    created = await in_thread(api.create_version, ws, name, source, run_id=run_id, model_id=model_id,
                              description=description, tags=tags)
    return json_response({"model_version": created})


async def versions_get(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    version = _version(data)
    return await _work(request, lambda s: {"model_version": api.get_version(s, name, version)}, write=False)


async def versions_download_uri(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    version = _version(data)
    return json_response({"artifact_uri": await in_thread(api.download_uri, _ws(request), name, version)})


async def versions_search(request: Request) -> Response:
    return await _search(request, search.search_versions, "model_versions")


async def versions_update(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    version = _version(data)
    description = _text(data, "description", required=False)
    return await _work(request, lambda s: {"model_version": api.update_version(s, name, version, description)},
                       write=True)


async def versions_delete(request: Request) -> Response:
    data = await _params(request)
    name, version = _text(data, "name") or "", _version(data)
    return await _work(request, lambda s: api.delete_version(s, name, version) or {}, write=True)


async def versions_set_tag(request: Request) -> Response:
    data = await _params(request)
    name, version = _text(data, "name") or "", _version(data)
    key, value = _text(data, "key") or "", _text(data, "value", required=False)
    return await _work(request, lambda s: api.set_version_tag(s, name, version, key, value) or {}, write=True)


async def versions_delete_tag(request: Request) -> Response:
    data = await _params(request)
    name, version, key = _text(data, "name") or "", _version(data), _text(data, "key") or ""
    return await _work(request, lambda s: api.delete_version_tag(s, name, version, key) or {}, write=True)


# -- aliases -------------------------------------------------------------------------------------
async def alias_set(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    alias = _text(data, "alias") or ""
    version = _version(data)

    def fn(session: Any) -> dict[str, Any]:
        from shipyard.registry import set_alias

        try:
            set_alias(session, name, alias, version)
        except CheckFailed as exc:
            # our policy (champion needs a passing gate), which the client fixes by gating
            raise api.PermissionRefused(f"{exc.message}. Gate it first: shipyard gate {name}@{version}",
                                hint=exc.hint) from exc
        return {}

    return await _work(request, fn, write=True)


async def alias_delete(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    alias = _text(data, "alias") or ""

    def fn(session: Any) -> dict[str, Any]:
        from shipyard.registry import delete_alias

        delete_alias(session, name, alias)
        return {}

    return await _work(request, fn, write=True)


async def alias_get(request: Request) -> Response:
    data = await _params(request)
    name = _text(data, "name") or ""
    alias = _text(data, "alias") or ""

    return await _work(request, lambda s: {"model_version": api.version_by_alias(s, name, alias)}, write=False)


_ENDPOINTS: list[tuple[str, Any, list[str]]] = [
    ("/registered-models/create", models_create, ["POST"]),
    ("/registered-models/get", models_get, ["GET"]),
    ("/registered-models/search", models_search, ["GET"]),
    ("/registered-models/update", models_update, ["PATCH"]),
    ("/registered-models/delete", models_delete, ["DELETE"]),
    ("/registered-models/rename", models_rename, ["POST"]),
    ("/registered-models/set-tag", models_set_tag, ["POST"]),
    ("/registered-models/delete-tag", models_delete_tag, ["DELETE"]),
    ("/registered-models/get-latest-versions", models_latest, ["GET", "POST"]),
    ("/model-versions/create", versions_create, ["POST"]),
    ("/model-versions/get", versions_get, ["GET"]),
    ("/model-versions/search", versions_search, ["GET"]),
    ("/model-versions/get-download-uri", versions_download_uri, ["GET"]),
    ("/model-versions/update", versions_update, ["PATCH"]),
    ("/model-versions/delete", versions_delete, ["DELETE"]),
    ("/model-versions/set-tag", versions_set_tag, ["POST"]),
    ("/model-versions/delete-tag", versions_delete_tag, ["DELETE"]),
    ("/registered-models/alias", alias_set, ["POST"]),
    ("/registered-models/alias", alias_delete, ["DELETE"]),
    ("/registered-models/alias", alias_get, ["GET"]),
]

routes = mlflow_routes(_ENDPOINTS)
