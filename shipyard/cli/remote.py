"""Remote mode: with ``SHIPYARD_SERVER_URL`` set, commands that make sense on a server ask it over HTTP.

The client is built as the Python API's HTTP backend builds it (``shipyard.auth.settings
.client_options``: ``Authorization: Bearer $SHIPYARD_TOKEN``, certificates checked, with
``SHIPYARD_CA_BUNDLE`` for a private CA). The server's refusals keep their message and hint and get
the exit code the same refusal has locally: 401/403 (credentials, permission) and 400 exit 2, a
refused check (422, or 409 INVALID_STATE: a champion without a passing gate, a rollout in the wrong
state) exits 1, 404 is NotFound, 5xx exits 3. Commands that need a local project (``run``,
``status``, ``data``, ...) still run locally: ``note_local`` says so once on stderr.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from shipyard.errors import (
    AlreadyExists,
    CheckFailed,
    InputError,
    NotFound,
    ShipyardError,
    StoreError,
    UsageError,
)

SERVER_URL_ENV = "SHIPYARD_SERVER_URL"
# (group, command) pairs that talk to the server; None: every command of the group
REMOTE_COMMANDS: dict[str, frozenset[str] | None] = {
    "runs": frozenset({"list", "show"}),
    "metrics": frozenset({"show"}),
    "models": frozenset({"list", "show", "alias"}),
    "rollout": frozenset({"status", "pause", "resume", "promote", "abort", "approve"}),
    "triggers": frozenset({"list", "approve"}),
    "audit": frozenset({"log", "verify"}),
    "tokens": None,
    "users": None,
    "projects": None,
}
_NEVER_NOTED = frozenset({"server", "serve", "init", "doctor"})  # these never talk to a remote server


def server_url() -> str | None:
    """``SHIPYARD_SERVER_URL`` without its trailing slash, None when unset (local mode)."""
    url = os.environ.get(SERVER_URL_ENV, "").strip().rstrip("/")
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{SERVER_URL_ENV}={url!r} is not an http(s):// URL",
                         hint="e.g. SHIPYARD_SERVER_URL=https://shipyard.example.com, or unset it to use the local store")
    return url


def note_local(args: list[str]) -> None:
    """Say once on stderr that a command runs locally although ``SHIPYARD_SERVER_URL`` is set."""
    if not os.environ.get(SERVER_URL_ENV, "").strip() or any(a in ("-h", "--help", "--version") for a in args):
        return
    words = [a for a in args if not a.startswith("-")][:2]
    if not words or words[0] in _NEVER_NOTED:
        return
    remote = REMOTE_COMMANDS.get(words[0], frozenset())
    if remote is None or (len(words) > 1 and words[1] in remote) or (len(words) == 1 and remote):
        return
    print(f"note: 'shipyard {' '.join(words)}' runs locally on this project; {SERVER_URL_ENV} is used only by "
          "runs, metrics show, models, rollout, triggers, audit, tokens, users and projects", file=sys.stderr)


class Remote:
    """A ``shipyard server`` over HTTP: JSON in, JSON out, errors mapped to Shipyard's exit codes."""

    def __init__(self, url: str, *, timeout: float = 30.0) -> None:
        from shipyard.auth.settings import client_options

        self.url, self.timeout = url, timeout
        self.options = client_options()

    def call(self, method: str, path: str, what: str, **kwargs: Any) -> Any:
        """The JSON answer of ``method path``; a ShipyardError naming ``what`` and the server otherwise.

        One connection per call, closed after it: a command makes one or two calls, and no idle TLS
        connection is left for the server to wait on when it shuts down.
        """
        import httpx

        try:
            with httpx.Client(base_url=self.url, timeout=self.timeout, **self.options) as client:
                response = client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            tls = "certificate" in str(exc).lower() or "ssl" in str(exc).lower()
            raise UsageError(f"{what}: cannot reach {SERVER_URL_ENV}={self.url}: {exc}",
                             hint="set SHIPYARD_CA_BUNDLE to the PEM of the server's certificate authority" if tls
                             else "check the URL and that 'shipyard server' runs there") from None
        if response.status_code >= 400:
            raise _error(response, what, self.url)
        return response.json() if response.content else {}

    def get(self, path: str, what: str, **params: Any) -> Any:
        """GET with the query parameters that are not None."""
        return self.call("GET", path, what, params={k: v for k, v in params.items() if v is not None})


def _error(response: Any, what: str, url: str) -> ShipyardError:
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = str(body.get("message") or response.text[:500] or response.reason_phrase)
    hint, code, status = body.get("hint"), body.get("error_code"), response.status_code
    if status == 401:
        hint = hint or f"set SHIPYARD_TOKEN to an API token of {url} (an admin makes one: shipyard tokens create)"
    elif status == 403:
        hint = hint or "ask an admin for a role (shipyard projects grant) or a token scope that grants it"
    cls: type[ShipyardError] = {401: UsageError, 403: UsageError, 404: NotFound, 422: CheckFailed}.get(status, InputError)
    if status == 409:
        cls = CheckFailed if code == "INVALID_STATE" else AlreadyExists
    elif status >= 500:
        cls = StoreError
    return cls(f"{what}: {url} answered {status}: {message}", hint=hint)


def remote() -> Remote | None:
    """The server of ``SHIPYARD_SERVER_URL``, None in local mode."""
    url = server_url()
    return Remote(url) if url is not None else None
