"""Where the Python API writes: the local store, or a ``shipyard server`` over HTTP.

Both take the same calls (create a run, write a batch, finish, inputs, artifacts, read a run).
``open_backend()`` picks HTTP when ``SHIPYARD_TRACKING_URI`` is ``http(s)://...`` and the project's
store otherwise. The HTTP backend sends batches to the server's ``/api/v1/runs/...`` routes, each
with a batch id, and retries dropped connections; the server skips a batch id it already wrote, so a
retry never doubles a value.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from shipyard.errors import AlreadyExists, InputError, NotFound, ShipyardError, StoreError
from shipyard.retry import Retryable, RetryPolicy
from shipyard.store.runs import MetricValue
from shipyard.tracking.validation import json_number
from shipyard.workspace import Workspace

RETRY = RetryPolicy(attempts=5, wait_initial=0.2, wait_max=5.0, timeout=60.0)  # batches are idempotent


class Backend(Protocol):
    def create_run(self, **fields: Any) -> str: ...
    def check_run(self, run_id: str) -> None: ...
    def write(self, run_id: str, metrics: Sequence[MetricValue], params: Mapping[str, str],
              tags: Mapping[str, str]) -> None: ...
    def finish(self, run_id: str, metrics: Sequence[MetricValue], status: str, end_time: int,
               params: Mapping[str, str] | None = None) -> None: ...
    def log_inputs(self, run_id: str, inputs: Sequence[Mapping[str, Any]]) -> None: ...
    def log_artifacts(self, run_id: str, files: Sequence[tuple[Path, str]]) -> None: ...
    def get_run(self, run_id: str) -> dict[str, Any]: ...


class LocalBackend:
    """Writes straight into the project's store (SQLite or PostgreSQL) and object store."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.workspace.store

    def create_run(self, **fields: Any) -> str:
        from shipyard.tracking import service

        with self.store.write() as session:
            return service.create_run(session, **fields)

    def check_run(self, run_id: str) -> None:
        from shipyard.tracking import service

        with self.store.read() as session:
            service.active_run(session, run_id)

    def write(self, run_id: str, metrics: Sequence[MetricValue], params: Mapping[str, str],
              tags: Mapping[str, str]) -> None:
        from shipyard.tracking import service

        with self.store.write() as session:
            service.log_batch(session, run_id, metrics=metrics, params=params, tags=tags, limits=False)

    def finish(self, run_id: str, metrics: Sequence[MetricValue], status: str, end_time: int,
               params: Mapping[str, str] | None = None) -> None:
        from shipyard.tracking import service

        with self.store.write() as session:
            if metrics or params:
                service.log_batch(session, run_id, metrics=metrics, params=params, limits=False)
            service.end_run(session, run_id, status, end_time)

    def log_inputs(self, run_id: str, inputs: Sequence[Mapping[str, Any]]) -> None:
        from shipyard.tracking import service

        with self.store.write() as session:
            service.log_inputs(session, run_id, inputs)

    def log_artifacts(self, run_id: str, files: Sequence[tuple[Path, str]]) -> None:
        from shipyard.tracking import service

        service.store_artifacts(self.store, self.workspace.objects, run_id, files)

    def get_run(self, run_id: str) -> dict[str, Any]:
        from shipyard.tracking import service

        with self.store.read() as session:
            return service.get_run(session, run_id).to_dict()


def _raise_for(response: Any, what: str) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        message = body.get("message") or response.text
    except ValueError:
        message = response.text[:500]
    cls: type[ShipyardError] = {404: NotFound, 409: AlreadyExists}.get(response.status_code, InputError)
    if response.status_code >= 500:
        cls = StoreError
    # a server with auth on: say which setting carries the credential (the token itself is never shown)
    hint = {401: "set SHIPYARD_TOKEN to an API token of that server (shipyard tokens create)",
            403: "the token of SHIPYARD_TOKEN lacks this permission on the project"}.get(response.status_code)
    raise cls(f"{what}: the server answered {response.status_code}: {message}", hint=hint)


class HttpBackend:
    """Talks to ``shipyard server`` at ``base_url``; batches are idempotent and retried."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        import httpx

        from shipyard.auth.settings import client_options

        self.base_url = base_url.rstrip("/")
        # no retries in the transport: the policy below is the only one (the two made 3 x 5 attempts);
        # client_options: Bearer $SHIPYARD_TOKEN, certificates checked (SHIPYARD_CA_BUNDLE for a private CA)
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout, **client_options())

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        import httpx

        def once() -> httpx.Response:
            try:
                response = self.client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                raise Retryable(f"cannot reach the tracking server {self.base_url}: {exc}") from exc
            if response.status_code in (502, 503, 504):  # a proxy or a restarting server: try again
                raise Retryable(f"the tracking server {self.base_url} answered {response.status_code}",
                                status=response.status_code)
            return response

        try:
            response = RETRY.run(once)
        except Retryable as exc:
            raise StoreError(f"{what}: {exc}", hint="check that 'shipyard server' runs there and "
                             "SHIPYARD_TRACKING_URI is right") from exc
        _raise_for(response, what)
        return response.json() if response.content else {}

    def create_run(self, **fields: Any) -> str:
        body = {k: v for k, v in fields.items() if v is not None}
        return self._call("POST", "/api/v1/runs", "create run", json=body)["run"]["run_id"]

    def check_run(self, run_id: str) -> None:
        run = self.get_run(run_id)
        if run.get("lifecycle_stage") != "active":
            raise InputError(f"run {run_id} is deleted; restore it before logging to it")

    def write(self, run_id: str, metrics: Sequence[MetricValue], params: Mapping[str, str],
              tags: Mapping[str, str]) -> None:
        body = {"batch_id": uuid.uuid4().hex, "params": dict(params), "tags": dict(tags),
                "metrics": [[m.key, json_number(m.value), m.step, m.timestamp] for m in metrics]}
        self._call("POST", f"/api/v1/runs/{run_id}/batch", f"log to run {run_id}", json=body)

    def finish(self, run_id: str, metrics: Sequence[MetricValue], status: str, end_time: int,
               params: Mapping[str, str] | None = None) -> None:
        if metrics or params:
            self.write(run_id, metrics, params or {}, {})
        self._call("POST", f"/api/v1/runs/{run_id}/end", f"end run {run_id}",
                   json={"status": status, "end_time": end_time})

    def log_inputs(self, run_id: str, inputs: Sequence[Mapping[str, Any]]) -> None:
        self._call("POST", f"/api/v1/runs/{run_id}/inputs", f"log inputs of run {run_id}",
                   json={"inputs": [dict(i) for i in inputs]})

    def log_artifacts(self, run_id: str, files: Sequence[tuple[Path, str]]) -> None:
        from urllib.parse import quote

        for path, name in files:
            self._call("PUT", f"/api/v1/runs/{run_id}/artifacts/{quote(name)}", f"upload artifact {name}",
                       content=path.read_bytes())

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self._call("GET", f"/api/v1/runs/{run_id}", f"get run {run_id}")["run"]


def open_backend() -> tuple[Backend, Path | None]:
    """The backend for this process, and the project root when one is known."""
    uri = os.environ.get("SHIPYARD_TRACKING_URI", "").strip()
    root = _project_root()
    if uri.startswith(("http://", "https://")):
        return HttpBackend(uri), root
    if uri and not uri.startswith("file:"):
        raise InputError(f"SHIPYARD_TRACKING_URI={uri!r} is not an http(s):// URL",
                         hint="use http://HOST:PORT of a 'shipyard server', or unset it for the local store")
    from shipyard.project import Project

    project = Project(root) if root is not None else Project(Path.cwd())
    return LocalBackend(Workspace(project)), project.root


def _project_root() -> Path | None:
    from shipyard.project import find_project

    env = os.environ.get("SHIPYARD_PROJECT_ROOT")
    if env:
        return Path(env).resolve()
    try:
        return find_project().root
    except NotFound:
        return None
