"""Micro-batching: concurrent requests for one model version share one model call.

A request puts its frame on the version's queue and awaits a future. The dispatcher takes the
first waiting request, then keeps yielding to the event loop while other requests are still being
read and parsed (``arriving()``), until ``max_batch_size`` rows or ``max_latency_ms`` — so at
concurrency 1 nothing waits, and under load each call covers every request already in the house.
The merged frame goes through one ``predict``; results are split back in order. A failing call
fails every request of that batch with the same exception (the caller decides on fallback).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np


class Batcher:
    def __init__(self, call: Callable[[Any], tuple[Any, Any]], *, max_batch_size: int, max_latency_ms: float,
                 arriving: Callable[[], int], observe: Callable[[int], None] | None = None,
                 executor: Any = None) -> None:
        self.call = call
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000.0
        self.arriving = arriving
        self.observe = observe
        self.executor = executor  # None: run the model on the event loop
        self._queue: deque[tuple[Any, asyncio.Future[Any]]] = deque()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def submit(self, frame: Any) -> tuple[Any, Any]:
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done():
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run())
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append((frame, future))
        assert self._wake is not None
        self._wake.set()
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                deadline = loop.time() + self.max_latency
                while (self._rows() < self.max_batch_size and self.arriving() > 0 and loop.time() < deadline):
                    await asyncio.sleep(0)
                batch = []
                rows = 0
                while self._queue and (not batch or rows + len(self._queue[0][0]) <= self.max_batch_size):
                    item = self._queue.popleft()
                    batch.append(item)
                    rows += len(item[0])
                await self._dispatch(batch, loop)

    def _rows(self) -> int:
        return sum(len(frame) for frame, _ in self._queue)

    async def _dispatch(self, batch: list[tuple[Any, asyncio.Future[Any]]], loop: asyncio.AbstractEventLoop) -> None:
        frames = [frame for frame, _ in batch]
        try:
            merged = merge_frames(frames)
            if self.executor is None:
                preds, scores = self.call(merged)
            else:
                preds, scores = await loop.run_in_executor(self.executor, self.call, merged)
            if self.observe:
                self.observe(len(merged))
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for frame, future in batch:
            end = start + len(frame)
            if not future.done():
                future.set_result((preds[start:end], None if scores is None else scores[start:end]))
            start = end


def merge_frames(frames: list[Any]) -> Any:
    """One DataFrame of all rows: numpy stacking when every frame is plain float64, else concat."""
    import pandas as pd

    if len(frames) == 1:
        return frames[0]
    first = frames[0]
    columns = list(first.columns)
    if all(list(f.columns) == columns for f in frames) and all(
            len(set(f.dtypes)) == 1 and f.dtypes.iloc[0] == np.float64 for f in frames):
        return pd.DataFrame(np.vstack([f.to_numpy() for f in frames]), columns=columns, copy=False)
    return pd.concat(frames, ignore_index=True)
