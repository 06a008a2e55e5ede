"""Registering a model from a project: package it, capture signature and profile, link the run.

One version per model content: the identity of a model is the content hash of its model file (the
file the flavor packages, ``PackagedModel.file_oid``). Registering a file whose content is already
a version of that name returns that version (``Registration.created`` is False) instead of
numbering a new one; ``new=True`` (``shipyard models register --new``) forces a new version.
The check runs before packaging, so an unchanged model costs one file hash and one query.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from shipyard.config import ModelSection
from shipyard.errors import ConfigError, InputError, did_you_mean
from shipyard.hashing import hash_file
from shipyard.registry.core import (
    ModelVersion,
    register,
    tag_version,
    validate_name,
    version_with_content,
)
from shipyard.registry.lineage import FEATURES_TAG


@dataclass(frozen=True)
class Registration:
    """What registering did: the version that holds the model, whether it is new, notes for the user."""

    version: ModelVersion
    created: bool
    notes: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        """One line for the user: ``registered NAME@N`` or ``model unchanged: already NAME@N``."""
        if self.created:
            return f"registered {self.version.ref}"
        return f"model unchanged: already {self.version.ref}"

    def to_dict(self) -> dict[str, Any]:
        return {**self.version.to_dict(), "created": self.created, "notes": list(self.notes)}


def model_content_oid(model_path: Path, flavor: str) -> str:
    """The content hash of the model file the flavor would package from ``model_path``."""
    from shipyard.models.flavors import get_flavor

    return hash_file(get_flavor(flavor).find_file(model_path))


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
                          description: str | None = None, tags: dict[str, str] | None = None,
                          new: bool = False) -> Registration:
    """Register the model at ``path`` as a version of ``name``, once per content.

    When a version of ``name`` already holds this model file (same content hash and flavor), that
    version is returned with ``created=False`` and ``tags`` are added to it; nothing is packaged.
    Otherwise (or with ``new=True``) the model is packaged, its signature and training-data profile
    captured, and the next version created.
    """
    from shipyard.project import resolve_inside

    validate_name(name)
    model_path = resolve_inside(root, path, "--path")
    flavor = flavor or (model_cfg.flavor if model_cfg else "sklearn")
    if not new:
        content_oid = model_content_oid(model_path, flavor)
        with (store.write() if tags else store.read()) as session:  # tags of a reused version are written
            existing = version_with_content(session, name, content_oid, flavor)
            if existing is not None:
                return _unchanged(session, existing, tags)
    return _register_new(store, objects, root, name, path, model_path, flavor, model_cfg=model_cfg, run_id=run_id,
                         find_run=find_run, trust=trust, description=description, tags=tags, new=new)


def _unchanged(session: Any, existing: ModelVersion, tags: dict[str, str] | None) -> Registration:
    """The existing version holding this content, with ``tags`` added to it."""
    if tags:
        existing = tag_version(session, existing.ref, tags)
    note = (f"{existing.ref} already holds this model file ({existing.content_oid}); "
            "pass --new to register it again as a new version")
    return Registration(existing, created=False, notes=(note,))


def _register_new(store: Any, objects: Any, root: Path, name: str, path: str, model_path: Path, flavor: str, *,
                  model_cfg: ModelSection | None, run_id: str | None, find_run: bool, trust: bool,
                  description: str | None, tags: dict[str, str] | None, new: bool) -> Registration:
    """Package the model, capture signature and profile, and create the next version."""
    from shipyard.models.flavors import get_flavor
    from shipyard.supply.registration import at_registration, project_settings

    notes: list[str] = []
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
    settings = project_settings(root)
    record = settings.scan == "record"
    # under record, a trusted file whose scan finds problems is stored untrusted and never
    # loaded: the version is registered with its findings, and its scan gate fails it
    packaged = get_flavor(flavor).package(objects, model_path, trust=trust, sample=sample, classes=classes,
                                          untrusted_ok=record and trust)
    from shipyard.models.flavors.pyfunc import registration_settings

    # a python_function package is scanned with its flavor's allow-list (as over MLflow's REST API)
    model_oid, lineage["supply"] = at_registration(objects, packaged.model_oid, flavor,
                                                   registration_settings(settings, objects, packaged),
                                                   root=root, target=f"{name} ({path})")
    recorded = None
    if sample is not None:
        from shipyard.supply.governance import classify_columns

        recorded = classify_columns(sample, settings.classified)
    profile_oid = None
    if profile is not None:
        profile_oid = objects.put_bytes(json.dumps(profile, sort_keys=True).encode())
    with store.write() as session:
        # checked again inside the write: another process may have registered it meanwhile
        existing = None if new else version_with_content(session, name, packaged.file_oid, flavor)
        if existing is not None:
            return _unchanged(session, existing, tags)
        if run_id is None and find_run:
            run_id = producing_run(session, packaged.file_oid, path)
            if run_id:
                notes.append(f"linked run {run_id} (the run that produced this {packaged.file}); pass --run to choose")
            else:
                notes.append("no run logged this model file: none linked (pass --run RUN to link one)")
        _classify(session, lineage, run_id, recorded, None if sample is None else list(sample.columns))
        mv = register(session, name, model_oid=model_oid, content_oid=packaged.file_oid, flavor=flavor,
                      run_id=run_id, source=path,
                      signature=packaged.signature, profile=profile, profile_oid=profile_oid, lineage=lineage,
                      description=description, size_bytes=packaged.size_bytes, trusted=packaged.trusted, tags=tags)
    return Registration(mv, created=True, notes=tuple(notes))


def _classify(session: Any, lineage: dict[str, Any], run_id: str | None, recorded: dict[str, list[str]] | None,
              features: list[str] | None) -> None:
    """``lineage.supply.classified``: the training features' classes (``recorded``, from the PII scan
    of ``model.train`` and ``supply.classified``) with those of the dataset versions reached through
    lineage (what the run read, the ``model.train`` file as a dataset version)."""
    from shipyard.supply.governance import training_classification, training_files

    found, datasets = training_classification(session, run_id, features, recorded, training_files(lineage))
    if recorded is not None or datasets:
        lineage["supply"]["classified"] = found
        if datasets:
            lineage["supply"]["classified_from"] = datasets


def _oid(root: Path, rel: str) -> str:
    path = root / rel
    if path.is_dir():
        from shipyard.hashing import Hasher

        return Hasher(root).manifest(rel).oid
    return hash_file(path)


def register_after_run(store: Any, objects: Any, root: Path, model_cfg: ModelSection, pipeline_run_id: str | None,
                       stage: str) -> tuple[Registration, str | None]:
    """What ``shipyard run`` does after ``stage`` (which writes ``model.path``) ran or was restored:
    register the model once per content, linking the stage's run. Returns the registration and
    that run's id (None when the pipeline run recorded no run for the stage)."""
    from shipyard.store.runs import Run, Tag

    run_id = tags = None
    if pipeline_run_id is not None:
        with store.read() as session:
            run_id = session.scalar(select(Run.id).where(Run.parent_run_id == pipeline_run_id, Run.name == stage)
                                    .order_by(Run.start_time.desc()).limit(1))
            # a model trained on feature views records them: refs, definitions, entity keys
            features = run_id and session.scalar(select(Tag.value).where(Tag.run_id == run_id, Tag.key == FEATURES_TAG))
        tags = {FEATURES_TAG: features} if features else None
    result = register_from_project(store, objects, root, model_cfg.name, model_cfg.path, model_cfg=model_cfg,
                                   run_id=run_id, find_run=run_id is None, tags=tags)
    return result, run_id
