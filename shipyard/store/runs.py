"""Experiments and runs: tables and the repository functions every service uses to write them.

Times are integer milliseconds since the epoch (MLflow's convention, so its client sees what it
expects). Params are immutable: logging the same value again is fine, a different one is an error.
Metrics keep their full history; ``latest_metrics`` holds the newest value per key for fast search
and ordering. Batch functions are the primitive (STYLE.md E2).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    and_,
    bindparam,
    case,
    cast,
    delete,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.errors import InputError, NotFound
from shipyard.store.base import Base
from shipyard.store.lite import DEFAULT_EXPERIMENT, finite, now_ms  # defined without SQLAlchemy

RUN_STATUSES = ("RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED")
NAN = float("nan")


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
    __table_args__ = (Index("ix_runs_experiment_id_start_time", "experiment_id", "start_time"),)


class Param(Base):
    __tablename__ = "params"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_params_key", "key"),)


class Tag(Base):
    __tablename__ = "tags"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    __table_args__ = (Index("ix_tags_key", "key"),)


class Metric(Base):
    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger, default=0)
    timestamp: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    # SQLite turns a REAL NaN into NULL: a NaN point is stored as value 0 with is_nan (MLflow's way).
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)


class LatestMetric(Base):
    __tablename__ = "latest_metrics"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    is_nan: Mapped[bool] = mapped_column(Boolean, default=False)
    # how many points the history holds: every write that adds points changes it (none is ever
    # removed alone), so it stamps what was derived from the history (MetricEnvelope)
    points: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    __table_args__ = (Index("ix_latest_metrics_key_value", "key", "value"),)


class MetricEnvelope(Base):
    """A long history's chart envelope (``run_views.metric_envelope``) kept for the next view.

    Valid while ``points`` equals its history's ``LatestMetric.points``: a reader compares them in
    one snapshot, so a write between a computation and its storing only leaves a stale row that is
    never used (and is replaced by the next computation). ``xs``/``ys`` are JSON lists.
    """

    __tablename__ = "metric_envelopes"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    limit: Mapped[int] = mapped_column("points_limit", Integer, primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)
    xs: Mapped[str] = mapped_column(Text)
    ys: Mapped[str] = mapped_column(Text)


class IngestBatch(Base):
    """Ids of batches already written, so a client retrying after a dropped connection is idempotent."""

    __tablename__ = "ingest_batches"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    created_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)


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
    tags: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON [{key, value}], MLflow's input tags


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
    # MLflow 3: a point may name the logged model and the dataset it measures.
    model_id: str | None = None
    dataset_name: str | None = None
    dataset_digest: str | None = None
    run_id: str | None = None


def experiment_by_name(session: Session, name: str, *, create: bool = True) -> Experiment:
    """The experiment called ``name``, created on first use when ``create``."""
    found = session.scalar(select(Experiment).where(Experiment.name == name))
    if found is None:
        if not create:
            raise NotFound(f"experiment {name!r} does not exist")
        # MLflow's client means the default experiment when it says "0"; give it that id when free.
        zero_free = name == DEFAULT_EXPERIMENT and session.get(Experiment, 0) is None
        found = Experiment(name=name, id=0) if zero_free else Experiment(name=name)
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
    return _found(session.get(Run, run_id), run_id)


def _found(run: Any, run_id: str) -> Any:
    """``run`` (an ORM object or a Core row); NotFound naming ``run_id`` when it is None."""
    if run is None:
        raise NotFound(f"Run with id={run_id} not found", hint="list runs with 'shipyard runs list'")
    return run


_RUN_ROW = select(Run.__table__).where(Run.id == bindparam("run_id"))


def run_row(session: Session, run_id: str) -> Any:
    """``get_run`` for readers: the run as a plain Core row (the same attribute names, without the
    ORM's identity map, which costs more than the query); NotFound when unknown."""
    return _found(session.connection().execute(_RUN_ROW, {"run_id": run_id}).first(), run_id)


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
                f"Changing param values is not allowed. Param with key='{key}' was already logged with "
                f"value='{existing[key]}' for run ID='{run_id}'. Attempted logging new value '{value}'.",
                hint="params cannot change: log a metric or a tag for values that change, or start a new run",
            )
    fresh = [{"run_id": run_id, "key": k, "value": v} for k, v in values.items() if k not in existing]
    if fresh:
        session.execute(Param.__table__.insert(), fresh)


def set_tags(session: Session, run_id: str, tags: Mapping[str, object]) -> None:
    """Set (or overwrite) tags of a run: one read, one bulk insert, an update per changed key."""
    if not tags:
        return
    values = {k: str(v) for k, v in tags.items()}
    query = select(Tag.key, Tag.value).where(Tag.run_id == run_id, Tag.key.in_(list(values)))
    existing = {key: value for key, value in session.execute(query)}
    fresh = [{"run_id": run_id, "key": k, "value": v} for k, v in values.items() if k not in existing]
    if fresh:
        session.execute(Tag.__table__.insert(), fresh)
    for key, value in values.items():
        if key in existing and existing[key] != value:
            session.execute(update(Tag).where(Tag.run_id == run_id, Tag.key == key).values(value=value))


@cache
def _latest_upsert(dialect: str):  # type: ignore[no-untyped-def]
    """The upsert of ``latest_metrics`` for a dialect, built once (building it costs more than running it).

    It replaces a stored point only with a newer (step, timestamp) and adds the batch's points to
    the history's count; SQLite and PostgreSQL both have INSERT ... ON CONFLICT.
    """
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    table = LatestMetric.__table__
    stmt = insert(table)
    newer = or_(stmt.excluded.step > table.c.step,
                and_(stmt.excluded.step == table.c.step, stmt.excluded.timestamp >= table.c.timestamp))

    def newest(column: str) -> Any:
        return case((newer, stmt.excluded[column]), else_=table.c[column])

    return stmt.on_conflict_do_update(
        index_elements=[table.c.run_id, table.c.key],
        set_={"value": newest("value"), "step": newest("step"), "timestamp": newest("timestamp"),
              "is_nan": newest("is_nan"), "points": table.c.points + stmt.excluded.points},
    )


_METRIC_INSERT = Metric.__table__.insert()
_RUN_STAGE = select(Run.lifecycle_stage).where(Run.id == bindparam("run_id"))
# Stored points at some keys and steps of a run (exact repeats are skipped); built once, like the upsert.
_STORED_POINTS = select(Metric.key, Metric.step, Metric.timestamp, Metric.value, Metric.is_nan).where(
    Metric.run_id == bindparam("run_id"), Metric.key.in_(bindparam("keys", expanding=True)),
    Metric.step.in_(bindparam("steps", expanding=True)))


def log_metrics(session: Session, run_id: str, metrics: Sequence[MetricValue]) -> None:
    """Append metric points and keep ``latest_metrics`` current, in the caller's transaction.

    Three statements whatever the batch size: one read of stored points at the batch's keys and
    steps (exact repeats are skipped, as MLflow does), one multi-row insert into the history, one
    upsert of the newest point per key (it only replaces a stored point with a newer (step, timestamp)).
    """
    if not metrics:
        return
    stamp = now_ms()
    rows = [{"run_id": run_id, "key": m.key, "value": 0.0 if m.value != m.value else finite(m.value),
             "step": int(m.step), "timestamp": m.timestamp if m.timestamp is not None else stamp,
             "is_nan": m.value != m.value} for m in metrics]
    conn = session.connection()  # Core statements on the connection: the ORM layer adds nothing here
    rows = _without_repeats(conn, run_id, rows)
    if not rows:
        return
    conn.execute(_METRIC_INSERT, rows)
    newest: dict[str, dict] = {}
    added: dict[str, int] = {}
    for row in rows:
        added[row["key"]] = added.get(row["key"], 0) + 1
        best = newest.get(row["key"])
        if best is None or (row["step"], row["timestamp"]) >= (best["step"], best["timestamp"]):
            newest[row["key"]] = row
    conn.execute(_latest_upsert(conn.dialect.name), [{**row, "points": added[key]} for key, row in newest.items()])


def _without_repeats(conn: Connection, run_id: str, rows: list[dict]) -> list[dict]:
    """Rows that are not exact repeats (key, step, timestamp, value) of stored points or of each other.

    MLflow's metric key is (key, timestamp, step, value, is_nan), so logging the same point twice
    (its client does, when ``log_model`` copies the run's metrics to the model) stores it once.
    """
    unique = list({_ident(r): r for r in rows}.values())
    params = {"run_id": run_id, "keys": list({r["key"] for r in unique}), "steps": list({r["step"] for r in unique})}
    stored = {tuple(row) for row in conn.execute(_STORED_POINTS, params)}
    return [r for r in unique if _ident(r) not in stored] if stored else unique


def _ident(row: dict) -> tuple:
    return row["key"], row["step"], row["timestamp"], row["value"], row["is_nan"]


def log_artifacts(session: Session, run_id: str, artifacts: Iterable[tuple[str, str, int]]) -> None:
    """Record (path, object id, size) of files already put in the object store."""
    for path, oid, size in artifacts:
        session.merge(Artifact(run_id=run_id, path=path, oid=oid, size=size))


def claim_batch(session: Session, batch_id: str, run_id: str) -> bool:
    """Record ``batch_id`` in this transaction; False when it was already written (a retry)."""
    if session.get(IngestBatch, batch_id) is not None:
        return False
    session.execute(IngestBatch.__table__.insert(), [{"id": batch_id, "run_id": run_id, "created_at": now_ms()}])
    return True


def delete_tag(session: Session, run_id: str, key: str) -> None:
    """Remove one tag; NotFound when the run has no such tag."""
    result = session.execute(delete(Tag).where(Tag.run_id == run_id, Tag.key == key))
    if not result.rowcount:
        raise NotFound(f"No tag with name: {key} in run with id {run_id}")


def update_run(session: Session, run_id: str, *, status: str | None = None, end_time: int | None = None,
               name: str | None = None, lifecycle_stage: str | None = None) -> Run:
    """Change a run's status, end time, name or lifecycle stage (active/deleted)."""
    run = get_run(session, run_id)
    if status is not None:
        if status not in RUN_STATUSES:
            raise InputError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
        run.status = status
    if end_time is not None:
        run.end_time = end_time
    if name is not None:
        run.name = name
    if lifecycle_stage is not None:
        run.lifecycle_stage = lifecycle_stage
    return run


def resolve_experiment_id(session: Session, experiment_id: int, *, create: bool = True) -> int:
    """``experiment_id``, except that 0 (MLflow's default experiment) means the one named Default."""
    if experiment_id != 0 or session.get(Experiment, 0) is not None:
        return experiment_id
    try:
        return experiment_by_name(session, DEFAULT_EXPERIMENT, create=create).id
    except NotFound:
        return experiment_id


def get_experiment(session: Session, experiment_id: int) -> Experiment:
    found = session.get(Experiment, resolve_experiment_id(session, experiment_id, create=False))
    if found is None:
        raise NotFound(f"No Experiment with id={experiment_id} exists",
                       hint="list experiments with 'shipyard runs list --json'")
    return found


def experiment_tags(session: Session, experiment_ids: Sequence[int]) -> dict[int, dict[str, str]]:
    out: dict[int, dict[str, str]] = {i: {} for i in experiment_ids}
    if experiment_ids:
        rows = session.execute(select(ExperimentTag.experiment_id, ExperimentTag.key, ExperimentTag.value)
                               .where(ExperimentTag.experiment_id.in_(list(experiment_ids))))
        for eid, key, value in rows:
            out[eid][key] = value
    return out


def set_experiment_tags(session: Session, experiment_id: int, tags: Mapping[str, str]) -> None:
    for key, value in tags.items():
        session.merge(ExperimentTag(experiment_id=experiment_id, key=key, value=str(value)))


def log_inputs(session: Session, run_id: str, inputs: Iterable[Mapping[str, str | None]]) -> None:
    """Record dataset inputs (name, digest, context, source, source_type, schema, profile)."""
    for item in inputs:
        session.merge(DatasetInput(
            run_id=run_id, name=item["name"], digest=item["digest"], context=item.get("context") or "",
            source=item.get("source"), source_type=item.get("source_type"), schema=item.get("schema"),
            profile=item.get("profile"), tags=item.get("tags"),
        ))


def metric_history(session: Session, run_id: str, key: str) -> list[tuple[float, int, int]]:
    """Every (value, step, timestamp) of one metric of a run, in logging order."""
    query = (select(Metric.value, Metric.step, Metric.timestamp, Metric.is_nan)
             .where(Metric.run_id == run_id, Metric.key == key).order_by(Metric.step, Metric.id))
    return [(NAN if is_nan else value, step, ts) for value, step, ts, is_nan in session.execute(query)]


@dataclass
class RunData:
    """Params, newest metrics (value, step, timestamp), tags, inputs and artifacts of one run."""

    params: dict[str, str]
    metrics: dict[str, tuple[float, int, int]]
    tags: dict[str, str]
    inputs: list[dict[str, Any]]
    artifacts: list[tuple[str, str, int]]


UNION_TEXTS = 8  # text columns of union_part rows: the widest (a run's dataset input) has eight


def union_part(kind: int, owner: Any, texts: Sequence[Any] = (), number: Any = None, step: Any = None,
               timestamp: Any = None, flag: Any = None) -> Any:
    """One table's rows in a union of differently shaped tables (``run_data``, ``logged_models.model_data``):
    kind, owner id, 8 texts, a float, 2 ints, a flag; NULL (typed, as PostgreSQL needs) where it has none."""
    padded = [*texts, *[null()] * (UNION_TEXTS - len(texts))]
    return select(literal_column(str(kind), Integer).label("kind"), owner.label("owner"),
                  *[cast(t, Text).label(f"t{i}") for i, t in enumerate(padded)],
                  cast(number if number is not None else null(), Float).label("number"),
                  cast(step if step is not None else null(), BigInteger).label("step"),
                  cast(timestamp if timestamp is not None else null(), BigInteger).label("timestamp"),
                  cast(flag if flag is not None else null(), Boolean).label("flag"))


@cache
def _run_data_query(with_files: bool) -> Any:
    """Params, tags, newest metrics (and dataset inputs and artifacts) of some runs as one UNION ALL:
    one statement instead of one per table, built once (building it costs more than running it)."""
    ids = bindparam("ids", expanding=True)
    d = DatasetInput
    parts = [
        union_part(0, Param.run_id, [Param.key, Param.value]).where(Param.run_id.in_(ids)),
        union_part(1, Tag.run_id, [Tag.key, Tag.value]).where(Tag.run_id.in_(ids)),
        union_part(2, LatestMetric.run_id, [LatestMetric.key], LatestMetric.value, LatestMetric.step,
                   LatestMetric.timestamp, LatestMetric.is_nan).where(LatestMetric.run_id.in_(ids)),
    ]
    if with_files:
        parts.append(union_part(3, d.run_id, [d.name, d.digest, d.context, d.source, d.source_type, d.schema,
                                              d.profile, d.tags]).where(d.run_id.in_(ids)))
        parts.append(union_part(4, Artifact.run_id, [Artifact.path, Artifact.oid], step=Artifact.size)
                     .where(Artifact.run_id.in_(ids)))
    return union_all(*parts)


def run_data(session: Session, run_ids: Sequence[str], *, with_files: bool = True) -> dict[str, RunData]:
    """The data of many runs in one query per 500 runs (a UNION ALL over their tables)."""
    out = {rid: RunData({}, {}, {}, [], []) for rid in run_ids}
    if not run_ids:
        return out
    ids = list(run_ids)
    conn = session.connection()  # Core on the connection: the ORM layer adds nothing to plain rows
    for start in range(0, len(ids), 500):
        rows = conn.execute(_run_data_query(with_files), {"ids": ids[start:start + 500]})
        for row in rows:
            kind, data, t = row[0], out[row[1]], row[2:2 + UNION_TEXTS]
            number, step, ts, flag = row[2 + UNION_TEXTS:]
            if kind == 0:
                data.params[t[0]] = t[1]
            elif kind == 1:
                data.tags[t[0]] = t[1]
            elif kind == 2:
                data.metrics[t[0]] = (NAN if flag else number, step, ts)
            elif kind == 3:
                data.inputs.append({"name": t[0], "digest": t[1], "context": t[2], "source": t[3],
                                    "source_type": t[4], "schema": t[5], "profile": t[6],
                                    "tags": json.loads(t[7]) if t[7] else None})
            else:
                data.artifacts.append((t[0], t[1], step))
    for data in out.values():
        data.artifacts.sort()
    return out


def merged_latest_metrics(session: Session, run_ids: Sequence[str]) -> dict[str, float]:
    """The latest value of each metric over ``run_ids``, the first run that has a key winning
    (a run before its child runs); a NaN point comes back as NaN, not as its stored 0."""
    by_run: dict[str, dict[str, float]] = {}
    query = select(LatestMetric.run_id, LatestMetric.key, LatestMetric.value, LatestMetric.is_nan)
    for rid, key, value, is_nan in session.execute(query.where(LatestMetric.run_id.in_(list(run_ids)))):
        by_run.setdefault(rid, {})[key] = NAN if is_nan else value
    out: dict[str, float] = {}
    for rid in reversed(run_ids):
        out.update(by_run.get(rid, {}))
    return out


def insert_run(session: Session, *, experiment_id: int, run_id: str | None = None, name: str | None = None,
               parent_run_id: str | None = None, source: str = "api", user: str | None = None,
               host: str | None = None, git_commit: str | None = None, git_branch: str | None = None,
               git_dirty: bool | None = None, start_time: int | None = None,
               tags: Mapping[str, str] | None = None) -> str:
    """``create_run`` in plain INSERTs (no ORM object): the tracking API's hot path. Returns the id."""
    new_id = run_id or uuid.uuid4().hex
    session.execute(Run.__table__.insert(), [{
        "id": new_id, "experiment_id": experiment_id, "name": name, "status": "RUNNING",
        "start_time": start_time or now_ms(), "end_time": None, "parent_run_id": parent_run_id, "source": source,
        "user": user, "host": host, "git_commit": git_commit, "git_branch": git_branch, "git_dirty": git_dirty,
        "lifecycle_stage": "active",
    }])
    if tags:
        session.execute(Tag.__table__.insert(), [{"run_id": new_id, "key": k, "value": str(v)} for k, v in tags.items()])
    return new_id


def run_lifecycle(session: Session, run_id: str) -> str:
    """The run's lifecycle stage (active/deleted); NotFound for an unknown run. One indexed read."""
    stage = session.connection().execute(_RUN_STAGE, {"run_id": run_id}).scalar()
    if stage is None:
        raise NotFound(f"Run with id={run_id} not found", hint="list runs with 'shipyard runs list'")
    return stage


def end_run_fast(session: Session, run_id: str, status: str, end_time: int) -> None:
    """Set status and end time with one UPDATE."""
    if status not in RUN_STATUSES:
        raise InputError(f"run status {status!r} is not one of {', '.join(RUN_STATUSES)}")
    result = session.execute(update(Run).where(Run.id == run_id).values(status=status, end_time=end_time))
    if not result.rowcount:
        raise NotFound(f"Run with id={run_id} not found", hint="list runs with 'shipyard runs list'")
