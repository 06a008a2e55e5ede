"""Data governance that follows a model: which of its training columns are classified.

At registration the training features are classified: columns the PII scan of ``shipyard.data.pii``
recognises (e-mails, phone numbers, card numbers) are ``pii``, and ``supply.classified`` in
shipyard.yaml declares more (``{pii: [name], confidential: [salary]}``). The result is stored with
the version (``lineage.supply.classified``), shown by ``models show`` ("trained on columns
classified pii: email") and judged by the ``forbid_classified`` gate kind.

The gateway's request log follows ``supply.request_log``: named features are redacted (written as
nulls) or hashed (keyed SHA-256) when the batch is written, so the raw values never reach a file;
``prune_request_log`` deletes hour partitions older than the retention period, one audit event per
deleted partition.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ENV_HASH_KEY = "SHIPYARD_LOG_HASH_KEY"   # the key of hashed request-log fields (set it: digests of short values are guessable)


def classify_columns(frame: Any, declared: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[str]]:
    """{classification: sorted columns} for the columns of a pandas or polars ``frame``."""
    import polars as pl

    from shipyard.data.pii import scan

    table = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    found: dict[str, set[str]] = {}
    for finding in scan(table):
        found.setdefault("pii", set()).add(finding.column)
    for label, columns in (declared or {}).items():
        found.setdefault(label, set()).update(c for c in columns if c in table.columns)
    return {label: sorted(cols) for label, cols in sorted(found.items()) if cols}


def apply_log_policy(table: Any, redact: Sequence[str], hashed: Sequence[str]) -> Any:
    """The request-log Arrow ``table`` with ``feature.<name>`` columns redacted or hashed."""
    import pyarrow as pa

    key = os.environ.get(ENV_HASH_KEY, "").encode()
    for name in redact:
        column = f"feature.{name}"
        if column in table.column_names:
            index = table.column_names.index(column)
            table = table.set_column(index, column, pa.nulls(table.num_rows, table.schema.field(index).type))
    for name in hashed:
        column = f"feature.{name}"
        if column in table.column_names:
            index = table.column_names.index(column)
            values = [None if v is None else hmac.new(key, str(v).encode(), hashlib.sha256).hexdigest()[:32]
                      for v in table.column(index).to_pylist()]
            table = table.set_column(index, column, pa.array(values, pa.string()))
    return table


def expired_partitions(root: Path, retention_s: float, now: float | None = None) -> list[Path]:
    """Hour partitions (``model=*/date=*/hour=*``) of a local request log that ended before now - retention."""
    cutoff = datetime.fromtimestamp((now if now is not None else time.time()) - retention_s, UTC)
    expired = []
    for folder in sorted(Path(root).glob("model=*/date=*/hour=*")):
        try:
            start = datetime.strptime(f"{folder.parent.name[5:]} {folder.name[5:]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
        except ValueError:
            continue   # not one of ours
        if start + timedelta(hours=1) <= cutoff:
            expired.append(folder)
    return expired


def prune_request_log(store: Any, root: Path, retention: str, now: float | None = None) -> list[str]:
    """Delete the expired hour partitions of the request log at ``root``; each deletion is an audit
    event (``request_log.delete``, naming the partition and the retention). Returns what was deleted."""
    from shipyard import audit
    from shipyard.durations import parse_duration

    deleted = []
    for folder in expired_partitions(root, parse_duration(retention), now):
        rel = folder.relative_to(root).as_posix()
        files = sum(1 for _ in folder.glob("*.parquet"))
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:
            continue   # another gateway worker pruned it first (and recorded the event)
        with store.write() as session:
            audit.record(session, "request_log.delete", rel, {"retention": retention, "files": files})
        deleted.append(rel)
    return deleted


class RetentionJob:
    """A gateway background job: prune the request log now and every ``period`` seconds."""

    def __init__(self, store: Any, root: Path, retention: str, period: float = 3600.0) -> None:
        import threading

        self.store, self.root, self.retention, self.period = store, Path(root), retention, period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="shipyard-log-retention", daemon=True)
        self.last_error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                prune_request_log(self.store, self.root, self.retention)
            except Exception as exc:   # keep serving; the next period tries again
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._stop.wait(self.period)
