"""Audit: the hash-chained event log, filtered by actor, kind and resource, newest first, and the
chain's verification state (intact up to event N, or where it breaks).

    GET /audit?actor=alice&kind=rollout.&resource=iris@&before=SEQ

Every filter lives in the URL. ``actor`` matches a principal as ``shipyard audit log --actor`` does
(also when it acted through a token; a token prefix is no filter here, since the enforcement point
refuses anything that looks like a credential in a URL); ``kind`` is a kind (``rollout.abort``), or a prefix when it
ends with a dot (``rollout.``); ``resource`` is a prefix of the event's subject. Pages hold
``PAGE`` events and go on with ``before=<the last seq shown>`` (keyset: one indexed range read
however deep the page). Needs audit:read.

    GET /audit/chain    the chain's verification state

Verifying walks the whole chain (seconds at tens of thousands of events), so the page shows its
events at once and loads the chain's state after them (htmx, on load).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shipyard.server.common import in_thread
from shipyard.server.ui.render import bad_request, render

PERMISSION = "audit:read"
PAGE = 50
PAYLOAD_PREVIEW = 200
FILTERS = ("actor", "kind", "resource")
MAX_FILTER = 200


def _page(session: Any, filters: dict[str, str], before: int | None) -> tuple[list[Any], bool]:
    """The newest ``PAGE`` events matching ``filters`` with seq below ``before``, and whether more follow."""
    from sqlalchemy import or_, select

    from shipyard.store.tables import AuditEvent

    query = select(AuditEvent).order_by(AuditEvent.seq.desc()).limit(PAGE + 1)
    if before is not None:
        query = query.where(AuditEvent.seq < before)
    kind, resource, actor = filters.get("kind"), filters.get("resource"), filters.get("actor")
    if kind:
        query = query.where(AuditEvent.kind.startswith(kind, autoescape=True) if kind.endswith(".")
                            else AuditEvent.kind == kind)
    if resource:
        query = query.where(AuditEvent.subject.startswith(resource, autoescape=True))
    if actor:  # as ``shipyard.audit.events``: the principal, also through a token, or the token itself
        query = query.where(or_(AuditEvent.actor == actor, AuditEvent.actor.startswith(f"{actor} via ", autoescape=True),
                                AuditEvent.actor.endswith(f" via {actor}", autoescape=True)))
    rows = list(session.scalars(query))
    return rows[:PAGE], len(rows) > PAGE


def _event(e: Any) -> dict[str, Any]:
    try:
        payload = json.dumps(json.loads(e.payload), indent=1, sort_keys=True)
    except ValueError:
        payload = e.payload
    short = e.payload if len(e.payload) <= PAYLOAD_PREVIEW else e.payload[:PAYLOAD_PREVIEW] + "…"
    return {"seq": e.seq, "at": e.at.strftime("%Y-%m-%d %H:%M:%S"), "actor": e.actor,
            "principal": e.actor.split(" via ")[0], "kind": e.kind,
            "subject": e.subject, "short": short, "payload": payload, "long": len(e.payload) > PAYLOAD_PREVIEW}


def _read(ws: Any, filters: dict[str, str], before: int | None) -> dict[str, Any]:
    with ws.store.read() as session:
        rows, more = _page(session, filters, before)
        events = [_event(e) for e in rows]
    return {"events": events, "more": more, "next": events[-1]["seq"] if more and events else None}


def _chain(ws: Any) -> dict[str, Any]:
    from shipyard import audit

    with ws.store.read() as session:
        check = audit.verify(session)
    verified = check.events if check.ok else (check.seq or 1) - 1
    return {"ok": check.ok, "events": check.events, "verified": verified, "problem": check.problem, "seq": check.seq}


async def audit_page(request: Request) -> Response:
    """GET /audit: the events matching the URL's filters, a page at a time, and the chain's state."""
    filters = {name: request.query_params.get(name, "").strip() for name in FILTERS}
    for name, value in filters.items():
        if len(value) > MAX_FILTER:
            return bad_request(request, f"{name}: at most {MAX_FILTER} characters")
    raw = request.query_params.get("before", "")
    if raw and not raw.isdigit():
        return bad_request(request, f"before={raw!r}: expected an event number (seq), e.g. ?before=120")
    data = await in_thread(_read, request.app.state.workspace, filters, int(raw) if raw else None)
    kept = {name: value for name, value in filters.items() if value}
    data.update(filters=filters, before=int(raw) if raw else None,
                next_url=f"/audit?{urlencode({**kept, 'before': data['next']})}" if data["next"] else None,
                first_url=f"/audit?{urlencode(kept)}" if kept else "/audit")
    return render(request, "audit.html", data, nav="/audit")


async def chain_page(request: Request) -> Response:
    """GET /audit/chain: the chain's verification state (the audit page loads it after its events)."""
    chain = await in_thread(_chain, request.app.state.workspace)
    return render(request, "audit_chain_page.html", {"chain": chain}, nav="/audit", fragment="audit_chain.html")


routes = [Route("/audit", audit_page, methods=["GET"]), Route("/audit/chain", chain_page, methods=["GET"])]
permissions = {"/audit": PERMISSION, "/audit/chain": PERMISSION}
