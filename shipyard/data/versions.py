"""Dataset versions: add (hash, schema, profile, store), look up, diff, and lineage to runs and models.

Services receive the pieces they need (a Store, an ObjectStore, a Hasher) rather than a workspace.
The pipeline runner calls ``versions_for_paths`` with the hashes it already computed for a stage's
deps and ``record_run_inputs`` for the stage's run, in the same write transaction.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shipyard.data.profile import Profile
    from shipyard.hashing import Hasher
    from shipyard.objects import ObjectStore
    from shipyard.store import Store
    from shipyard.store.datasets import DatasetVersion


@dataclass
class Added:
    version: DatasetVersion
    created: bool
    profile: Profile | None
    warnings: list[str] = field(default_factory=list)


def default_name(relpath: str) -> str:
    """``data/raw.csv`` -> ``raw``; a folder keeps its name."""
    return Path(relpath).stem or Path(relpath).name


def add_dataset(store: Store, objects: ObjectStore, hasher: Hasher, relpath: str, *, name: str | None = None,
                keep_content: bool = True) -> Added:
    """Version the file or folder at ``relpath`` (relative to ``hasher.root``).

    Unchanged content under the same name returns the existing version without re-profiling.
    """
    from shipyard.data.profile import profile_path
    from shipyard.data.readers import data_files, detect_format, read_frame
    from shipyard.data.schema import infer_schema
    from shipyard.store import datasets as repo

    full = hasher.root / relpath
    files = data_files(full)
    fmt = detect_format(files[0])
    name = name or default_name(relpath)
    if not name or "@" in name or "/" in name:
        raise InputError(f"dataset name {name!r} may not be empty or contain '@' or '/'", hint="e.g. --name penguins")
    oid, size = hasher.hash_paths([relpath])[relpath]
    with store.read() as session:
        from sqlalchemy import select

        existing = session.scalar(select(repo.DatasetVersion).where(repo.DatasetVersion.name == name,
                                                                    repo.DatasetVersion.oid == oid).limit(1))
        if existing is not None:
            return Added(existing, False, None)
    # profile in a stream (bounded memory); the schema from a bounded read of the first chunk
    # would be less tolerant, so read the frame when it fits comfortably
    profile = profile_path(full, calibrate=True)
    warnings = list(profile.warnings)
    if size <= 512 << 20:
        loaded = read_frame(full)
        warnings = list(dict.fromkeys(loaded.warnings + warnings))
        sample = loaded.frame
    else:
        from shipyard.data.readers import iter_frames

        sample = next(iter(iter_frames(full)))
    schema = infer_schema(sample)
    columns = [{"name": n, "dtype": str(t)} for n, t in sample.schema.items()]
    classified = classify_dataset(sample, hasher.root)
    if keep_content:
        objects.put_path(full, hasher)
    profile_oid = objects.put_bytes(profile.to_json())
    with store.write() as session:
        from shipyard.audit import record

        version, created = repo.add_version(
            session, name=name, path=relpath, format=fmt, oid=oid, size_bytes=size, rows=profile.rows,
            columns=columns, schema=schema.to_yaml(f"schema inferred for {name} at data add"),
            profile_oid=profile_oid, warnings=warnings, user=_user(), classified=classified)
        if created:
            record(session, "data.add", version.ref, {"path": relpath, "oid": oid, "rows": profile.rows,
                                                      "classified": classified})
    return Added(version, created, profile, warnings)


def classify_dataset(frame: Any, root: Path) -> dict[str, list[str]]:
    """The classified columns of a dataset's ``frame``: what the PII scan finds (as
    ``shipyard data validate --pii``) plus the classes ``supply.classified`` of the project at
    ``root`` declares by column name (docs/guide/security.md)."""
    from shipyard.config import load_config
    from shipyard.data.pii import classify_columns

    config = Path(root) / "shipyard.yaml"
    return classify_columns(frame, load_config(config).supply.classified if config.is_file() else None)


def validation_classes(schema_path: str | os.PathLike[str], pii_columns: Sequence[str]) -> dict[str, list[str]]:
    """The classes a validation establishes: ``pii`` for the columns the PII scan flagged and for
    those the schema declares ``pii: true`` (acknowledged personal data is still personal data)."""
    from shipyard.data.schema import load_schema

    declared = [name for name, col in load_schema(schema_path).schema.columns.items() if col.pii]
    return {"pii": sorted({*pii_columns, *declared})} if pii_columns or declared else {}


def record_classified(store: Store, hasher: Hasher, relpath: str, classified: Mapping[str, Sequence[str]]) -> list[str]:
    """Add ``classified`` columns to every dataset version holding the current content of
    ``relpath`` (what ``data validate`` found or the schema declares); returns their refs."""
    from shipyard.store.datasets import add_classified

    oid, _ = hasher.hash_paths([relpath])[relpath]
    with store.write() as session:
        versions = versions_for_paths(session, {relpath: oid})
        for version in versions:
            if add_classified(session, version, classified):
                from shipyard.audit import record

                record(session, "data.classify", version.ref, {"classified": version.classification()})
        return [v.ref for v in versions]


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return os.environ.get("USER")


def load_profile(objects: ObjectStore, version: DatasetVersion) -> Profile:
    from shipyard.data.profile import Profile

    if not version.profile_oid:
        raise InputError(f"dataset {version.ref} has no stored profile",
                         hint=f"add it again: shipyard data add {version.path} --name {version.name}")
    return Profile.from_json(objects.get_bytes(version.profile_oid))


def versions_for_paths(session: Session, paths: Mapping[str, str]) -> list[DatasetVersion]:
    """Dataset versions whose path and content id match ``{relpath: oid}`` (a stage's deps)."""
    from shipyard.store.datasets import versions_by_path_oid

    return versions_by_path_oid(session, [(p.rstrip("/"), oid) for p, oid in paths.items()])


def record_run_inputs(session: Session, run_id: str, versions: Sequence[DatasetVersion]) -> None:
    """Link ``run_id`` to the versions it read, and list them as the run's dataset inputs."""
    from sqlalchemy import select

    from shipyard.store.datasets import link_runs
    from shipyard.store.runs import DatasetInput

    if not versions:
        return
    link_runs(session, run_id, [v.id for v in versions])
    have = {(r.name, r.digest) for r in session.scalars(select(DatasetInput).where(DatasetInput.run_id == run_id))}
    for v in versions:
        if (v.ref, v.oid) in have:
            continue
        session.add(DatasetInput(run_id=run_id, name=v.ref, digest=v.oid, context="input", source=v.path,
                                 source_type=v.format, schema=json.dumps(v.column_list()), profile=v.profile_oid))
    session.flush()


@dataclass
class UsedBy:
    """Lineage of one dataset version: runs that read it and model versions trained from them."""

    version: DatasetVersion
    runs: list[str]
    models: list[dict[str, Any]] | None  # None: the model registry is not available in this store
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"dataset": self.version.ref, "runs": self.runs, "models": self.models, "note": self.note}


def used_by(session: Session, version: DatasetVersion) -> UsedBy:
    """Runs that read ``version`` and the model versions registered from those runs or from the
    pipeline runs they belong to (a stage's parent run and its sibling stage runs)."""
    from sqlalchemy import inspect, select

    from shipyard.store.datasets import runs_reading
    from shipyard.store.runs import Run

    direct = runs_reading(session, version.id)
    related = set(direct)
    if direct:
        parents = {p for p in session.scalars(select(Run.parent_run_id).where(Run.id.in_(direct))) if p}
        related |= parents
        if parents:
            related |= set(session.scalars(select(Run.id).where(Run.parent_run_id.in_(parents))))
    try:
        from shipyard.store import registry as registry_tables
    except ImportError:
        return UsedBy(version, direct, None, "the model registry is not installed in this build; "
                      "only the runs that read this dataset are known")
    if not inspect(session.get_bind()).has_table("model_versions"):
        return UsedBy(version, direct, None, "the store has no model registry tables yet")
    models: list[dict[str, Any]] = []
    if related:
        rows = session.execute(
            select(registry_tables.RegisteredModel.name, registry_tables.ModelVersionRow.version,
                   registry_tables.ModelVersionRow.run_id)
            .join(registry_tables.RegisteredModel,
                  registry_tables.RegisteredModel.id == registry_tables.ModelVersionRow.model_id)
            .where(registry_tables.ModelVersionRow.run_id.in_(sorted(related)),
                   registry_tables.ModelVersionRow.status != registry_tables.DELETED)
            .order_by(registry_tables.RegisteredModel.name, registry_tables.ModelVersionRow.version))
        models = [{"model": f"{n}@{v}", "run_id": r} for n, v, r in rows]
    note = None if direct else ("no run has recorded reading this dataset version yet (runs record it when a "
                                "pipeline stage lists its path as a dep)")
    return UsedBy(version, direct, models, note)


def diff_versions(objects: ObjectStore, a: DatasetVersion, b: DatasetVersion) -> dict[str, Any]:
    """Schema changes, row counts and per-column distribution shift between two versions."""
    from shipyard.data.drift import compare_profiles

    cols_a = {c["name"]: c["dtype"] for c in a.column_list()}
    cols_b = {c["name"]: c["dtype"] for c in b.column_list()}
    schema_changes = []
    for name in cols_a:
        if name not in cols_b:
            schema_changes.append({"column": name, "change": "removed", "from": cols_a[name], "to": None})
        elif cols_a[name] != cols_b[name]:
            schema_changes.append({"column": name, "change": "dtype", "from": cols_a[name], "to": cols_b[name]})
    for name in cols_b:
        if name not in cols_a:
            schema_changes.append({"column": name, "change": "added", "from": None, "to": cols_b[name]})
    shift = [c.to_dict() for c in compare_profiles(load_profile(objects, a), load_profile(objects, b))]
    return {"from": a.ref, "to": b.ref, "same_content": a.oid == b.oid,
            "rows": {"from": a.rows, "to": b.rows, "change": b.rows - a.rows},
            "schema_changes": schema_changes, "columns": shift}
