"""Run stages on a Dask distributed cluster (``--executor dask://host:port``).

Workers must see the project folder at the same path and the same object store (a shared folder,
or an object-store URL in ``SHIPYARD_OBJECTS``): each worker runs ``execute_stage``, which commits
the outs to the object store itself, and the runner records the result. Output is not streamed
live from workers; the runner prints each stage's log, prefixed, when the stage ends.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor

from shipyard.errors import MissingExtra, ShipyardError, UsageError
from shipyard.pipeline.executors.base import LineSink, StageJob, StageResult, execute_stage


class DaskExecutor:
    name = "dask"
    streams_live = False

    def __init__(self, spec: str, jobs: int) -> None:
        try:
            from distributed import Client
        except ImportError as exc:
            raise MissingExtra("the Dask executor needs the 'distributed' package",
                               hint='pip install "shipyard[dask]"') from exc
        address = spec.replace("dask://", "tcp://", 1)
        if address == "tcp://":
            raise UsageError(f"executor {spec!r} has no address", hint="use dask://host:port")
        try:
            self.client = Client(address, timeout="5s", set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ShipyardError(f"cannot reach the Dask scheduler at {address}: {exc}",
                                hint="start one with 'dask scheduler' and workers with 'dask worker ADDRESS'") from exc
        self.name = f"dask:{address}"
        self._waiters = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="shipyard-dask")
        self._futures: list = []

    def _run(self, job: StageJob) -> StageResult:
        future = self.client.submit(execute_stage, job, None, pure=False, key=f"shipyard-{job.name}-{id(job)}")
        self._futures.append(future)
        return future.result()

    def submit(self, job: StageJob, sink: LineSink | None) -> Future[StageResult]:
        return self._waiters.submit(self._run, job)

    def cancel_all(self) -> None:
        for future in self._futures:
            future.cancel()

    def close(self) -> None:
        self._waiters.shutdown(wait=True)
        self.client.close()
