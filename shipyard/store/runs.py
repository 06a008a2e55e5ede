"""Experiments and runs: tables and the repository functions every service uses to write them.

Times are integer milliseconds since the epoch (MLflow's convention, so its client sees what it
expects). Params are immutable: logging the same value again is fine, a different one is an error.
Metrics keep their full history; ``latest_metrics`` holds the newest value per key for fast search
and ordering. Batch functions are the primitive (STYLE.md E2).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.errors import InputError, NotFound
from shipyard.store.base import Base

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
DEFAULT_EXPERIMENT = "Default"


def now_ms() -> int:
    return int(time.time() * 1000)


class Experiment(Base):
    __tablename__ = "experiments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(500), unique=True)
    artifact_location: Mapped[str | None] = mapped_column(Text, nullable=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="active")
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    updated_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)


class ExperimentTag(Base):
    __tablename__ = "experiment_tags"
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Run(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"), index=True)
    name: Mapped[str | None] = mapped_column(String(250), nullable=True)
    status: Mapped[str] = mapped_column(String(20), default="RUNNING")
    start_time: Mapped[int] = mapped_column(BigInteger, default=now_ms, index=True)
    end_time: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    parent_run_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("runs.id"), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(50), default="api")
    user: Mapped[str | None] = mapped_column(String(200), nullable=True)
    host: Mapped[str | None] = mapped_column(String(200), nullable=True)
    git_commit: Mapped[str | None] = mapped_column(String(64), nullable=True)
    git_branch: Mapped[str | None] = mapped_column(String(250), nullable=True)
    git_dirty: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    lifecycle_stage: Mapped[str] = mapped_column(String(20), default="active")


class Param(Base):
    __tablename__ = "params"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Tag(Base):
    __tablename__ = "tags"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Metric(Base):
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)


class LatestMetric(Base):
    __tablename__ = "latest_metrics"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)


class DatasetInput(Base):
    __tablename__ = "dataset_inputs"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(500), primary_key=True)
    digest: Mapped[str] = mapped_column(String(100), primary_key=True)
    context: Mapped[str] = mapped_column(String(50), primary_key=True, default="")
    source: Mapped[str | None] = mapped_column(Text, nullable=True)
    source_type: Mapped[str | None] = mapped_column(String(50), nullable=True)
    schema: Mapped[str | None] = mapped_column(Text, nullable=True)
    profile: Mapped[str | None] = mapped_column(Text, nullable=True)


class Artifact(Base):
    __tablename__ = "artifacts"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    oid: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True)
class MetricValue:
    """One metric point as callers hand it in."""

    key: str
    value: float
    step: int = 0
    timestamp: int | None = None


def experiment_by_name(session: Session, name: str, *, create: bool = True) -> Experiment:
    """The experiment called ``name``, created on first use when ``create``."""
    found = session.scalar(select(Experiment).where(Experiment.name == name))
    if found is None:
        if not create:
            raise NotFound(f"experiment {name!r} does not exist")
        found = Experiment(name=name)
        session.add(found)
        session.flush()
    return found


def create_run(
    session: Session,
    *,
    experiment_id: int,
    run_id: str | None = None,
    name: str | None = None,
    parent_run_id: str | None = None,
    source: str = "api",
    user: str | None = None,
    host: str | None = None,
    git_commit: str | None = None,
    git_branch: str | None = None,
    git_dirty: bool | None = None,
    start_time: int | None = None,
    tags: Mapping[str, str] | None = None,
) -> Run:
    """Insert a RUNNING run (with its tags) and return it."""
    run = Run(
        id=run_id or uuid.uuid4().hex, experiment_id=experiment_id, name=name, status="RUNNING",
        start_time=start_time or now_ms(), parent_run_id=parent_run_id, source=source, user=user,
        host=host, git_commit=git_commit, git_branch=git_branch, git_dirty=git_dirty,
    )
    session.add(run)
    session.flush()
    if tags:
        set_tags(session, run.id, tags)
    return run


def get_run(session: Session, run_id: str) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise NotFound(f"run {run_id!r} does not exist", hint="list runs with 'shipyard runs list'")
    return run


def finish_run(session: Session, run_id: str, status: str = "FINISHED", end_time: int | None = None) -> Run:
    """Mark a run ended with ``status`` (FINISHED, FAILED or KILLED)."""
    if status not in RUN_STATUSES:
        raise InputError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    run = get_run(session, run_id)
    run.status = status
    run.end_time = end_time or now_ms()
    return run


def log_params(session: Session, run_id: str, params: Mapping[str, object]) -> None:
    """Record params; the same value again is fine, a different one raises InputError."""
    if not params:
        return
    values = {k: str(v) for k, v in params.items()}
    query = select(Param.key, Param.value).where(Param.run_id == run_id, Param.key.in_(list(values)))
    existing = {key: value for key, value in session.execute(query)}
    for key, value in values.items():
        if key in existing and existing[key] != value:
            raise InputError(
                f"param {key!r} of run {run_id} is already {existing[key]!r}; params cannot change (got {value!r})",
                hint="log a metric or a tag for values that change, or start a new run",
            )
    session.add_all(Param(run_id=run_id, key=k, value=v) for k, v in values.items() if k not in existing)


def set_tags(session: Session, run_id: str, tags: Mapping[str, object]) -> None:
    """Set (or overwrite) tags of a run."""
    for key, value in tags.items():
        session.merge(Tag(run_id=run_id, key=key, value=str(value)))


def log_metrics(session: Session, run_id: str, metrics: Sequence[MetricValue]) -> None:
    """Append metric points and keep ``latest_metrics`` current, in the caller's transaction."""
    if not metrics:
        return
    stamp = now_ms()
    rows = [{"run_id": run_id, "key": m.key, "value": float(m.value), "step": int(m.step),
             "timestamp": m.timestamp if m.timestamp is not None else stamp} for m in metrics]
    session.execute(Metric.__table__.insert(), rows)
    newest: dict[str, dict] = {}
    for row in rows:
        best = newest.get(row["key"])
        if best is None or (row["step"], row["timestamp"]) >= (best["step"], best["timestamp"]):
            newest[row["key"]] = row
    current = {
        lm.key: lm for lm in session.scalars(
            select(LatestMetric).where(LatestMetric.run_id == run_id, LatestMetric.key.in_(list(newest))))
    }
    for key, row in newest.items():
        known = current.get(key)
        if known is None:
            session.add(LatestMetric(run_id=run_id, key=key, value=row["value"], step=row["step"], timestamp=row["timestamp"]))
        elif (row["step"], row["timestamp"]) >= (known.step, known.timestamp):
            known.value, known.step, known.timestamp = row["value"], row["step"], row["timestamp"]


def log_artifacts(session: Session, run_id: str, artifacts: Iterable[tuple[str, str, int]]) -> None:
    """Record (path, object id, size) of files already put in the object store."""
    for path, oid, size in artifacts:
        session.merge(Artifact(run_id=run_id, path=path, oid=oid, size=size))
