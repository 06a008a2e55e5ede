"""MLflow 3 logged models: tables and repository functions.

A logged model (``m-<32 hex>``) belongs to an experiment, may name the run that produced it, and
owns a tree of artifact files (MLmodel, model.pkl, ...) kept in the object store by content id, as
run artifacts are. Params are write-once like a run's; tags are mutable. ``run_model_io`` links
runs to the models they read (``log-inputs``) and wrote (``log-outputs``). Times are epoch ms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    bindparam,
    delete,
    select,
    union_all,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.errors import NotFound
from shipyard.store.base import Base
from shipyard.store.runs import NAN, UNION_TEXTS, MetricValue, finite, now_ms, union_part

STATUSES = ("PENDING", "READY", "FAILED")


class LoggedModel(Base):
    __tablename__ = "logged_models"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    name: Mapped[str] = mapped_column(String(500))
    source_run_id: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20), default="PENDING")
    status_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    model_type: Mapped[str | None] = mapped_column(String(500), nullable=True)
    artifact_location: Mapped[str] = mapped_column(Text)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    __table_args__ = (Index("ix_logged_models_experiment_id_name", "experiment_id", "name"),)


class LoggedModelTag(Base):
    __tablename__ = "logged_model_tags"
    model_id: Mapped[str] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LoggedModelParam(Base):
    __tablename__ = "logged_model_params"
    model_id: Mapped[str] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LoggedModelArtifact(Base):
    __tablename__ = "logged_model_artifacts"
    model_id: Mapped[str] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    oid: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)


class LoggedModelMetric(Base):
    """A metric point logged against a model (MLflow 3 ``log_metric(..., model_id=...)``)."""

    __tablename__ = "logged_model_metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("logged_models.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str | None] = mapped_column(String(32), nullable=True)
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Float)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    dataset_name: Mapped[str | None] = mapped_column(String(500), nullable=True)
    dataset_digest: Mapped[str | None] = mapped_column(String(36), nullable=True)


class RunModelIO(Base):
    """A model a run read (direction ``input``) or wrote (``output``), with the step it happened at."""

    __tablename__ = "run_model_io"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    model_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    direction: Mapped[str] = mapped_column(String(10), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, default=0)


def get(session: Session, model_id: str, *, allow_deleted: bool = False) -> LoggedModel:
    """The logged model ``model_id``; NotFound (MLflow's wording) when unknown or deleted."""
    return _found(session.get(LoggedModel, model_id) if len(model_id) <= 40 else None, model_id, allow_deleted)


def _found(found: Any, model_id: str, allow_deleted: bool) -> Any:
    """``found`` (an ORM object or a Core row); NotFound (MLflow's wording) when it is None or deleted."""
    if found is None or (found.lifecycle_stage == "deleted" and not allow_deleted):
        raise NotFound(f"Logged model with ID '{model_id[:60]}' not found.",
                       hint="list logged models with MlflowClient().search_logged_models([experiment_id])")
    return found


@cache
def _model_data_query() -> Any:
    """Tags, params and metric points of some logged models as one UNION ALL, built once."""
    ids = bindparam("ids", expanding=True)
    t, p, m = LoggedModelTag, LoggedModelParam, LoggedModelMetric
    return union_all(
        union_part(0, t.model_id, [t.key, t.value]).where(t.model_id.in_(ids)),
        union_part(1, p.model_id, [p.key, p.value]).where(p.model_id.in_(ids)),
        union_part(2, m.model_id, [m.key, m.run_id, m.dataset_name, m.dataset_digest], m.value, m.step, m.timestamp,
                   m.is_nan).where(m.model_id.in_(ids)),
    )


def model_data(session: Session, model_ids: Sequence[str]) -> tuple[dict[str, dict[str, str]],
                                                                   dict[str, dict[str, str]],
                                                                   dict[str, list[MetricValue]]]:
    """(tags, params, metric points in (key, step, timestamp) order) of each model, in one query."""
    tags: dict[str, dict[str, str]] = {m: {} for m in model_ids}
    params: dict[str, dict[str, str]] = {m: {} for m in model_ids}
    metrics: dict[str, list[MetricValue]] = {m: [] for m in model_ids}
    if not model_ids:
        return tags, params, metrics
    for row in session.connection().execute(_model_data_query(), {"ids": list(model_ids)}):
        kind, owner, t = row[0], row[1], row[2:2 + UNION_TEXTS]
        value, step, timestamp, is_nan = row[2 + UNION_TEXTS:]
        if kind == 0:
            tags[owner][t[0]] = t[1]
        elif kind == 1:
            params[owner][t[0]] = t[1]
        else:
            metrics[owner].append(MetricValue(t[0], NAN if is_nan else value, step, timestamp, model_id=owner,
                                              dataset_name=t[2], dataset_digest=t[3], run_id=t[1]))
    for points in metrics.values():
        points.sort(key=lambda p: (p.key, p.step, p.timestamp))
    return tags, params, metrics


_ROW = select(LoggedModel.__table__).where(LoggedModel.id == bindparam("model"))


def get_row(session: Session, model_id: str, *, allow_deleted: bool = False) -> Any:
    """``get`` for readers: the model's row as a plain Core row (same attribute names, no ORM
    identity map: a third of the cost of ``Session.get``); NotFound as ``get`` says it."""
    return _found(session.connection().execute(_ROW, {"model": model_id}).first() if len(model_id) <= 40 else None,
                  model_id, allow_deleted)


def set_tags(session: Session, model_id: str, tags: Mapping[str, str]) -> None:
    """Set or overwrite tags (one upsert)."""
    if tags:
        conn = session.connection()
        conn.execute(_upsert(conn.dialect.name, LoggedModelTag.__tablename__),
                     [{"model_id": model_id, "key": k, "value": v} for k, v in tags.items()])


def delete_tag(session: Session, model_id: str, key: str) -> None:
    result = session.execute(delete(LoggedModelTag).where(LoggedModelTag.model_id == model_id,
                                                          LoggedModelTag.key == key))
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"No tag with key '{key}' found for logged model with ID '{model_id}'.")


def log_params(session: Session, model_id: str, params: Mapping[str, str]) -> None:
    """Add params; the same value again is fine, a new value for a key overwrites nothing."""
    if not params:
        return
    existing = set(session.scalars(select(LoggedModelParam.key).where(
        LoggedModelParam.model_id == model_id, LoggedModelParam.key.in_(list(params)))))
    fresh = [{"model_id": model_id, "key": k, "value": v} for k, v in params.items() if k not in existing]
    if fresh:
        session.execute(LoggedModelParam.__table__.insert(), fresh)


@cache
def _upsert(dialect: str, table_name: str) -> Any:
    """INSERT ... ON CONFLICT (primary key) DO UPDATE (the other columns) of one of this module's
    tables, built once per dialect (building it costs more than running it)."""
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = Base.metadata.tables[table_name]
    stmt = insert(table)
    keys = [c for c in table.c if c.primary_key]
    return stmt.on_conflict_do_update(index_elements=keys,
                                      set_={c.name: stmt.excluded[c.name] for c in table.c if not c.primary_key})


_TOUCH = LoggedModel.__table__.update().where(LoggedModel.id == bindparam("model")).values(updated_at=bindparam("at"))


def record_artifacts(session: Session, model_id: str, files: Iterable[tuple[str, str, int]]) -> None:
    """Record (path, object id, size) of files already in the object store: one upsert (a file
    uploaded again replaces its row) and the model's update time."""
    rows = [{"model_id": model_id, "path": path, "oid": oid, "size": size} for path, oid, size in files]
    conn = session.connection()
    if rows:
        conn.execute(_upsert(conn.dialect.name, LoggedModelArtifact.__tablename__), rows)
    conn.execute(_TOUCH, {"model": model_id, "at": now_ms()})


_ARTIFACT_OID = select(LoggedModelArtifact.oid).where(LoggedModelArtifact.model_id == bindparam("model"),
                                                     LoggedModelArtifact.path == bindparam("path"))


def artifact_oid(session: Session, model_id: str, path: str) -> str | None:
    """The object id of one file of a logged model, or None (one Core read: the hot path of downloads)."""
    return session.connection().execute(_ARTIFACT_OID, {"model": model_id, "path": path}).scalar()


def artifacts_of(session: Session, model_id: str) -> list[tuple[str, str, int]]:
    """Every (path, object id, size) of a logged model, by path."""
    query = select(LoggedModelArtifact.path, LoggedModelArtifact.oid, LoggedModelArtifact.size)
    return [tuple(r) for r in session.execute(  # type: ignore[misc]
        query.where(LoggedModelArtifact.model_id == model_id).order_by(LoggedModelArtifact.path))]


def link_runs(session: Session, run_id: str, model_steps: Iterable[tuple[str, int]], direction: str) -> None:
    """Record that a run read or wrote models (one upsert: linking again keeps the newest step)."""
    rows = [{"run_id": run_id, "model_id": m, "direction": direction, "step": step} for m, step in model_steps]
    if rows:
        conn = session.connection()
        conn.execute(_upsert(conn.dialect.name, RunModelIO.__tablename__), rows)


def run_models(session: Session, run_ids: Sequence[str]) -> dict[str, dict[str, list[tuple[str, int]]]]:
    """For each run, {"input": [(model id, step)], "output": [...]}."""
    out: dict[str, dict[str, list[tuple[str, int]]]] = {r: {"input": [], "output": []} for r in run_ids}
    if run_ids:
        query = select(RunModelIO.run_id, RunModelIO.model_id, RunModelIO.direction, RunModelIO.step)
        for rid, mid, direction, step in session.execute(query.where(RunModelIO.run_id.in_(list(run_ids)))
                                                         .order_by(RunModelIO.model_id)):
            out[rid][direction].append((mid, step))
    return out


def log_metrics(session: Session, run_id: str, metrics: Sequence[MetricValue]) -> None:
    """Record points that name a model (``model_id``) against that model; exact repeats are skipped."""
    points = [m for m in metrics if m.model_id]
    if not points:
        return
    for model_id in {m.model_id for m in points}:
        get(session, model_id)  # type: ignore[arg-type]
    query = select(LoggedModelMetric.model_id, LoggedModelMetric.key, LoggedModelMetric.step,
                   LoggedModelMetric.timestamp).where(LoggedModelMetric.model_id.in_({m.model_id for m in points}))
    seen = {tuple(row) for row in session.execute(query)}
    rows = []
    for m in points:
        ident = (m.model_id, m.key, m.step, m.timestamp)
        if ident in seen:
            continue
        seen.add(ident)
        rows.append({"model_id": m.model_id, "run_id": run_id, "key": m.key, "is_nan": m.value != m.value,
                     "value": 0.0 if m.value != m.value else finite(m.value), "step": m.step,
                     "timestamp": m.timestamp if m.timestamp is not None else now_ms(),
                     "dataset_name": m.dataset_name, "dataset_digest": m.dataset_digest})
    if rows:
        session.execute(LoggedModelMetric.__table__.insert(), rows)
