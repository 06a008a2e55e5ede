"""Micro-batching: concurrent requests for one model version share one model call.

Opportunistic: nothing waits on a timer when no other request is around. The first request of a
batch leads it (see ``Batcher``): at concurrency 1 it pays one turn of the event loop and runs
alone. A request that already has many rows (``solo_rows``, half a batch by default) skips the
queue: merging it saves little and copies much. The merged rows go through one ``predict``;
results are split back in order. When a merged call fails, each of its requests is tried alone, so
only a request the model refuses fails (the caller decides on fallback).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from shipyard.serving.codec import Rows

PROBE_EVERY = 16  # after a batch of one, this many requests run alone before the next probe


class Batcher:
    """The queue of one model version (champion or candidate side); no background task.

    The first request to find no batch forming leads one: it lets the event loop take one turn
    (requests read in the same turn queue up behind it), waits on while more are still being
    parsed (``arriving()``), up to ``max_latency_ms`` and ``max_batch_size`` rows, then predicts
    the merged rows and answers every request in the batch. Requests queued meanwhile get a new
    leader. A leader that found no company makes the next ``PROBE_EVERY`` requests that find the
    queue empty run alone at once, so at concurrency 1 only one request in 17 pays the turn of the
    loop (and none pays a task hop); a burst is noticed at the next probe.
    """

    def __init__(self, call: Callable[[Rows], tuple[Any, Any]], *, max_batch_size: int, max_latency_ms: float,
                 arriving: Callable[[], int], observe: Callable[[int], None] | None = None,
                 executor: Any = None, solo_rows: int | None = None) -> None:
        self.call = call
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000.0
        self.arriving = arriving
        self.observe = observe
        self.executor = executor  # None: run the model on the event loop
        self.solo_rows = solo_rows if solo_rows is not None else max(2, max_batch_size // 2)
        self._queue: deque[tuple[Rows, asyncio.Future[Any]]] = deque()
        self._leading = False
        self._next_leader: asyncio.Task[None] | None = None
        self._solo_left = 0  # requests to run alone, without a turn of the loop, before probing again

    async def submit(self, rows: Rows) -> tuple[Any, Any]:
        """Predict ``rows``: alone when it is large, else in the batch forming now."""
        if len(rows) >= self.solo_rows:
            return await self._run_call(rows)
        if self._solo_left > 0 and not self._queue and not self._leading and self.arriving() <= 0:
            self._solo_left -= 1  # the last batch found no company: skip the turn of the loop
            return await self._run_call(rows)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((rows, future))
        if not self._leading:
            await self._lead(loop)
        return await future

    async def _lead(self, loop: asyncio.AbstractEventLoop) -> None:
        """Form one batch from the queue's head and dispatch it; what is left gets a new leader.

        The batch is dispatched even when the leading request is cancelled (a candidate's timeout)
        while the batch forms, so the requests that joined it are never left waiting.
        """
        self._leading = True
        cancelled: asyncio.CancelledError | None = None
        try:
            deadline = loop.time() + self.max_latency
            await asyncio.sleep(0)  # one turn: requests already read in this turn join the batch
            while self._rows() < self.max_batch_size and self.arriving() > 0 and loop.time() < deadline:
                await asyncio.sleep(0)
        except asyncio.CancelledError as exc:
            cancelled = exc
        batch = []
        rows = 0
        while self._queue and (not batch or rows + len(self._queue[0][0]) <= self.max_batch_size):
            item = self._queue.popleft()
            batch.append(item)
            rows += len(item[0])
        self._solo_left = 0 if len(batch) > 1 else PROBE_EVERY
        self._leading = False
        self._dispatch(batch, loop)
        if self._queue:
            self._next_leader = loop.create_task(self._lead(loop))
        if cancelled is not None:
            raise cancelled

    async def _run_call(self, rows: Rows) -> tuple[Any, Any]:
        if self.executor is None:
            out = self.call(rows)
        else:
            out = await asyncio.get_running_loop().run_in_executor(self.executor, self.call, rows)
        if self.observe:
            self.observe(len(rows))
        return out

    def _rows(self) -> int:
        return sum(len(rows) for rows, _ in self._queue)

    def _dispatch(self, batch: list[tuple[Rows, asyncio.Future[Any]]], loop: asyncio.AbstractEventLoop) -> None:
        """Predict the batch on the loop, or hand it to the executor and answer when it is done."""
        try:
            merged = merge_rows([rows for rows, _ in batch])
            out = self.call(merged) if self.executor is None else None
        except Exception as exc:
            self._failed(batch, exc, loop)
            return
        if out is not None:
            self._answer(batch, len(merged), out)
            return
        job = loop.run_in_executor(self.executor, self.call, merged)
        job.add_done_callback(lambda done: self._settle(batch, len(merged), done, loop))

    def _settle(self, batch: list[tuple[Rows, asyncio.Future[Any]]], n: int, job: asyncio.Future[Any],
                loop: asyncio.AbstractEventLoop) -> None:
        if job.cancelled():
            _fail(batch, RuntimeError("the model call was cancelled (the gateway is stopping)"))
        elif job.exception() is not None:
            self._failed(batch, job.exception(), loop)  # type: ignore[arg-type]
        else:
            self._answer(batch, n, job.result())

    def _failed(self, batch: list[tuple[Rows, asyncio.Future[Any]]], exc: Exception,
                loop: asyncio.AbstractEventLoop) -> None:
        """A merged call failed: run each request of it alone, so only a request the model itself
        refuses fails (one client's bad row never fails its neighbours' requests)."""
        if len(batch) == 1:
            _fail(batch, exc)
            return
        for item in batch:
            if not item[1].done():
                self._dispatch([item], loop)

    def _answer(self, batch: list[tuple[Rows, asyncio.Future[Any]]], n: int, out: tuple[Any, Any]) -> None:
        if self.observe:
            self.observe(n)
        preds, scores = out
        start = 0
        for rows, future in batch:
            end = start + len(rows)
            if not future.done():
                future.set_result((preds[start:end], None if scores is None else scores[start:end]))
            start = end


def _fail(batch: list[tuple[Rows, asyncio.Future[Any]]], exc: BaseException) -> None:
    for _, future in batch:
        if not future.done():
            future.set_exception(exc)


def merge_rows(parts: list[Rows]) -> Rows:
    """All rows in one: the numeric matrices stacked when every part has one, else a DataFrame concat."""
    if len(parts) == 1:
        return parts[0]
    columns = parts[0].columns
    if all(p.array is not None and p.columns == columns for p in parts):
        return Rows(columns, np.concatenate([p.array for p in parts]), types=parts[0].types)  # type: ignore[misc]
    import pandas as pd

    return Rows.of_frame(pd.concat([p.frame for p in parts], ignore_index=True))
