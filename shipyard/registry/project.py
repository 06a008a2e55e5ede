"""Registering a model from a project: package it, capture signature and profile, link the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.config import ModelSection
from shipyard.errors import ConfigError, InputError, did_you_mean
from shipyard.hashing import hash_file
from shipyard.registry.core import ModelVersion, register, validate_name


def training_profile(frame: Any) -> dict[str, Any] | None:
    """The reference profile of the training data (the data service computes it)."""
    import polars as pl

    from shipyard.data.profile import profile_frame

    pl_frame = frame if isinstance(frame, pl.DataFrame) else pl.from_pandas(frame)
    return profile_frame(pl_frame).to_dict()


def read_table(root: Path, rel: str, key: str) -> Any:
    from shipyard.project import resolve_inside

    path = resolve_inside(root, rel, key)
    if not path.exists():
        raise ConfigError(f"{key} {rel} does not exist", hint="run the pipeline first (shipyard run)")
    import pandas as pd

    try:
        if path.is_dir() or path.suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        return pd.read_csv(path)
    except Exception as exc:
        raise InputError(f"cannot read {key} {rel}: {exc}") from exc


def producing_run(session: Any, file_oid: str, model_path: str) -> str | None:
    """The run that produced the model: the newest that logged this exact file (same content
    hash) as an artifact; else the newest logging something under ``model_path``."""
    from shipyard.store.runs import Artifact, Run

    found = session.scalar(select(Run.id).join(Artifact, Artifact.run_id == Run.id)
                           .where(Artifact.oid == file_oid).order_by(Run.start_time.desc()).limit(1))
    if found:
        return found
    prefix = model_path.rstrip("/")
    return session.scalar(select(Run.id).join(Artifact, Artifact.run_id == Run.id)
                          .where(Artifact.path.startswith(prefix)).order_by(Run.start_time.desc()).limit(1))


def register_from_project(store: Any, objects: Any, root: Path, name: str, path: str, *,
                          flavor: str | None = None, model_cfg: ModelSection | None = None,
                          run_id: str | None = None, find_run: bool = True, trust: bool = False,
                          description: str | None = None, tags: dict[str, str] | None = None) -> tuple[ModelVersion, list[str]]:
    """Package the model at ``path`` and register it; returns the version and notes for the user."""
    from shipyard.models import package_model
    from shipyard.project import resolve_inside

    validate_name(name)
    notes: list[str] = []
    model_path = resolve_inside(root, path, "--path")
    flavor = flavor or (model_cfg.flavor if model_cfg else "sklearn")
    sample = classes = profile = None
    lineage: dict[str, Any] = {"path": path}
    if model_cfg and model_cfg.train:
        train = read_table(root, model_cfg.train, "model.train")
        target = model_cfg.target
        if target and target not in train.columns:
            raise ConfigError(f"model.target {target!r} is not a column of {model_cfg.train}",
                              hint=did_you_mean(target, map(str, train.columns)))
        features = model_cfg.features or [c for c in train.columns if c != target]
        missing = [f for f in features if f not in train.columns]
        if missing:
            raise ConfigError(f"model.features names {missing[0]!r}, which is not a column of {model_cfg.train}",
                              hint=did_you_mean(missing[0], map(str, train.columns)))
        sample = train[features]
        if target:
            classes = None if train[target].dtype.kind in "fc" else sorted(train[target].dropna().unique().tolist())
        profile = training_profile(train[[*features, *([target] if target else [])]])
        lineage["train"] = {"path": model_cfg.train, "oid": _oid(root, model_cfg.train), "rows": len(train)}
        if model_cfg.eval:
            lineage["eval"] = {"path": model_cfg.eval, "oid": _oid(root, model_cfg.eval)}
    else:
        notes.append("no model.train in shipyard.yaml: no signature or reference profile captured")
    packaged = package_model(objects, model_path, flavor, trust=trust, sample=sample, classes=classes)
    profile_oid = None
    if profile is not None:
        profile_oid = objects.put_bytes(json.dumps(profile, sort_keys=True).encode())
    with store.write() as session:
        if run_id is None and find_run:
            run_id = producing_run(session, packaged.file_oid, path)
            if run_id:
                notes.append(f"linked run {run_id} (the run that produced this {packaged.file}); pass --run to choose")
            else:
                notes.append("no run logged this model file: none linked (pass --run RUN to link one)")
        mv = register(session, name, model_oid=packaged.model_oid, flavor=flavor, run_id=run_id, source=path,
                      signature=packaged.signature, profile=profile, profile_oid=profile_oid, lineage=lineage,
                      description=description, size_bytes=packaged.size_bytes, trusted=packaged.trusted, tags=tags)
    return mv, notes


def _oid(root: Path, rel: str) -> str:
    path = root / rel
    if path.is_dir():
        from shipyard.hashing import Hasher

        return Hasher(root).manifest(rel).oid
    return hash_file(path)
