"""What every gateway answer carries, shared by the gateway (``app.py``) and its endpoints.

The request id (the caller's ``x-request-id`` when usable, else a new one), the version that
answered (``GATEWAY_VERSION`` when the gateway itself answers), and ``NotLoaded``, the 503 of a
version that must answer but is not loaded on this replica. A module of its own so that the
endpoints do not import the gateway module that builds them.
"""

from __future__ import annotations

import itertools
import os
import uuid
from typing import TYPE_CHECKING

from shipyard import __version__

if TYPE_CHECKING:
    from starlette.requests import Request

GATEWAY_VERSION = f"gateway-{__version__}"
MAX_REQUEST_ID = 128
# Request ids: 16 random hex digits per process, then a counter. Unique across replicas and
# restarts like a uuid4, at a fraction of the cost on the request path.
_ID_PREFIX = uuid.uuid4().hex[:16]
_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def _new_id_prefix() -> None:
    """A forked process (a pre-forking server) must not repeat its parent's ids."""
    global _ID_PREFIX, _ID_COUNTER
    _ID_PREFIX = uuid.uuid4().hex[:16]
    _ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


os.register_at_fork(after_in_child=_new_id_prefix)


def new_request_id() -> str:
    """A new 32-hex-digit request id."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFF_FFFF_FFFF_FFFF:016x}"


def request_id(request: Request) -> str:
    """The caller's x-request-id when it is usable, else a new 32-hex-digit id."""
    given = request.headers.get("x-request-id")
    if given and len(given) <= MAX_REQUEST_ID and given.isprintable():
        return given
    return new_request_id()


class NotLoaded(RuntimeError):
    """The version that must answer is not loaded on this replica (a 503: retry, or another replica)."""
