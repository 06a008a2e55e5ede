"""MLflow's model-registry REST subset, so ``MlflowClient`` registers versions and moves aliases here.

Served under ``/api/2.0/mlflow/`` and ``/ajax-api/2.0/mlflow/``: registered-models create, get,
search, update, delete; model-versions create, get, search, update; registered-models/alias set
(POST), delete (DELETE) and get-by-alias (GET). Every write goes through ``shipyard.registry`` in
one transaction with its audit event, so the rules hold over REST too: an alias that looks like a
version (``v3``) is refused, and ``champion`` needs a passing gate verdict (422 INVALID_STATE).

A version created over REST records MLflow's ``source`` string as given and never reads it (no
path is resolved on the server: the CVE-2023-1177 family). Its flavor is ``external``: it has no
Shipyard package until one is registered with ``shipyard models register``.
"""

from __future__ import annotations

import re
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.errors import InputError, NotFound
from shipyard.server.common import in_thread, json_body
from shipyard.server.errors import json_response
from shipyard.store import registry as repo

PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
EXTERNAL_FLAVOR = "external"
_CLAUSE = re.compile(r"^\s*(name|run_id|source|tags?\.(?:`[^`]+`|[\w.-]+))\s*(=|!=|LIKE|ILIKE)\s*'([^']*)'\s*$",
                     re.IGNORECASE)
_AND = re.compile(r"\s+AND\s+", re.IGNORECASE)


def _ws(request: Request) -> Any:
    return request.app.state.workspace


async def _params(request: Request) -> dict[str, Any]:
    """Query string for GET (and for DELETE without a body); the JSON body otherwise."""
    out: dict[str, Any] = {k: request.query_params.get(k) for k in request.query_params}
    if request.method != "GET":
        out.update(await json_body(request))
    return out


def _route(request: Request) -> str:
    return f"{request.method} {request.url.path}"


def _text(data: dict[str, Any], key: str, route: str, *, required: bool = True) -> str | None:
    value = data.get(key)
    if value is None or value == "":
        if required:
            raise InputError(f"{route}: missing required field {key!r}")
        return None
    if not isinstance(value, str | int) or isinstance(value, bool):
        raise InputError(f"{route}: field {key!r} must be a string, got {type(value).__name__}")
    return str(value)


def _version(data: dict[str, Any], route: str) -> int:
    text = _text(data, "version", route) or ""
    if not text.isdigit() or len(text) > 9:
        raise InputError(f"{route}: field 'version' must be a version number, got {text[:40]!r}")
    return int(text)


def _tags(data: dict[str, Any], route: str) -> dict[str, str]:
    items = data.get("tags") or []
    if not isinstance(items, list):
        raise InputError(f"{route}: field 'tags' must be a list of {{key, value}} objects")
    out = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise InputError(f"{route}: tags[{i}] must be an object with a string 'key'")
        out[item["key"]] = str(item.get("value", ""))
    return out


def _version_json(session: Any, model: repo.RegisteredModel, row: repo.ModelVersionRow,
                  aliases: dict[str, int] | None = None, tags: dict[str, str] | None = None) -> dict[str, Any]:
    aliases = aliases if aliases is not None else repo.aliases_many(session, [model.id])[model.id]
    tags = tags if tags is not None else repo.version_tags_many(session, [row.id])[row.id]
    return {
        "name": model.name, "version": str(row.version), "creation_timestamp": row.created_at,
        "last_updated_timestamp": row.updated_at, "user_id": row.user or "", "current_stage": "None",
        "description": row.description or "", "source": row.source or "", "run_id": row.run_id or "",
        "status": "READY", "status_message": "", "run_link": "",
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        "aliases": sorted(a for a, v in aliases.items() if v == row.version),
    }


def _model_json(session: Any, model: repo.RegisteredModel) -> dict[str, Any]:
    aliases = repo.aliases_many(session, [model.id])[model.id]
    tags = repo.model_tags_many(session, [model.id])[model.id]
    rows = repo.list_versions(session, [model.id])
    latest = [_version_json(session, model, rows[-1], aliases)] if rows else []
    return {
        "name": model.name, "creation_timestamp": model.created_at, "last_updated_timestamp": model.updated_at,
        "description": model.description or "", "user_id": "",
        "latest_versions": latest,
        "tags": [{"key": k, "value": v} for k, v in sorted(tags.items())],
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(aliases.items())],
    }


def _parse_filter(text: str | None, route: str) -> list[tuple[str, str, str]]:
    """``name = 'x' AND tag.`k` != 'v'`` -> [(field, op, value)]; anything else is a 400 naming it."""
    if not text:
        return []
    clauses = []
    for part in _AND.split(text.strip()):
        match = _CLAUSE.match(part)
        if not match:
            raise InputError(f"{route}: unsupported filter clause {part[:100]!r}",
                             hint="supported: name/run_id/source/tag.KEY with =, !=, LIKE, ILIKE, joined by AND")
        key = match.group(1)
        if "." in key and key.split(".", 1)[0].lower() in ("tag", "tags"):
            key = "tag:" + key.split(".", 1)[1].strip("`")
        else:
            key = key.lower()
        clauses.append((key, match.group(2).upper(), match.group(3)))
    return clauses


def _keep(values: dict[str, str], tags: dict[str, str], clauses: list[tuple[str, str, str]]) -> bool:
    for key, op, pattern in clauses:
        value = tags.get(key[4:], "") if key.startswith("tag:") else values.get(key, "")
        if not _matches(value, op, pattern):
            return False
    return True


def _matches(value: str, op: str, pattern: str) -> bool:
    if op == "=":
        return value == pattern
    if op == "!=":
        return value != pattern
    regex = "^" + re.escape(pattern).replace("%", ".*").replace("_", ".") + "$"
    return re.match(regex, value, re.IGNORECASE if op == "ILIKE" else 0) is not None


def _max_results(data: dict[str, Any], route: str, default: int) -> int:
    raw = data.get("max_results")
    if raw in (None, ""):
        return default
    text = str(raw)
    if not text.isdigit() or not 1 <= int(text) <= 50_000:
        raise InputError(f"{route}: max_results must be an integer from 1 to 50000, got {text[:20]!r}")
    return int(text)


# -- registered models -------------------------------------------------------------------------
async def models_create(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""
    tags = _tags(data, route)
    description = _text(data, "description", route, required=False)

    def work() -> dict[str, Any]:
        from shipyard import audit
        from shipyard.registry.core import validate_name

        validate_name(name)
        with _ws(request).store.write() as session:
            model = repo.create_model(session, name, description, tags)
            audit.record(session, "model.create", name, {"via": "mlflow-rest"})
            return {"registered_model": _model_json(session, model)}

    return json_response(await in_thread(work))


async def models_get(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            return {"registered_model": _model_json(session, repo.get_model(session, name))}

    return json_response(await in_thread(work))


async def models_search(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    where = _parse_filter(data.get("filter"), route)
    limit = _max_results(data, route, 100)
    offset = int(data["page_token"]) if str(data.get("page_token") or "").isdigit() else 0

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            models = repo.list_models(session)
            if where:
                if any(k in ("run_id", "source") for k, _, _ in where):
                    raise InputError(f"{route}: registered models filter on name and tags only")
                tags = repo.model_tags_many(session, [m.id for m in models])
                models = [m for m in models if _keep({"name": m.name}, tags[m.id], where)]
            page = models[offset:offset + limit]
            out: dict[str, Any] = {"registered_models": [_model_json(session, m) for m in page]}
            if offset + limit < len(models):
                out["next_page_token"] = str(offset + limit)
            return out

    return json_response(await in_thread(work))


async def models_update(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""
    description = _text(data, "description", route, required=False)

    def work() -> dict[str, Any]:
        from shipyard import audit
        from shipyard.store.registry import now_ms

        with _ws(request).store.write() as session:
            model = repo.get_model(session, name)
            model.description = description
            model.updated_at = now_ms()
            audit.record(session, "model.update", name, {"description": description, "via": "mlflow-rest"})
            return {"registered_model": _model_json(session, model)}

    return json_response(await in_thread(work))


async def models_delete(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""

    def work() -> dict[str, Any]:
        from shipyard import audit

        with _ws(request).store.write() as session:
            repo.delete_model(session, name)
            audit.record(session, "model.delete", name, {"via": "mlflow-rest"})
        return {}

    return json_response(await in_thread(work))


# -- model versions ----------------------------------------------------------------------------
async def versions_create(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""
    source = _text(data, "source", route) or ""
    run_id = _text(data, "run_id", route, required=False)
    description = _text(data, "description", route, required=False)
    tags = _tags(data, route)

    def work() -> dict[str, Any]:
        from shipyard.registry import register

        with _ws(request).store.write() as session:
            mv = register(session, name, model_oid="", flavor=EXTERNAL_FLAVOR, run_id=run_id, source=source,
                          description=description, tags=tags)
            model = repo.get_model(session, name)
            return {"model_version": _version_json(session, model, repo.get_version(session, model, mv.version))}

    return json_response(await in_thread(work))


async def versions_get(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""
    version = _version(data, route)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            model = repo.get_model(session, name)
            return {"model_version": _version_json(session, model, repo.get_version(session, model, version))}

    return json_response(await in_thread(work))


async def versions_search(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    where = _parse_filter(data.get("filter"), route)
    limit = _max_results(data, route, 10_000)

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            models = {m.id: m for m in repo.list_models(session)}
            rows = repo.list_versions(session)
            tags = repo.version_tags_many(session, [r.id for r in rows])
            if where:
                rows = [r for r in rows if _keep({"name": models[r.model_id].name, "run_id": r.run_id or "",
                                                  "source": r.source or ""}, tags[r.id], where)]
            rows = rows[:limit]
            aliases = repo.aliases_many(session, list(models))
            return {"model_versions": [_version_json(session, models[r.model_id], r, aliases[r.model_id], tags[r.id])
                                       for r in rows]}

    return json_response(await in_thread(work))


async def versions_update(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""
    version = _version(data, route)
    description = _text(data, "description", route, required=False)

    def work() -> dict[str, Any]:
        from shipyard import audit
        from shipyard.store.registry import now_ms

        with _ws(request).store.write() as session:
            model = repo.get_model(session, name)
            row = repo.get_version(session, model, version)
            row.description = description
            row.updated_at = now_ms()
            audit.record(session, "model.version.update", f"{name}@{version}", {"description": description})
            return {"model_version": _version_json(session, model, row)}

    return json_response(await in_thread(work))


# -- aliases -------------------------------------------------------------------------------------
async def alias_set(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""
    alias = _text(data, "alias", route) or ""
    version = _version(data, route)

    def work() -> dict[str, Any]:
        from shipyard.registry import set_alias

        with _ws(request).store.write() as session:
            set_alias(session, name, alias, version)
        return {}

    return json_response(await in_thread(work))


async def alias_delete(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""
    alias = _text(data, "alias", route) or ""

    def work() -> dict[str, Any]:
        from shipyard.registry import delete_alias

        with _ws(request).store.write() as session:
            delete_alias(session, name, alias)
        return {}

    return json_response(await in_thread(work))


async def alias_get(request: Request) -> Response:
    route = _route(request)
    data = await _params(request)
    name = _text(data, "name", route) or ""
    alias = _text(data, "alias", route) or ""

    def work() -> dict[str, Any]:
        with _ws(request).store.read() as session:
            model = repo.get_model(session, name)
            row = repo.alias_target(session, model, alias)
            if row is None:
                raise NotFound(f"registered model {name!r} has no alias {alias!r}")
            return {"model_version": _version_json(session, model, row)}

    return json_response(await in_thread(work))


_ENDPOINTS: list[tuple[str, Any, list[str]]] = [
    ("/registered-models/create", models_create, ["POST"]),
    ("/registered-models/get", models_get, ["GET"]),
    ("/registered-models/search", models_search, ["GET"]),
    ("/registered-models/update", models_update, ["PATCH"]),
    ("/registered-models/delete", models_delete, ["DELETE"]),
    ("/model-versions/create", versions_create, ["POST"]),
    ("/model-versions/get", versions_get, ["GET"]),
    ("/model-versions/search", versions_search, ["GET"]),
    ("/model-versions/update", versions_update, ["PATCH"]),
    ("/registered-models/alias", alias_set, ["POST"]),
    ("/registered-models/alias", alias_delete, ["DELETE"]),
    ("/registered-models/alias", alias_get, ["GET"]),
]

routes = [Route(prefix + path, endpoint, methods=methods)
          for prefix in PREFIXES for path, endpoint, methods in _ENDPOINTS]
