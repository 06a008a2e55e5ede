"""The append-only, hash-chained audit log.

Each event's hash is SHA-256 over its sequence number, time, actor, kind, subject, payload and the
previous event's hash, so editing or deleting any row breaks the chain at that row. ``record`` is
called inside the caller's write transaction: the state change and its event commit together.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, text
from sqlalchemy.orm import Session

from shipyard.processes import this_host
from shipyard.store.tables import AuditEvent

GENESIS = "0" * 64
_PG_LOCK_KEY = 0x5317_A0D1
# The principal of the request being served (set by the server's AuthMiddleware). A ContextVar, not
# a global: each request runs in its own context, and Starlette's threadpool copies the context
# into the worker thread, so sync endpoints and the store writes they make see their own request's.
_REQUEST_ACTOR: ContextVar[str | None] = ContextVar("shipyard_request_actor", default=None)


class acting_as:  # lower case: called like the function it replaced, ``with audit.acting_as(actor):``
    """Within the block, ``current_actor()`` is ``actor`` (None leaves the process default).

    A class, not a ``@contextmanager`` generator: the gateway enters one per request, and a
    generator-based block costs ~1 µs more there.
    """

    __slots__ = ("_actor", "_token")

    def __init__(self, actor: str | None) -> None:
        self._actor = actor

    def __enter__(self) -> None:
        self._token = _REQUEST_ACTOR.set(self._actor)

    def __exit__(self, *exc: object) -> None:
        _REQUEST_ACTOR.reset(self._token)


# act_in_task(actor): make ``actor`` the current actor until the current task (context) ends, with
# no block to leave: for an ASGI middleware that hands a request on without staying under it. An
# ASGI server runs each request in a task of its own, so the setting ends with the request; an
# in-process caller that awaits the app in its own task keeps it until its next request sets
# another. The ContextVar's own ``set``, not a function around it: the gateway calls it on every
# request, and a Python frame there costs ~0.3 µs.
act_in_task: Callable[[str | None], object] = _REQUEST_ACTOR.set


def current_actor() -> str:
    """Who is acting: the authenticated principal of the request, else SHIPYARD_ACTOR, else user@host."""
    requested = _REQUEST_ACTOR.get()
    if requested:
        return requested
    explicit = os.environ.get("SHIPYARD_ACTOR")
    if explicit:
        return explicit
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{this_host()}"


def _digest(seq: int, at: datetime, actor: str, kind: str, subject: str, payload: str, prev: str) -> str:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL aware ones.
    naive = at if at.tzinfo is None else at.astimezone(UTC).replace(tzinfo=None)
    stamp = naive.isoformat(timespec="microseconds")
    body = json.dumps([seq, stamp, actor, kind, subject, payload, prev], separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def record(session: Session, kind: str, subject: str, payload: dict[str, Any] | None = None,
           actor: str | None = None) -> AuditEvent:
    """Append one event in the caller's transaction."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_KEY})
    last = session.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    at = datetime.now(UTC)
    body = json.dumps(payload or {}, sort_keys=True, separators=(",", ":"), default=str)
    who = actor or current_actor()
    event = AuditEvent(seq=seq, at=at, actor=who, kind=kind, subject=subject, payload=body, prev_hash=prev,
                       hash=_digest(seq, at, who, kind, subject, body, prev))
    session.add(event)
    session.flush()
    return event


@dataclass(frozen=True)
class Verification:
    """The result of checking the chain: ok, how many events, and the first broken one."""

    ok: bool
    events: int
    problem: str | None = None
    seq: int | None = None


def verify(session: Session) -> Verification:
    """Walk the chain from the first event; report the first edited, inserted or deleted row."""
    prev = GENESIS
    expected_seq = 1
    count = session.scalar(select(func.count()).select_from(AuditEvent)) or 0
    for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)).yield_per(1000):
        if event.seq != expected_seq:
            return Verification(False, count, f"event {expected_seq} is missing (next is {event.seq})", expected_seq)
        if event.prev_hash != prev:
            return Verification(False, count, f"event {event.seq} does not follow event {event.seq - 1}", event.seq)
        actual = _digest(event.seq, event.at, event.actor, event.kind, event.subject, event.payload, event.prev_hash)
        if actual != event.hash:
            return Verification(False, count, f"event {event.seq} ({event.kind} {event.subject}) was edited", event.seq)
        prev = event.hash
        expected_seq += 1
    return Verification(True, count)


def events(session: Session, kind: str | None = None, subject: str | None = None, limit: int = 100,
           actor: str | None = None) -> list[AuditEvent]:
    """The newest events, optionally filtered by kind, subject prefix or actor.

    ``actor`` matches a principal (``alice``, also as ``alice via shp_...`` when it used a token)
    or a token's display prefix (``shp_AbCd1234``).
    """
    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(limit)
    if kind:
        query = query.where(AuditEvent.kind == kind)
    if subject:
        query = query.where(AuditEvent.subject.startswith(subject))
    if actor:
        query = query.where(or_(AuditEvent.actor == actor, AuditEvent.actor.startswith(f"{actor} via ", autoescape=True),
                                AuditEvent.actor.endswith(f" via {actor}", autoescape=True)))
    return list(session.scalars(query))
