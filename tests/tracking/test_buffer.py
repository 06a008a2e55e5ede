"""The metric buffer: batches within MLflow's limits, nothing lost when a write fails."""

from __future__ import annotations

import pytest

from shipyard.errors import StoreBusy
from shipyard.store.runs import MetricValue
from shipyard.tracking.buffer import BufferedParam, MetricBuffer, _chunks


def test_chunks_never_exceed_1000_items_or_100_params() -> None:
    items = [("r", BufferedParam(f"p{i}", "1")) for i in range(150)]
    items += [("r", MetricValue("m", 1.0, i)) for i in range(2500)] + [("s", MetricValue("x", 2.0))]
    chunks = _chunks(items, 1000)
    assert all(len(points) + len(params) <= 1000 and len(params) <= 100 for _, points, params in chunks)
    assert sum(len(p) for r, p, _ in chunks if r == "r") == 2500 and sum(len(q) for *_, q in chunks) == 150
    steps = [m.step for r, points, _ in chunks if r == "r" for m in points]
    assert steps == list(range(2500))  # order kept


def test_failed_write_is_kept_and_retried() -> None:
    written: list[tuple[str, int, int]] = []
    failures = [StoreBusy("locked")]

    def writer(run_id, points, params):  # type: ignore[no-untyped-def]
        if failures:
            raise failures.pop()
        written.append((run_id, len(points), len(params)))

    buffer = MetricBuffer(writer, background=False)
    buffer.add_params("r", {"depth": "3"})
    for i in range(1500):
        buffer.add("r", MetricValue("m", float(i), i))
    with pytest.raises(StoreBusy):
        buffer.flush()
    assert len(buffer) == 1501
    buffer.flush()
    buffer.close()
    assert written == [("r", 999, 1), ("r", 501, 0)] and len(buffer) == 0


def test_take_returns_points_and_params_of_one_run() -> None:
    buffer = MetricBuffer(lambda *a: None, background=False)
    buffer.add("a", MetricValue("m", 1.0))
    buffer.add("b", MetricValue("m", 2.0))
    buffer.add_params("a", {"k": "v"})
    points, params = buffer.take("a")
    assert [p.value for p in points] == [1.0] and params == {"k": "v"} and len(buffer) == 1
    buffer.close()
