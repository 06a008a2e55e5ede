"""Data governance that follows a model: which of its training columns are classified.

Column classifications live with dataset versions (``shipyard data add`` runs the PII scan of
``shipyard.data.pii`` and applies ``supply.classified``; ``shipyard data validate`` adds what it
finds and what the schema declares with ``pii: true``). They follow lineage: the run that read a
dataset version, the model version that run trained. At registration the training features are
classified too (the same scan on ``model.train``), merged with the classifications of the
dataset versions the producing run read, kept to the model's features, and stored with the version
(``lineage.supply.classified``); ``models show`` prints it ("trained on columns classified pii:
email"). The ``forbid_classified`` gate asks lineage again when it runs (``version_classification``),
so a dataset classified after the model was registered still counts.

The gateway's request log follows ``supply.request_log``: named features are redacted (written as
nulls) or hashed (keyed SHA-256) when the batch is written, so the raw values never reach a file;
hashing needs ``SHIPYARD_LOG_HASH_KEY`` (``require_hash_key``). ``prune_request_log`` deletes hour
partitions older than the retention period wherever the log lives (a local folder or an fsspec URL,
through the writer's own filesystem), one audit event per deleted partition.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.data.pii import classify_columns  # noqa: F401  (re-exported: registration classifies with it)
from shipyard.errors import ConfigError

ENV_HASH_KEY = "SHIPYARD_LOG_HASH_KEY"   # the key of hashed request-log fields (set it: digests of short values are guessable)


def training_classification(session: Any, run_id: str | None, features: Sequence[str] | None,
                            recorded: Mapping[str, Sequence[str]] | None = None,
                            files: Sequence[tuple[str, str]] = ()) -> tuple[dict[str, list[str]], list[str]]:
    """The classified columns a model version was trained on, through lineage: the classifications
    of the dataset versions its run read (and, for a stage run, every stage run of its pipeline run:
    a raw dataset that ``prepare`` read reaches the model ``train`` made from it), and of those
    holding ``files`` ((path, content id): the ``model.train`` file), with ``recorded`` (what
    registration classified), kept to the model's ``features`` when they are known. Returns
    (classification, the classified dataset refs)."""
    from shipyard.store.datasets import merge_classes, versions_by_path_oid, versions_read_by

    datasets = versions_read_by(session, _pipeline_runs_of(session, run_id))
    datasets += [v for v in versions_by_path_oid(session, files) if v not in datasets]
    found = merge_classes(recorded or {}, *(v.classification() for v in datasets))
    if features is not None:
        keep = set(features)
        found = {label: cols for label, cols in ((lb, [c for c in cs if c in keep]) for lb, cs in found.items()) if cols}
    return found, [v.ref for v in datasets if v.classification()]


def _pipeline_runs_of(session: Any, run_id: str | None) -> list[str]:
    """``run_id`` and, when it is a stage run of a pipeline run, the other stage runs of that pipeline run."""
    from sqlalchemy import select

    from shipyard.store.pipeline import PipelineRun
    from shipyard.store.runs import Run

    if not run_id:
        return []
    parent = session.scalar(select(Run.parent_run_id).where(Run.id == run_id))
    if parent is None or session.get(PipelineRun, parent) is None:
        return [run_id]
    return [run_id, *session.scalars(select(Run.id).where(Run.parent_run_id == parent, Run.id != run_id))]


def training_files(lineage: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(path, content id) of the ``model.train`` file a version's lineage records (none: empty)."""
    train = lineage.get("train")
    return [(train["path"].rstrip("/"), train["oid"])] if train and train.get("oid") else []


def version_classification(session: Any, mv: Any) -> dict[str, list[str]] | None:
    """What ``forbid_classified`` judges for model version ``mv``: its training datasets'
    classifications reached through lineage now (a dataset classified after registration counts),
    with what registration recorded. None when neither lineage nor registration says anything."""
    lineage = mv.lineage or {}
    recorded = (lineage.get("supply") or {}).get("classified")
    features = mv.signature.columns if mv.signature is not None else None
    found, datasets = training_classification(session, mv.run_id, features, recorded, training_files(lineage))
    if recorded is None and not datasets and not found:
        return None
    return found


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


def require_hash_key(policy: Any) -> None:
    """Refuse a request-log policy that hashes fields without ``SHIPYARD_LOG_HASH_KEY``: an unkeyed
    digest of a short value (a phone number, an e-mail from a known list) is reversed by trying
    values. ``allow_unkeyed_hash: true`` is the explicit opt-out."""
    if policy is None or not policy.hash or policy.allow_unkeyed_hash or os.environ.get(ENV_HASH_KEY):
        return
    raise ConfigError(
        f"supply.request_log.hash names {', '.join(policy.hash)} but {ENV_HASH_KEY} is not set: the digests "
        "would be unkeyed, and an unkeyed digest of a short value is found by trying every value",
        hint=f"set {ENV_HASH_KEY} to a secret in the gateway's environment (e.g. export {ENV_HASH_KEY}="
             '"$(openssl rand -hex 32)"; keep it stable to keep digests joinable), or add '
             "allow_unkeyed_hash: true under supply.request_log to accept guessable digests")


def _hour_start(date_part: str, hour_part: str) -> datetime | None:
    """The start of the hour partition ``date=YYYY-MM-DD/hour=HH``; None for a folder not ours."""
    try:
        return datetime.strptime(f"{date_part[5:]} {hour_part[5:]}", "%Y-%m-%d %H").replace(tzinfo=UTC)
    except ValueError:
        return None


def _location(root: Any) -> tuple[Any, str]:
    """(fsspec filesystem or None for the local disk, base path) of the request log at ``root``: a
    local folder, or the writer's ``LogFolder`` (``shipyard.serving.logstore``: a service above this
    room, so it is handed in rather than imported)."""
    if isinstance(root, str | os.PathLike):
        return None, os.fspath(root)
    return root.fs, root.path


def _hour_partitions(fs: Any, base: str) -> list[PurePosixPath]:
    pattern = "model=*/date=*/hour=*"
    if fs is None:
        folder = Path(base)
        return [PurePosixPath(p.relative_to(folder).as_posix()) for p in sorted(folder.glob(pattern)) if p.is_dir()]
    fs.invalidate_cache(base)   # other workers write there: never a cached listing
    found = fs.glob(f"{base}/{pattern}", detail=True)
    return sorted(PurePosixPath(p).relative_to(base) for p, info in found.items() if info.get("type") == "directory")


def expired_partitions(root: Any, retention_s: float, now: float | None = None) -> list[str]:
    """Hour partitions (``model=*/date=*/hour=*``, relative to ``root``) of the request log that
    ended before now - retention. ``root`` is a local folder or a ``LogFolder`` (any fsspec URL)."""
    cutoff = datetime.fromtimestamp((now if now is not None else time.time()) - retention_s, UTC)
    expired = []
    for rel in _hour_partitions(*_location(root)):
        start = _hour_start(rel.parent.name, rel.name)
        if start is not None and start + timedelta(hours=1) <= cutoff:
            expired.append(rel.as_posix())
    return expired


def _delete_partition(fs: Any, base: str, rel: str) -> int | None:
    """Delete one hour partition; returns how many Parquet parts it held (None: already gone)."""
    if fs is None:
        path = Path(base) / rel
        files = sum(1 for _ in path.glob("*.parquet"))
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            return None
        return files
    path = f"{base}/{rel}"
    files = len(fs.glob(f"{path}/*.parquet"))
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        return None
    return files


def prune_request_log(store: Any, root: Any, retention: str, now: float | None = None) -> list[str]:
    """Delete the expired hour partitions of the request log at ``root`` (a local folder, or the
    writer's ``LogFolder`` for an fsspec URL: the same filesystem the gateway writes through); each
    deletion is an audit event (``request_log.delete``, naming the partition, the retention and the
    location). Returns what was deleted."""
    from shipyard import audit
    from shipyard.durations import parse_duration

    fs, base = _location(root)
    deleted = []
    for rel in expired_partitions(root, parse_duration(retention), now):
        files = _delete_partition(fs, base, rel)
        if files is None:
            continue   # another gateway worker pruned it first (and recorded the event)
        with store.write() as session:
            audit.record(session, "request_log.delete", rel, {"retention": retention, "files": files,
                                                              "location": str(root)})
        deleted.append(rel)
    return deleted


class RetentionJob:
    """A gateway background job: prune the request log now and every ``period`` seconds."""

    def __init__(self, store: Any, root: Any, retention: str, period: float = 3600.0) -> None:
        import threading

        self.store, self.root, self.retention, self.period = store, root, retention, period
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
