"""Gather what the report says from git, the project files, the store and the registry.

Each function answers one question and returns plain values for ``shipyard.ci.report``:
params that changed since the base commit, data files that changed (rows and schema), metrics now,
at the base commit and of the champion, metric histories, and the two models' predictions on the
evaluation set for the plots.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shipyard.ci import git
from shipyard.ci.report import DataChange, MetricRow, ParamChange, higher_is_better
from shipyard.config import ShipyardConfig
from shipyard.dotted import flatten, numeric_leaves
from shipyard.hashing import hash_bytes, hash_file

CODE_SUFFIXES = {".py", ".sh", ".r", ".R", ".ipynb", ".sql", ".js", ".ts", ".jl", ".scala", ".java", ".go", ".rs",
                 ".toml", ".cfg", ".ini", ".lock", ".txt", ".md"}
TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json", ".feather", ".arrow"}


def _load_structured(data: bytes | None, name: str) -> Any:
    if data is None:
        return None
    text = data.decode("utf-8", errors="replace")
    try:
        if name.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError):
        return None


def param_files(config: ShipyardConfig) -> list[str]:
    """params.yaml plus every other file a stage takes params from."""
    files = ["params.yaml"]
    for stage in config.pipeline.stages.values():
        for entry in stage.params:
            if isinstance(entry, dict):
                files += [f for f in entry if f not in files]
    return files


def params_diff(root: Path, base_commit: str | None, files: Iterable[str]) -> list[ParamChange]:
    """Every param key whose value differs between the base commit and the working tree."""
    if base_commit is None:
        return []
    changes = []
    for name in files:
        path = root / name
        current = flatten(_load_structured(path.read_bytes() if path.is_file() else None, name) or {})
        base = flatten(_load_structured(git.show(root, base_commit, git.repo_path(root, path)), name) or {})
        prefix = "" if name == "params.yaml" else f"{name}:"
        for key in sorted(set(current) | set(base)):
            if current.get(key) != base.get(key) or (key in current) != (key in base):
                changes.append(ParamChange(prefix + key, base.get(key), current.get(key)))
    return changes


def data_paths(config: ShipyardConfig, root: Path) -> list[str]:
    """Dependencies that are data: not code, not produced by another stage."""
    produced: set[str] = set()
    for stage in config.pipeline.stages.values():
        for out in [*stage.outs, *stage.metrics, *stage.plots]:
            names = [out] if isinstance(out, str) else list(out)
            produced.update(n.rstrip("/") for n in names)
    found: list[str] = []
    for stage in config.pipeline.stages.values():
        for dep in stage.deps:
            clean = dep.rstrip("/")
            if clean in produced or clean in found or any(clean.startswith(p + "/") for p in produced):
                continue
            suffix = Path(clean).suffix
            if suffix in CODE_SUFFIXES or suffix in (".yaml", ".yml"):
                continue
            if (root / clean).exists() or suffix in TABLE_SUFFIXES:
                found.append(clean)
    return found


def _table_shape(data: bytes, name: str) -> tuple[int | None, dict[str, str]]:
    import polars as pl

    suffix = Path(name).suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            frame = pl.read_csv(io.BytesIO(data), separator="\t" if suffix == ".tsv" else ",",
                                infer_schema_length=10_000)
        elif suffix in (".parquet", ".pq"):
            frame = pl.read_parquet(io.BytesIO(data))
        elif suffix in (".jsonl", ".ndjson"):
            frame = pl.read_ndjson(io.BytesIO(data))
        elif suffix in (".feather", ".arrow"):
            frame = pl.read_ipc(io.BytesIO(data))
        else:
            return None, {}
    except Exception:  # not a table after all (or malformed): report the hash change only
        return None, {}
    return frame.height, {c: str(t) for c, t in frame.schema.items()}


LOCK_NAME = "shipyard.lock"


def lock_hashes(data: bytes | None) -> dict[str, str]:
    """path -> content id of every dep and out recorded in a ``shipyard.lock`` text."""
    doc = _load_structured(data, LOCK_NAME) if data is not None else None
    stages = doc.get("stages") if isinstance(doc, dict) else None
    out: dict[str, str] = {}
    for stage in (stages or {}).values():
        if not isinstance(stage, dict):
            continue
        for entry in [*(stage.get("deps") or []), *(stage.get("outs") or [])]:
            if isinstance(entry, dict) and entry.get("path") and entry.get("hash"):
                out[str(entry["path"]).rstrip("/")] = str(entry["hash"])
    return out


def data_diff(root: Path, base_commit: str | None, paths: Iterable[str], objects: Any = None) -> list[DataChange]:
    """Data deps whose content differs from the base commit, with rows and schema changes.

    The base content comes from git when the file is committed; otherwise its id comes from the
    ``shipyard.lock`` committed at the base (data kept out of git), and its rows and columns from the
    object store when the object is there. Folders are compared by their manifest ids.
    """
    if base_commit is None:
        return []
    lock_path = root / LOCK_NAME
    base_lock = lock_hashes(git.show(root, base_commit, git.repo_path(root, lock_path)))
    current_lock = lock_hashes(lock_path.read_bytes() if lock_path.is_file() else None)
    changes = []
    for rel in paths:
        path = root / rel
        if path.is_dir() or (not path.exists() and rel in current_lock):
            base_oid, current_oid = base_lock.get(rel), current_lock.get(rel)
            if base_oid is None and current_oid is None:
                continue
            changes.append(DataChange(rel, base_oid, current_oid))
            continue
        current = path.read_bytes() if path.is_file() else None
        base = git.show(root, base_commit, git.repo_path(root, path))
        base_oid = hash_bytes(base) if base is not None else base_lock.get(rel)
        if base is None and base_oid is not None and objects is not None:
            base = _object_bytes(objects, base_oid)
        if current is None and base_oid is None:
            continue
        change = DataChange(rel, base_oid, hash_file(path) if current is not None else None)
        if change.status == "unchanged":
            changes.append(change)
            continue
        rows, columns = _table_shape(current, rel) if current is not None else (None, {})
        base_rows, base_columns = _table_shape(base, rel) if base is not None else (None, {})
        change.rows, change.base_rows = rows, base_rows
        if columns and base_columns:
            change.columns_added = [c for c in columns if c not in base_columns]
            change.columns_removed = [c for c in base_columns if c not in columns]
            change.dtype_changes = [f"{c}: {base_columns[c]} → {columns[c]}" for c in columns
                                    if c in base_columns and base_columns[c] != columns[c]]
        changes.append(change)
    return changes


def _object_bytes(objects: Any, oid: str) -> bytes | None:
    from shipyard.errors import ShipyardError

    try:
        if not objects.has_many([oid]).get(oid):
            return None
        return objects.get_bytes(oid)
    except (ShipyardError, ValueError):
        return None


def metric_files(config: ShipyardConfig) -> list[str]:
    files = []
    for stage in config.pipeline.stages.values():
        for entry in stage.metrics:
            files += [entry] if isinstance(entry, str) else list(entry)
    return files


def read_metric_files(root: Path, files: Iterable[str], rev: str | None = None) -> dict[str, float] | None:
    """Numeric values of the metrics files, in the working tree or at git revision ``rev``."""
    found: dict[str, float] = {}
    seen = False
    for name in files:
        path = root / name
        if rev is None:
            data = path.read_bytes() if path.is_file() else None
        else:
            data = git.show(root, rev, git.repo_path(root, path))
        if data is None:
            continue
        seen = True
        found.update(numeric_leaves(_load_structured(data, name)))
    return found if seen else None


def runs_for_commit(session: Any, commits: list[str]) -> tuple[str | None, str | None]:
    """The newest finished top-level run (a pipeline run) at the first of ``commits`` that has one.

    ``commits`` is a commit and its ancestors, newest first: a base commit that only touched files
    outside the pipeline (docs, the lock file) is compared through the run of its parent.
    Returns (run id, commit) or (None, None); one query for all commits.
    """
    from sqlalchemy import select

    from shipyard.store.runs import Run

    if not commits:
        return None, None
    rows = session.execute(
        select(Run.id, Run.git_commit).where(Run.git_commit.in_(commits), Run.parent_run_id.is_(None),
                                             Run.status == "FINISHED").order_by(Run.start_time.desc())).all()
    newest: dict[str, str] = {}
    for run_id, commit in rows:
        newest.setdefault(commit, run_id)
    for commit in commits:
        if commit in newest:
            return newest[commit], commit
    return None, None


def run_metrics(session: Any, run_id: str | None) -> dict[str, float]:
    """Latest metrics of a run and its stage runs (children win over the parent, newest child wins)."""
    from sqlalchemy import select

    from shipyard.store.runs import Run, merged_latest_metrics

    if run_id is None:
        return {}
    ids = [run_id, *session.scalars(select(Run.id).where(Run.parent_run_id == run_id).order_by(Run.start_time))]
    return merged_latest_metrics(session, list(reversed(ids)))  # a child's value wins


def metric_histories(session: Any, run_id: str | None) -> dict[str, list[tuple[int, float]]]:
    """Every metric with more than one point, per key, over a run and its stage runs."""
    from sqlalchemy import select

    from shipyard.store.runs import Metric, Run

    if run_id is None:
        return {}
    ids = [run_id, *session.scalars(select(Run.id).where(Run.parent_run_id == run_id))]
    rows = session.execute(select(Metric.key, Metric.step, Metric.value, Metric.timestamp)
                           .where(Metric.run_id.in_(ids)).order_by(Metric.step, Metric.timestamp)).all()
    series: dict[str, dict[int, float]] = {}
    for key, step, value, _ts in rows:
        series.setdefault(key, {})[int(step)] = float(value)
    return {k: sorted(v.items()) for k, v in series.items() if len(v) > 1}


def metric_rows(current: Mapping[str, float], base: Mapping[str, float] | None,
                champion: Mapping[str, float] | None) -> list[MetricRow]:
    keys = list(dict.fromkeys([*current, *(base or {}), *(champion or {})]))
    return [MetricRow(k, current.get(k), (base or {}).get(k), (champion or {}).get(k), higher_is_better(k))
            for k in keys]


@dataclass
class EvalSet:
    frame: Any  # pandas DataFrame
    target: str
    features: list[str] | None
    groups: list[str]


def eval_set(root: Path, config: ShipyardConfig) -> EvalSet | None:
    """The evaluation table named by ``model.eval`` (with its target), or None when not configured."""
    model = config.model
    if model is None or not model.eval or not model.target:
        return None
    path = root / model.eval
    if not path.exists():
        return None
    import pandas as pd

    frame = pd.read_parquet(path) if path.is_dir() or path.suffix in (".parquet", ".pq") else pd.read_csv(path)
    if model.target not in frame.columns:
        return None
    groups = [g for g in model.groups if g in frame.columns]
    for gate in config.gates:
        group = getattr(gate, "group", None) if not isinstance(gate, dict) else gate.get("group")
        if group and group in frame.columns and group not in groups:
            groups.append(group)
    return EvalSet(frame, model.target, model.features, groups)


def predictions(model: Any, data: EvalSet, label: str) -> Any:
    """Run ``model`` (a LoadedModel) on the evaluation set; returns plots.Predictions."""
    import numpy as np

    from shipyard.ci.plots import Predictions

    features = data.frame[data.features] if data.features else data.frame.drop(columns=[data.target])
    y_pred = np.asarray(model.predict(features))
    proba = model.predict_proba(features)
    classes = tuple(model.classes or ())
    if proba is not None:
        proba = np.asarray(proba, dtype=float)
        if not classes or proba.ndim != 2 or proba.shape[1] != len(classes):
            proba = None
    keep = data.frame[data.target].notna().to_numpy()
    groups = {g: data.frame[g].astype(str).to_numpy()[keep] for g in data.groups}
    return Predictions(label, data.frame[data.target].to_numpy()[keep], y_pred[keep],
                       proba[keep] if proba is not None else None, classes, groups)


def plot_records(path: Path) -> list[dict[str, Any]]:
    """The rows of a DVC data-plot file: CSV/TSV with a header, or JSON/YAML holding a list of
    records (or, as dvclive writes, a mapping whose one value is that list). [] if unreadable."""
    import csv

    try:
        data = path.read_bytes()
    except OSError:
        return []
    if path.suffix.lower() in (".csv", ".tsv"):
        text = data.decode("utf-8", errors="replace").splitlines()
        return [dict(r) for r in csv.DictReader(text, delimiter="\t" if path.suffix.lower() == ".tsv" else ",")]
    doc = _load_structured(data, path.name)
    if isinstance(doc, Mapping):
        doc = next((v for v in doc.values() if isinstance(v, list)), [])
    return [r for r in doc if isinstance(r, Mapping)] if isinstance(doc, list) else []
