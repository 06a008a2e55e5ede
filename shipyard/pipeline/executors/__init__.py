"""Executors run stage jobs: ``local`` (threads driving subprocesses) and ``dask`` (a Dask cluster)."""

from __future__ import annotations

from shipyard.errors import UsageError
from shipyard.pipeline.executors.base import Executor, StageJob, StageResult, execute_stage


def open_executor(spec: str, jobs: int) -> Executor:
    """``local`` or ``dask://host:port`` (``tcp://`` also accepted) -> an Executor."""
    if spec in ("", "local"):
        from shipyard.pipeline.executors.local import LocalExecutor

        return LocalExecutor(jobs)
    if spec.startswith(("dask://", "tcp://")):
        from shipyard.pipeline.executors.dask import DaskExecutor

        return DaskExecutor(spec, jobs)
    raise UsageError(f"unknown executor {spec!r}", hint="use 'local' or 'dask://host:port'")


__all__ = ["Executor", "StageJob", "StageResult", "execute_stage", "open_executor"]
