"""Build the request log's Arrow tables from queued entries, columnar, off the event loop's back.

The request log's flush thread turns thousands of per-request entries into one table per model
and hour. It shares the GIL with the event loop, so every step here is one numpy or Arrow call over
all entries (concatenate, repeat, take, cast) rather than Python work per row: per-row loops held
the GIL for ~100 ms per flush and showed up as the gateway's p99. Feature values come from each
request's ``Rows`` matrix; DataFrames (entries made by hand, non-numeric input) take a slower,
per-column path. The columns are the request log's contract (see ``shipyard.serving.requestlog``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from shipyard.serving.codec import Rows

TEXT_CHUNK = 8192  # labels converted to Arrow text per GIL hold


def columns_of(frame: Any) -> tuple[str, ...]:
    """The feature columns an entry carries: of its Rows or DataFrame, none when it has neither."""
    if frame is None:
        return ()
    if isinstance(frame, Rows):
        return frame.columns
    return tuple(frame.columns)


@lru_cache(maxsize=64)
def _hour_partition(hour: int) -> tuple[str, str]:
    moment = datetime.fromtimestamp(hour * 3600, UTC)
    return moment.strftime("%Y-%m-%d"), moment.strftime("%H")


def hour_partition(ts: float) -> tuple[str, str]:
    """(``YYYY-MM-DD``, ``HH``) in UTC of a timestamp: the request log's partition."""
    return _hour_partition(int(ts // 3600))


def request_table(group: list[Any], columns: list[str], labels: bool) -> Any:
    """One Arrow table of ``group`` (LogEntry tuples of one model and feature schema): a row per
    request row, with ids ``<request id>/<row>`` for requests of several rows."""
    import pyarrow as pa

    counts = np.fromiter((row_count(e) for e in group), dtype=np.int64, count=len(group))
    owner = np.repeat(np.arange(len(group)), counts)  # entry index of every output row
    index = pa.array(owner)

    def per_entry(values: list[Any], kind: Any) -> Any:
        return pa.array(values, kind).take(index)

    def repeated(values: Any, kind: Any) -> Any:
        return pa.array(np.repeat(np.fromiter(values, kind, len(group)), counts))

    builders: dict[str, Callable[[], Any]] = {
        "request_id": lambda: _request_ids(pa.array([e.request_id for e in group], pa.string()), counts, owner),
        "ts": lambda: repeated((int(e.ts * 1_000_000) for e in group), np.int64).cast(pa.timestamp("us", tz="UTC")),
        "model": lambda: per_entry([e.model for e in group], pa.string()),
        "version": lambda: repeated((e.version for e in group), np.int64),
        "route": lambda: per_entry([e.route for e in group], pa.string()),
        "status": lambda: per_entry([e.status for e in group], pa.string()),
        "latency_ms": lambda: repeated((e.latency_ms for e in group), np.float64),
        "error": lambda: per_entry([e.error for e in group], pa.string()),
        "features": lambda: _features(group, columns),
        "prediction": lambda: _predictions(group, counts, labels),
        "score": lambda: _optional_floats([e.scores for e in group], counts),
    }
    data: dict[str, Any] = {}
    for name, build in builders.items():
        column = build()
        if name == "features":
            data.update(column)
        else:
            data[name] = column
        time.sleep(0)  # hand the GIL to the event loop between columns (each step is short)
    return pa.table(data)


def with_gateway_cpu(table: Any, shared_ms: float, model_ms: dict[int, float]) -> Any:
    """``table`` (rows of one model) with the ``gateway_cpu_ms`` column: each row's share of the window's
    CPU, ``shared_ms`` plus its version's model-call CPU per row (``model_ms``: version -> ms)."""
    import pyarrow as pa

    cpu = np.full(table.num_rows, shared_ms, dtype=np.float64)
    if model_ms:
        versions = table.column("version").to_numpy()
        for version, ms in model_ms.items():
            cpu[versions == version] += ms
    return table.append_column("gateway_cpu_ms", pa.array(cpu))


def row_count(entry: Any) -> int:
    """The rows one log entry writes (its request's rows)."""
    if entry.frame is not None:
        return len(entry.frame)
    return len(entry.predictions) if entry.predictions is not None else 1


def _request_ids(ids: Any, counts: np.ndarray, owner: np.ndarray) -> Any:
    """The request id per row; ``<id>/<row>`` for the rows of a request of several rows."""
    import pyarrow as pa
    import pyarrow.compute as pc

    repeated = ids.take(pa.array(owner))
    if len(counts) == 0 or counts.max() <= 1:
        return repeated
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    row = pa.array(np.arange(len(owner)) - starts).cast(pa.string())
    several = pa.array(np.repeat(counts > 1, counts))
    return pc.if_else(several, pc.binary_join_element_wise(repeated, row, "/"), repeated)


def _features(group: list[Any], columns: list[str]) -> dict[str, Any]:
    import pyarrow as pa

    if not columns:
        return {}
    if all(isinstance(e.frame, Rows) and e.frame.array is not None for e in group):
        matrix = np.concatenate([e.frame.array for e in group])
        return {f"feature.{col}": pa.array(matrix[:, j]) for j, col in enumerate(columns)}
    out = {}
    for j, col in enumerate(columns):
        merged = np.concatenate([_column(e.frame, j, col) for e in group])
        out[f"feature.{col}"] = pa.array(merged.tolist() if merged.dtype == object else merged)
    return out


def _column(frame: Any, j: int, col: str) -> np.ndarray:
    if isinstance(frame, Rows):
        return frame.array[:, j] if frame.array is not None else frame.frame[col].to_numpy()
    return frame[col].to_numpy()


def _predictions(group: list[Any], counts: np.ndarray, labels: bool) -> Any:
    """Class labels as strings, regression values as float64; null where the call failed."""
    import pyarrow as pa

    if not labels:
        return _optional_floats([e.predictions for e in group], counts)
    missing = [e.predictions is None for e in group]
    parts = [_as_str(e.predictions) if e.predictions is not None else np.full(n, "", dtype="U1")
             for e, n in zip(group, counts.tolist(), strict=True)]
    values = np.concatenate(parts) if parts else np.asarray([], dtype="U1")
    mask = np.repeat(np.asarray(missing, dtype=bool), counts) if any(missing) else None
    # Text conversion holds the GIL for its whole call (~15 ms per 100k labels): convert in slices
    # and let the event loop in between them.
    chunks = []
    for start in range(0, len(values), TEXT_CHUNK):
        if start:
            time.sleep(0)
        end = start + TEXT_CHUNK
        chunks.append(pa.array(values[start:end], pa.string(), mask=None if mask is None else mask[start:end]))
    return pa.chunked_array(chunks, pa.string())


def _as_str(values: Any) -> np.ndarray:
    array = np.asarray(values)
    return array if array.dtype.kind == "U" else array.astype(str)


def _optional_floats(parts: list[Any], counts: np.ndarray) -> Any:
    """float64 values of every entry's array; null for the rows of entries without one."""
    import pyarrow as pa

    missing = [p is None for p in parts]
    values = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) if p is not None else np.zeros(n)
                             for p, n in zip(parts, counts.tolist(), strict=True)]) if parts else np.zeros(0)
    mask = np.repeat(np.asarray(missing, dtype=bool), counts) if any(missing) else None
    return pa.array(values, pa.float64(), mask=mask)
