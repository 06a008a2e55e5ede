"""Gateway routing tables, deployments (rollout state) and rollout decisions.

The routing table of each served model is a JSON document (see ``shipyard.serving.routing``) with a
global revision counter: every change bumps ``serving_revision`` in the same transaction, so a
gateway replica polls one integer and reloads only when it moved. Deployments hold the persisted
state of a rollout; decisions are the policy's verdicts, each written with its audit event.
Times are float seconds since the epoch (UTC) so SQLite and PostgreSQL compare them alike.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.store.base import Base

ACTIVE_STATES = ("running", "paused")


class ServingRevision(Base):
    """One row (id 1): the revision every routing change increments."""

    __tablename__ = "serving_revision"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    revision: Mapped[int] = mapped_column(BigInteger)


class ServingRoute(Base):
    """The routing table of one model, as JSON."""

    __tablename__ = "serving_routes"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)
    routing: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)


class Deployment(Base):
    """A rollout of one candidate version against the champion."""

    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    candidate: Mapped[int] = mapped_column(Integer)
    champion: Mapped[int | None] = mapped_column(Integer, nullable=True)
    strategy: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20), index=True)
    step: Mapped[int] = mapped_column(Integer)
    settings: Mapped[str] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    successes: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    @property
    def settings_dict(self) -> dict[str, Any]:
        return json.loads(self.settings)


class RolloutDecision(Base):
    """One verdict of the rollout policy on a proposed transition."""

    __tablename__ = "rollout_decisions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id", ondelete="CASCADE"), index=True)
    at: Mapped[float] = mapped_column(Float)
    from_state: Mapped[str] = mapped_column(String(40))
    to_state: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(Text)
    fired: Mapped[str] = mapped_column(Text)
    metrics: Mapped[str] = mapped_column(Text)
    cause: Mapped[str] = mapped_column(String(20))


class ServingLease(Base):
    """Who runs a singleton job (the rollout controller) until when."""

    __tablename__ = "serving_leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    until: Mapped[float] = mapped_column(Float)


# --- routing tables ---------------------------------------------------------------------------

def current_revision(session: Session) -> int:
    """The routing revision (0 before the first routing change). One indexed read."""
    return session.scalar(select(ServingRevision.revision).where(ServingRevision.id == 1)) or 0


def routing_tables(session: Session, models: Iterable[str] | None = None) -> dict[str, dict[str, Any]]:
    """The routing tables of all models (or of ``models``), by model name."""
    query = select(ServingRoute.model, ServingRoute.routing)
    if models is not None:
        query = query.where(ServingRoute.model.in_(list(models)))
    return {name: json.loads(body) for name, body in session.execute(query)}


def put_routing(session: Session, tables: dict[str, dict[str, Any]]) -> int:
    """Write the routing tables of several models and bump the revision once; returns it."""
    row = session.get(ServingRevision, 1, with_for_update=True)
    if row is None:
        row = ServingRevision(id=1, revision=0)
        session.add(row)
    row.revision += 1
    now = time.time()
    existing = {r.model: r for r in session.scalars(select(ServingRoute).where(ServingRoute.model.in_(list(tables))))}
    for model, table in tables.items():
        body = json.dumps(table, sort_keys=True)
        if model in existing:
            existing[model].routing, existing[model].revision, existing[model].updated_at = body, row.revision, now
        else:
            session.add(ServingRoute(model=model, revision=row.revision, routing=body, updated_at=now))
    session.flush()
    return row.revision


# --- deployments ------------------------------------------------------------------------------

def create_deployment(session: Session, *, model: str, candidate: int, champion: int | None, strategy: str,
                      state: str, step: int, settings: dict[str, Any], now: float | None = None) -> Deployment:
    now = time.time() if now is None else now
    row = Deployment(model=model, candidate=candidate, champion=champion, strategy=strategy, state=state, step=step,
                     settings=json.dumps(settings, sort_keys=True), failures=0, successes=0,
                     window_started_at=now, created_at=now, updated_at=now)
    session.add(row)
    session.flush()
    return row


def get_deployments(session: Session, ids: Iterable[int]) -> dict[int, Deployment]:
    """Deployments by id (missing ids are absent from the result)."""
    wanted = list(ids)
    if not wanted:
        return {}
    return {d.id: d for d in session.scalars(select(Deployment).where(Deployment.id.in_(wanted)))}


def active_deployments(session: Session, model: str | None = None) -> list[Deployment]:
    """Running or paused deployments, oldest first."""
    query = select(Deployment).where(Deployment.state.in_(ACTIVE_STATES)).order_by(Deployment.id)
    if model is not None:
        query = query.where(Deployment.model == model)
    return list(session.scalars(query))


def latest_deployments(session: Session, model: str | None = None, limit: int = 20) -> list[Deployment]:
    """The newest deployments (any state), newest first."""
    query = select(Deployment).order_by(Deployment.id.desc()).limit(limit)
    if model is not None:
        query = query.where(Deployment.model == model)
    return list(session.scalars(query))


def lock_deployment(session: Session, deployment_id: int) -> Deployment | None:
    """Re-read a deployment inside a write transaction (row lock on PostgreSQL)."""
    return session.get(Deployment, deployment_id, with_for_update=True, populate_existing=True)


# --- decisions --------------------------------------------------------------------------------

def add_decisions(session: Session, rows: Iterable[dict[str, Any]]) -> list[RolloutDecision]:
    """Store policy decisions (keys: deployment_id, from_state, to_state, status, reason, fired,
    metrics, cause, at)."""
    out = []
    for r in rows:
        decision = RolloutDecision(
            deployment_id=r["deployment_id"], at=r.get("at", time.time()), from_state=r["from_state"],
            to_state=r["to_state"], status=r["status"], reason=r["reason"], fired=json.dumps(list(r["fired"])),
            metrics=json.dumps(r.get("metrics", {}), sort_keys=True, default=str), cause=r["cause"])
        session.add(decision)
        out.append(decision)
    session.flush()
    return out


def decisions(session: Session, deployment_ids: Iterable[int], limit: int = 200) -> list[RolloutDecision]:
    """The decisions of deployments, oldest first."""
    query = (select(RolloutDecision).where(RolloutDecision.deployment_id.in_(list(deployment_ids)))
             .order_by(RolloutDecision.id.desc()).limit(limit))
    return list(reversed(list(session.scalars(query))))


# --- leases -----------------------------------------------------------------------------------

def acquire_lease(session: Session, name: str, owner: str, ttl: float, now: float | None = None) -> bool:
    """Take or renew the lease ``name`` for ``owner``; False while another owner holds it."""
    now = time.time() if now is None else now
    row = session.get(ServingLease, name, with_for_update=True)
    if row is None:
        session.add(ServingLease(name=name, owner=owner, until=now + ttl))
        session.flush()
        return True
    if row.owner == owner or row.until < now:
        session.execute(update(ServingLease).where(ServingLease.name == name).values(owner=owner, until=now + ttl))
        return True
    return False
