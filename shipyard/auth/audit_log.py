"""The audit log as ``shipyard audit log|verify`` shows it: one function each, for the CLI and the server."""

from __future__ import annotations

from typing import Any

from shipyard import audit
from shipyard.store import Store

EVENT_FIELDS = ("seq", "at", "actor", "kind", "subject", "payload")


def event_rows(store: Store, kind: str | None = None, subject: str | None = None, limit: int = 50,
               actor: str | None = None) -> list[dict[str, Any]]:
    """The newest events, newest first, as JSON-ready rows (``EVENT_FIELDS``)."""
    with store.read() as session:
        return [{"seq": e.seq, "at": e.at.isoformat(timespec="seconds"), "actor": e.actor, "kind": e.kind,
                 "subject": e.subject, "payload": e.payload}
                for e in audit.events(session, kind, subject, limit, actor=actor)]


def verify_chain(store: Store) -> dict[str, Any]:
    """Whether no event was edited, inserted or deleted: ``{ok, events, problem, seq}``."""
    with store.read() as session:
        result = audit.verify(session)
    return {"ok": result.ok, "events": result.events, "problem": result.problem, "seq": result.seq}
