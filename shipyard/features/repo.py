"""The Feast adapter: read a feature repository's definitions, and open its FeatureStore.

This is the only module that imports Feast (STYLE.md C1: adapters catch third-party errors and
re-raise ours). The definitions Shipyard needs (each view's join keys, features, TTL, batch source
and a hash of its definition) are plain data in ``ViewDef``; they are cached in the project's state
folder, keyed by the size and mtime of every file of the repository, so ``shipyard status`` and a
no-op ``shipyard run`` of a project with feature stages do not import Feast either (8-10 s).
"""

from __future__ import annotations

import json
import os
import runpy
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import xxhash

from shipyard.errors import ConfigError, InputError, NotFound, did_you_mean, require_extra

STORE_FILE = "feature_store.yaml"
CACHE_VERSION = 1


@dataclass(frozen=True)
class ViewDef:
    """One batch feature view, as plain data."""

    name: str
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    ttl_s: float  # 0: no limit (Feast's convention)
    source: str  # absolute path of the batch source (a Parquet file or folder)
    timestamp_field: str
    created_field: str | None
    field_mapping: tuple[tuple[str, str], ...]
    definition: str  # xxh3 of the view's and its entities' definitions (Feast protos, deterministic)


@dataclass(frozen=True)
class RepoDefinitions:
    """Every batch feature view of one Feast repository, by name."""

    repo: Path
    project: str
    views: dict[str, ViewDef]

    def view(self, name: str) -> ViewDef:
        if name not in self.views:
            hint = did_you_mean(name, self.views) or ""
            raise NotFound(f"feature view {name!r} is not defined in {self.repo} {hint}".strip(),
                           hint="list the views with 'shipyard features list'")
        return self.views[name]

    def resolve(self, refs: list[str] | tuple[str, ...]) -> list[tuple[ViewDef, list[str]]]:
        """``["view:feat", ...]`` -> [(view, [features])], each ref checked against the definitions."""
        grouped: dict[str, list[str]] = {}
        for ref in refs:
            view_name, _, feature = ref.partition(":")
            view = self.view(view_name)
            if feature not in view.features:
                hint = did_you_mean(feature, view.features) or ""
                raise NotFound(f"feature {ref!r}: view {view_name!r} has no feature {feature!r} {hint}".strip(),
                               hint=f"its features: {', '.join(view.features)}")
            grouped.setdefault(view_name, []).append(feature)
        return [(self.views[name], feats) for name, feats in grouped.items()]


def repo_files(repo: Path) -> list[Path]:
    """The files whose content defines the repository: feature_store.yaml and every .py file."""
    skip = {".git", ".venv", "__pycache__", ".ipynb_checkpoints", "data"}
    files = [repo / STORE_FILE]
    for folder, dirs, names in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in skip and not d.startswith("."))
        files += [Path(folder) / n for n in sorted(names) if n.endswith(".py")]
    return files


def _stamp(repo: Path) -> dict[str, list[int]]:
    stamp = {}
    for path in repo_files(repo):
        st = path.stat()
        stamp[str(path.relative_to(repo))] = [st.st_size, st.st_mtime_ns]
    return stamp


def check_repo(repo: Path) -> Path:
    """The repository folder, or an error naming what is missing."""
    if not (repo / STORE_FILE).is_file():
        raise ConfigError(f"features.repo: {repo} has no {STORE_FILE}",
                          hint="point features: at the folder of your Feast repository (feast init makes one)")
    return repo


def definitions(repo: Path, cache_dir: Path | None = None) -> RepoDefinitions:
    """The repository's views, from the cache when no file of the repository changed."""
    repo = check_repo(Path(repo).resolve())
    stamp = _stamp(repo)
    cache = cache_dir / f"definitions-{xxhash.xxh3_64_hexdigest(str(repo).encode())}.json" if cache_dir else None
    if cache is not None:
        try:
            data = json.loads(cache.read_text())
            if data.get("v") == CACHE_VERSION and data.get("stamp") == stamp:
                return _from_json(repo, data)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    defs = load_definitions(repo)
    if cache is not None:
        data = {"v": CACHE_VERSION, "stamp": stamp, "project": defs.project,
                "views": {n: asdict(v) for n, v in defs.views.items()}}
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, cache)
    return defs


def _from_json(repo: Path, data: dict[str, Any]) -> RepoDefinitions:
    views = {}
    for name, v in data["views"].items():
        views[name] = ViewDef(**{**v, "join_keys": tuple(v["join_keys"]), "features": tuple(v["features"]),
                                 "field_mapping": tuple(tuple(p) for p in v["field_mapping"])})
    return RepoDefinitions(repo, data["project"], views)


def _project_name(repo: Path) -> str:
    import yaml

    try:
        doc = yaml.safe_load((repo / STORE_FILE).read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{repo / STORE_FILE}: not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not doc.get("project"):
        raise ConfigError(f"{repo / STORE_FILE}: 'project' is missing", hint="feature_store.yaml needs project: NAME")
    return str(doc["project"])


def _objects_of(repo: Path) -> list[Any]:
    """Every object defined at the top level of the repository's Python files (run afresh each call,
    so a definition edited since the last call is seen: importlib would serve the old module)."""
    found: list[Any] = []
    sys.path.insert(0, str(repo))
    try:
        for path in repo_files(repo)[1:]:
            try:
                found += list(runpy.run_path(str(path), run_name=f"shipyard_feature_repo.{path.stem}").values())
            except Exception as exc:  # the user's definition file failed: say which one
                raise ConfigError(f"{path}: the feature definitions failed to load: {type(exc).__name__}: {exc}",
                                  hint="run the file with python to see the full error") from exc
    finally:
        sys.path.remove(str(repo))
    return found


def load_definitions(repo: Path) -> RepoDefinitions:
    """Import Feast and read the repository's feature views (no registry, no ``feast apply`` needed)."""
    require_extra("feast", "feast")
    from feast import Entity, FeatureView, FileSource

    project = _project_name(repo)
    objects = _objects_of(repo)
    entities = {e.name: e for e in objects if isinstance(e, Entity)}
    views: dict[str, ViewDef] = {}
    for fv in (o for o in objects if isinstance(o, FeatureView)):
        source = fv.batch_source
        if not isinstance(source, FileSource):
            raise ConfigError(f"feature view {fv.name!r}: its source is a {type(source).__name__}; Shipyard's "
                              "point-in-time retrieval reads FileSource (Parquet) sources",
                              hint="define the view over a FileSource, or retrieve with Feast directly")
        keys = []
        for name in fv.entities:
            if name not in entities:
                raise ConfigError(f"feature view {fv.name!r}: entity {name!r} is not defined in {repo}")
            keys.append(entities[name].join_key)
        digest = xxhash.xxh3_128()
        spec = fv.to_proto().spec
        spec.batch_source.ClearField("meta")  # when the object was built, not what it is
        digest.update(spec.SerializeToString(deterministic=True))
        for name in sorted(fv.entities):
            digest.update(entities[name].to_proto().spec.SerializeToString(deterministic=True))
        path = Path(source.path)
        views[fv.name] = ViewDef(
            name=fv.name, join_keys=tuple(keys), features=tuple(f.name for f in fv.features),
            ttl_s=fv.ttl.total_seconds() if fv.ttl else 0.0,
            source=str(path if path.is_absolute() else (repo / path).resolve()),
            timestamp_field=source.timestamp_field, created_field=source.created_timestamp_column or None,
            field_mapping=tuple(sorted((source.field_mapping or {}).items())),
            definition=f"xxh128:{digest.hexdigest()}")
    return RepoDefinitions(repo, project, dict(sorted(views.items())))


def open_store(repo: Path) -> Any:
    """Feast's FeatureStore over the repository, with every definition applied to its registry
    (what ``feast apply`` does), so materialize and online reads see the current definitions."""
    require_extra("feast", "feast")
    from feast import FeatureStore

    repo = check_repo(Path(repo).resolve())
    try:
        store = FeatureStore(repo_path=str(repo))
    except Exception as exc:
        raise ConfigError(f"{repo / STORE_FILE}: Feast could not open the store: {exc}") from exc
    objects = definition_objects(repo)
    if not objects:
        raise InputError(f"{repo}: no Entity or FeatureView is defined in its Python files")
    store.apply(objects)
    return store


def definition_objects(repo: Path) -> list[Any]:
    """The repository's Entity and FeatureView objects, one per kind and name (a file that imports
    another's objects sees them again)."""
    require_extra("feast", "feast")
    from feast import Entity, FeatureView

    return list({(type(o).__name__, o.name): o for o in _objects_of(repo) if isinstance(o, Entity | FeatureView)}.values())
