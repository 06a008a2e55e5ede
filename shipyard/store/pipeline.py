"""Pipeline runs and stage executions: tables and repository functions.

A pipeline run is also a tracking run (``runs`` row, source ``pipeline``) and each stage execution a
child tracking run, so metrics logged from inside a stage attach to it. These tables add what only a
pipeline has: status per stage, exit code, fingerprint, cache hit, CPU seconds, peak memory and the
object id of the stage's log. Times are integer milliseconds since the epoch, like ``runs``.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Integer, String, Text, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from shipyard.errors import InputError, NotFound
from shipyard.processes import dead_owner
from shipyard.store.base import Base
from shipyard.store.lite import StageOutcome  # defined without SQLAlchemy, for restores
from shipyard.store.runs import Run, now_ms

PIPELINE_STATUSES = ("RUNNING", "SUCCEEDED", "FAILED", "KILLED")
STAGE_STATUSES = ("RUNNING", "SUCCEEDED", "RESTORED", "FAILED", "SKIPPED", "KILLED")


class PipelineRun(Base):
    __tablename__ = "pipeline_runs"
    id: Mapped[str] = mapped_column(String(32), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="RUNNING")
    started_at: Mapped[int] = mapped_column(BigInteger, default=now_ms, index=True)
    ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    targets: Mapped[str] = mapped_column(Text, default="")
    executor: Mapped[str] = mapped_column(String(200), default="local")
    jobs: Mapped[int] = mapped_column(Integer, default=1)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)


class StageExecution(Base):
    __tablename__ = "stage_executions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    pipeline_run_id: Mapped[str] = mapped_column(ForeignKey("pipeline_runs.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[str | None] = mapped_column(String(32), ForeignKey("runs.id"), nullable=True)
    stage: Mapped[str] = mapped_column(String(250), index=True)
    status: Mapped[str] = mapped_column(String(20), default="RUNNING")
    started_at: Mapped[int] = mapped_column(BigInteger, default=now_ms)
    ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    fingerprint: Mapped[str] = mapped_column(String(80))
    cache_hit: Mapped[bool] = mapped_column(Boolean, default=False)
    cpu_seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    peak_memory_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    log_oid: Mapped[str | None] = mapped_column(String(80), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)


def start_pipeline_run(session: Session, run_id: str, *, targets: Sequence[str], executor: str, jobs: int,
                       pid: int | None) -> PipelineRun:
    row = PipelineRun(id=run_id, status="RUNNING", started_at=now_ms(), targets=" ".join(targets),
                      executor=executor, jobs=jobs, pid=pid)
    session.add(row)
    session.flush()
    return row


def finish_pipeline_run(session: Session, run_id: str, status: str) -> None:
    if status not in PIPELINE_STATUSES:
        raise InputError(f"pipeline status {status!r} is not one of {', '.join(PIPELINE_STATUSES)}")
    row = session.get(PipelineRun, run_id)
    if row is None:
        raise NotFound(f"pipeline run {run_id!r} does not exist")
    row.status = status
    row.ended_at = now_ms()


def start_stages(session: Session, pipeline_run_id: str, stages: Sequence[tuple[str, str | None, str]]) -> dict[str, int]:
    """Insert RUNNING executions for (stage, child run id, fingerprint) rows; returns their ids by stage."""
    rows = [StageExecution(pipeline_run_id=pipeline_run_id, stage=stage, run_id=run_id, fingerprint=fp,
                           status="RUNNING", started_at=now_ms()) for stage, run_id, fp in stages]
    session.add_all(rows)
    session.flush()
    return {row.stage: row.id for row in rows}


def finish_stage(session: Session, execution_id: int, outcome: StageOutcome, *, cache_hit: bool = False) -> None:
    if outcome.status not in STAGE_STATUSES:
        raise InputError(f"stage status {outcome.status!r} is not one of {', '.join(STAGE_STATUSES)}")
    row = session.get(StageExecution, execution_id)
    if row is None:
        raise NotFound(f"stage execution {execution_id} does not exist")
    row.status = outcome.status
    row.ended_at = now_ms()
    row.exit_code = outcome.exit_code
    row.cpu_seconds = outcome.cpu_seconds
    row.peak_memory_bytes = outcome.peak_memory_bytes
    row.log_oid = outcome.log_oid
    row.reason = outcome.reason
    row.cache_hit = cache_hit


def record_skipped(session: Session, pipeline_run_id: str, stage: str, fingerprint: str, reason: str) -> None:
    stamp = now_ms()
    session.add(StageExecution(pipeline_run_id=pipeline_run_id, stage=stage, fingerprint=fingerprint, status="SKIPPED",
                               started_at=stamp, ended_at=stamp, reason=reason))


def mark_interrupted(session: Session) -> list[str]:
    """Close pipeline runs (and their stages and tracking runs) left RUNNING by a killed runner.

    Called while holding the project's run lock. A store may be shared (PostgreSQL, other projects,
    other machines), so only runs whose runner process is gone are closed: this host's (or a run that
    names no host) whose pid is dead or reused (``processes.dead_owner``).
    Returns the ids of the pipeline runs it closed.
    """
    running = session.execute(select(PipelineRun.id, Run.host, PipelineRun.pid, PipelineRun.started_at)
                              .join(Run, Run.id == PipelineRun.id).where(PipelineRun.status == "RUNNING")).all()
    stale = [rid for rid, host, pid, started in running if dead_owner(host, pid, started)]
    if not stale:
        return []
    stamp = now_ms()
    session.execute(update(PipelineRun).where(PipelineRun.id.in_(stale)).values(status="KILLED", ended_at=stamp))
    child_runs = list(session.scalars(select(StageExecution.run_id).where(
        StageExecution.pipeline_run_id.in_(stale), StageExecution.status == "RUNNING", StageExecution.run_id.is_not(None))))
    session.execute(update(StageExecution).where(StageExecution.pipeline_run_id.in_(stale), StageExecution.status == "RUNNING")
                    .values(status="KILLED", ended_at=stamp, reason="the runner was killed"))
    session.execute(update(Run).where(Run.id.in_([*stale, *child_runs]), Run.status == "RUNNING")
                    .values(status="KILLED", end_time=stamp))
    return stale


def list_pipeline_runs(session: Session, limit: int = 20) -> list[PipelineRun]:
    return list(session.scalars(select(PipelineRun).order_by(PipelineRun.started_at.desc()).limit(limit)))


def stage_executions(session: Session, pipeline_run_id: str) -> list[StageExecution]:
    return list(session.scalars(select(StageExecution).where(StageExecution.pipeline_run_id == pipeline_run_id)
                                .order_by(StageExecution.id)))
