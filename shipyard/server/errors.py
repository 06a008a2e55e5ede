"""One place that turns errors into HTTP responses, in MLflow's shape ``{error_code, message}``.

ShipyardError subclasses carry their HTTP status; the MLflow error code is derived from the class,
so MLflow's client raises the exception it expects (RESOURCE_DOES_NOT_EXIST makes
``get_experiment_by_name`` return None, for example). Anything else is a 500 INTERNAL_ERROR whose
message says no more than the exception type; the traceback goes to the server log.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from shipyard.errors import (
    AlreadyExists,
    CheckFailed,
    InputError,
    NotFound,
    ShipyardError,
    StoreBusy,
    StoreError,
)

log = logging.getLogger("shipyard.server")


class MalformedRequest(InputError):
    """The body is not JSON, or not the JSON object a route expects."""

    error_code = "MALFORMED_REQUEST"


class RequestTooLarge(InputError):
    """The body is over the route's size limit (1 MB for JSON, as MLflow)."""

    http_status = 413


def error_code(exc: ShipyardError) -> str:
    explicit = getattr(exc, "error_code", None)
    if explicit:
        return str(explicit)
    if isinstance(exc, NotFound):
        return "RESOURCE_DOES_NOT_EXIST"
    if isinstance(exc, AlreadyExists):
        return "RESOURCE_ALREADY_EXISTS"
    if isinstance(exc, StoreBusy):
        return "TEMPORARILY_UNAVAILABLE"
    if isinstance(exc, StoreError):
        return "TEMPORARILY_UNAVAILABLE"
    if isinstance(exc, CheckFailed):
        return "INVALID_STATE"
    if exc.http_status >= 500:
        return "INTERNAL_ERROR"
    return "INVALID_PARAMETER_VALUE"


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


def error_response(status: int, code: str, message: str, hint: str | None = None) -> Response:
    body: dict[str, Any] = {"error_code": code, "message": message}
    if hint:
        body["hint"] = hint
    return json_response(body, status)


# MLflow's routes answer with MLflow's status for a code (RESOURCE_ALREADY_EXISTS is 400 there).
MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/3.0/mlflow", "/ajax-api/3.0/mlflow")
MLFLOW_STATUS = {"RESOURCE_ALREADY_EXISTS": 400}


async def shipyard_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ShipyardError)
    code, status = error_code(exc), exc.http_status
    if code in MLFLOW_STATUS and request.url.path.startswith(MLFLOW_PREFIXES):
        status = MLFLOW_STATUS[code]
    return error_response(status, code, exc.message, exc.hint)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return error_response(404, "ENDPOINT_NOT_FOUND", f"no route {request.method} {request.url.path}")
    if exc.status_code == 405:
        return error_response(405, "BAD_REQUEST", f"{request.method} is not allowed on {request.url.path}")
    return error_response(exc.status_code, "BAD_REQUEST", str(exc.detail))


async def internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error on %s %s", request.method, request.url.path)
    return error_response(500, "INTERNAL_ERROR", f"internal error ({type(exc).__name__}); see the server log")


HANDLERS = {ShipyardError: shipyard_error, HTTPException: http_error, Exception: internal_error}
