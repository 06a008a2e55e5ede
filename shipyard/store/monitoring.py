"""Monitoring tables: windows over the request log, rule state, firings, retrain triggers, watch
state and notification deliveries, with their repository functions.

Times are float seconds since the epoch (UTC) so SQLite and PostgreSQL compare them alike; JSON
documents (metrics, actions, results, events) are stored as text.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import Float, Integer, String, Text, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.store.base import Base

TRIGGER_ACTIVE = ("pending", "running", "awaiting_approval")


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


class MonitorWindow(Base):
    """The metrics of one closed window of one model's request log."""

    __tablename__ = "monitor_windows"
    __table_args__ = (UniqueConstraint("model", "start", "end", name="uq_monitor_windows_model_start_end"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    kind: Mapped[str] = mapped_column(String(10))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    rows: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(10))
    metrics: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)

    @property
    def metrics_dict(self) -> dict[str, Any]:
        return json.loads(self.metrics)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "version": self.version, "kind": self.kind,
                "start": self.start, "end": self.end, "rows": self.rows, "verdict": self.verdict,
                "metrics": self.metrics_dict}


class RuleState(Base):
    """How many windows in a row a rule's condition has held, and when it last fired."""

    __tablename__ = "monitor_rule_state"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    rule: Mapped[str] = mapped_column(String(128), primary_key=True)
    streak: Mapped[int] = mapped_column(Integer, default=0)
    last_window_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_fired_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class Firing(Base):
    """One decision of the monitor's rule policy on a rule whose condition held."""

    __tablename__ = "monitor_firings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    rule: Mapped[str] = mapped_column(String(128))
    window_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(10))
    severity: Mapped[str] = mapped_column(String(10))
    actions: Mapped[str] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    fired: Mapped[str] = mapped_column(Text)
    metrics: Mapped[str] = mapped_column(Text)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "rule": self.rule, "window_id": self.window_id,
                "at": self.at, "status": self.status, "severity": self.severity,
                "actions": json.loads(self.actions), "reason": self.reason, "fired": json.loads(self.fired),
                "metrics": json.loads(self.metrics)}


class Trigger(Base):
    """A request to retrain one model (from a rule, new data, a schedule or a person) and its fate."""

    __tablename__ = "retrain_triggers"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    source: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(20), index=True)
    reason: Mapped[str] = mapped_column(Text)
    fired: Mapped[str] = mapped_column(Text)
    result: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    @property
    def result_dict(self) -> dict[str, Any]:
        return json.loads(self.result)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.model, "kind": self.kind, "source": self.source,
                "state": self.state, "reason": self.reason, "fired": json.loads(self.fired),
                "result": self.result_dict, "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at}


class WatchState(Base):
    """The last seen value of something a trigger watches (a path's hash, a dataset version, a clock)."""

    __tablename__ = "monitor_watch_state"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float)


class Delivery(Base):
    """One notification to one target: queued, delivered or failed (kept so nothing is lost)."""

    __tablename__ = "notify_deliveries"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_kind: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(10))
    status: Mapped[str] = mapped_column(String(10), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    http_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    event: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float, nullable=True)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "event_kind": self.event_kind, "target": self.target, "format": self.format,
                "status": self.status, "attempts": self.attempts, "http_status": self.http_status,
                "error": self.error, "event": json.loads(self.event), "created_at": self.created_at,
                "finished_at": self.finished_at}


# -- windows ----------------------------------------------------------------------------------------
def add_window(session: Session, *, model: str, version: int | None, kind: str, start: float, end: float,
               rows: int, verdict: str, metrics: dict[str, Any]) -> MonitorWindow:
    window = MonitorWindow(model=model, version=version, kind=kind, start=start, end=end, rows=rows,
                           verdict=verdict, metrics=_dumps(metrics), created_at=time.time())
    session.add(window)
    session.flush()
    return window


def last_window(session: Session, model: str) -> MonitorWindow | None:
    return session.scalars(select(MonitorWindow).where(MonitorWindow.model == model)
                           .order_by(MonitorWindow.end.desc(), MonitorWindow.id.desc()).limit(1)).first()


def windows(session: Session, model: str | None = None, limit: int = 100) -> list[MonitorWindow]:
    query = select(MonitorWindow).order_by(MonitorWindow.id.desc()).limit(limit)
    if model:
        query = query.where(MonitorWindow.model == model)
    return list(session.scalars(query))


# -- rule state and firings ---------------------------------------------------------------------------
def rule_state(session: Session, model: str, rule: str) -> RuleState:
    state = session.get(RuleState, (model, rule))
    if state is None:
        state = RuleState(model=model, rule=rule, streak=0, last_window_id=None, last_fired_at=None)
        session.add(state)
        session.flush()
    return state


def add_firing(session: Session, *, model: str, rule: str, window_id: int | None, at: float, status: str,
               severity: str, actions: list[str], reason: str, fired: list[str],
               metrics: dict[str, Any]) -> Firing:
    firing = Firing(model=model, rule=rule, window_id=window_id, at=at, status=status, severity=severity,
                    actions=_dumps(actions), reason=reason, fired=_dumps(fired), metrics=_dumps(metrics))
    session.add(firing)
    session.flush()
    return firing


def firings(session: Session, model: str | None = None, limit: int = 100) -> list[Firing]:
    query = select(Firing).order_by(Firing.id.desc()).limit(limit)
    if model:
        query = query.where(Firing.model == model)
    return list(session.scalars(query))


# -- triggers ---------------------------------------------------------------------------------------------
def add_trigger(session: Session, *, model: str, kind: str, source: str, state: str, reason: str,
                fired: list[str], result: dict[str, Any] | None = None) -> Trigger:
    trigger = Trigger(model=model, kind=kind, source=source, state=state, reason=reason, fired=_dumps(fired),
                      result=_dumps(result or {}), created_at=time.time())
    session.add(trigger)
    session.flush()
    return trigger


def update_trigger(session: Session, trigger_id: int, **changes: Any) -> Trigger:
    trigger = session.get(Trigger, trigger_id, with_for_update=True)
    if trigger is None:
        raise KeyError(trigger_id)
    for key, value in changes.items():
        setattr(trigger, key, _dumps(value) if key in ("result", "fired") else value)
    session.flush()
    return trigger


def active_triggers(session: Session, model: str) -> list[Trigger]:
    return list(session.scalars(select(Trigger).where(Trigger.model == model, Trigger.state.in_(TRIGGER_ACTIVE))
                                .order_by(Trigger.id)))


def triggers(session: Session, model: str | None = None, limit: int = 100) -> list[Trigger]:
    query = select(Trigger).order_by(Trigger.id.desc()).limit(limit)
    if model:
        query = query.where(Trigger.model == model)
    return list(session.scalars(query))


def last_trigger(session: Session, model: str, states: tuple[str, ...] | None = None) -> Trigger | None:
    query = select(Trigger).where(Trigger.model == model)
    if states:
        query = query.where(Trigger.state.in_(states))
    return session.scalars(query.order_by(Trigger.id.desc()).limit(1)).first()


# -- watch state --------------------------------------------------------------------------------------------
def get_watch(session: Session, model: str, key: str) -> str | None:
    row = session.get(WatchState, (model, key))
    return row.value if row else None


def set_watch(session: Session, model: str, key: str, value: str) -> None:
    row = session.get(WatchState, (model, key))
    if row is None:
        session.add(WatchState(model=model, key=key, value=value, updated_at=time.time()))
    else:
        row.value, row.updated_at = value, time.time()
    session.flush()


# -- notification deliveries -----------------------------------------------------------------------------------
def add_delivery(session: Session, *, event_kind: str, target: str, format: str, event: dict[str, Any],
                 status: str = "queued") -> Delivery:
    delivery = Delivery(event_kind=event_kind[:64], target=target, format=format, status=status, attempts=0,
                        event=_dumps(event), created_at=time.time())
    session.add(delivery)
    session.flush()
    return delivery


def finish_delivery(session: Session, delivery_id: int, *, status: str, attempts: int,
                    http_status: int | None, error: str | None) -> None:
    delivery = session.get(Delivery, delivery_id)
    if delivery is None:
        return
    delivery.status, delivery.attempts = status, delivery.attempts + attempts
    delivery.http_status, delivery.error, delivery.finished_at = http_status, error, time.time()
    session.flush()


def deliveries(session: Session, status: str | None = None, limit: int = 100) -> list[Delivery]:
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if status:
        query = query.where(Delivery.status == status)
    return list(session.scalars(query))
