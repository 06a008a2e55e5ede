"""The default executor: each stage's process is driven by a thread of the runner."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from shipyard.pipeline.executors.base import (
    LineSink,
    StageJob,
    StageResult,
    _Running,
    execute_stage,
)


class LocalExecutor:
    """Up to ``jobs`` stage processes at once on this machine, output streamed live."""

    name = "local"
    streams_live = True

    def __init__(self, jobs: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="shipyard-stage")

    def submit(self, job: StageJob, sink: LineSink | None) -> Future[StageResult]:
        return self._pool.submit(execute_stage, job, sink)

    def cancel_all(self) -> None:
        _Running.kill_all()

    def close(self) -> None:
        self._pool.shutdown(wait=True)
