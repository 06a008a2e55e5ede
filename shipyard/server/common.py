"""Helpers every route module shares: reading a bounded JSON body, typed fields, thread offload."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.routing import Route

from shipyard.errors import InputError
from shipyard.server.errors import MalformedRequest, RequestTooLarge
from shipyard.tracking.validation import MAX_REQUEST_BYTES

T = TypeVar("T")

MLFLOW_V2_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")


def mlflow_routes(endpoints: list[tuple[str, Callable[..., Any], list[str]]]) -> list[Route]:
    """Each ``(path, endpoint, methods)`` mounted under both MLflow 2.0 prefixes (REST and ajax)."""
    return [Route(prefix + path, endpoint, methods=methods)
            for prefix in MLFLOW_V2_PREFIXES for path, endpoint, methods in endpoints]


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"{request.url.path}: the request body is {int(declared)} bytes; the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"{request.url.path}: the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request, limit: int = MAX_REQUEST_BYTES) -> dict[str, Any]:
    """The request's JSON object (1 MB at most), or a 400 naming the route and the problem."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedRequest(f"{request.url.path}: the body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise MalformedRequest(f"{request.url.path}: the body must be a JSON object, got {type(data).__name__}")
    return data


def field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], route: str, *,
          required: bool = True, default: Any = None) -> Any:
    """``data[name]`` checked against ``kind`` (a 400 naming the route and field otherwise)."""
    value = data.get(name)
    if value is None:
        if required:
            raise InputError(f"{route}: missing required field {name!r}")
        return default
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise InputError(f"{route}: field {name!r} must be {_kind(kind)}, got a boolean")
    if not isinstance(value, kind):
        raise InputError(f"{route}: field {name!r} must be {_kind(kind)}, got {type(value).__name__} {value!r:.80}")
    return value


API_DOCS = " See the API docs for more information about request parameters."


def mlflow_param(data: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = False,
                 default: Any = None) -> Any:
    """``data[name]`` checked as MLflow's handlers check a request parameter, with MLflow's messages.

    Missing (or "" when required): ``Missing value for required parameter 'x'.``; a value of the
    wrong JSON type: ``Invalid value 5 for parameter 'x' supplied: ...``; both INVALID_PARAMETER_VALUE.
    ``int`` accepts a string of digits (proto3 JSON writes int64 as a string).
    """
    value = data.get(name)
    if value is None or (required and value == ""):
        if required:
            raise InputError(f"Missing value for required parameter '{name}'.{API_DOCS}")
        return default
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if int in kinds and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        raise InputError(invalid_value(name, value, f" Hint: Value was of type '{type(value).__name__}'.") + API_DOCS)
    return value


def invalid_value(name: str, value: Any, message: str | None = None) -> str:
    """MLflow's ``Invalid value <json> for parameter '<name>' supplied`` sentence."""
    shown = orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()
    if len(shown) > 200:
        shown = shown[:200] + "..."
    return f"Invalid value {shown} for parameter '{name}' supplied" + (f": {message}" if message else ".")


def _kind(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "an object", bool: "a boolean"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking store work off the event loop."""
    return await run_in_threadpool(fn, *args, **kwargs)
