"""Reading the pipeline of a project: shipyard.yaml (or dvc.yaml) and params files -> a ``Dag``.

Validating shipyard.yaml needs pydantic, which costs more to import than a no-op ``shipyard run``
should take in total. So the resolved stages and the params values are remembered in
``.shipyard/pipeline/parsed.bin`` (``marshal``), keyed by the (size, mtime_ns, inode) of every file
that went into them; when none of those files changed, nothing is parsed or validated again. A file
modified within a second of being cached is not trusted (the racy-git rule, as in hashcache).
"""

from __future__ import annotations

import marshal
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, NotFound
from shipyard.pipeline.dag import DEFAULT_PARAMS, Dag, StageSpec, expand, resolve

PARSE_VERSION = 4  # 4: features_repo
RACY_NS = 1_000_000_000
CONFIG_NAME = "shipyard.yaml"
DVC_NAME = "dvc.yaml"


@dataclass(frozen=True)
class LoadedPipeline:
    """A project's pipeline: its graph, the params files it reads, and where it came from."""

    dag: Dag
    params: Mapping[str, Mapping[str, Any]]  # params file -> values
    source: str  # shipyard.yaml | dvc.yaml
    executor: str
    environment: tuple[str, ...]
    features_repo: str | None = None  # shipyard.yaml's features.repo (None: no features section)


def _stat(root: Path, rel: str) -> list[int] | None:
    try:
        st = os.stat(root / rel)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def read_params_file(path: Path) -> dict[str, Any]:
    """A params file (YAML, JSON or TOML) as a mapping; a missing file raises ConfigError."""
    if path.suffix == ".toml":
        import tomllib

        try:
            return tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"params file {path.name} does not exist", hint=f"create {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path.name}: malformed TOML: {exc}") from None
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"params file {path.name} does not exist",
                          hint=f"create {path} or remove the params entry that names it") from None
    try:
        data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        from shipyard.yaml_positions import load_yaml

        load_yaml(path)  # raises ConfigError with the file, line and column
        raise
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path.name}: params must be a mapping of names to values")
    return dict(data)


class _Files:
    """Params files read while resolving, each once, with the stats the cache is keyed on."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.values: dict[str, dict[str, Any]] = {}
        self.stats: dict[str, list[int] | None] = {}

    def track(self, rel: str) -> None:
        self.stats.setdefault(rel, _stat(self.root, rel))

    def params(self, rel: str) -> dict[str, Any]:
        if rel not in self.values:
            self.track(rel)
            self.values[rel] = read_params_file(self.root / rel)
        return self.values[rel]

    def optional(self, rel: str) -> dict[str, Any]:
        self.track(rel)
        if self.stats[rel] is None:
            return {}
        return self.params(rel)


def _cache_path(state_dir: Path) -> Path:
    return state_dir / "pipeline" / "parsed.bin"


def _from_cache(root: Path, state_dir: Path) -> LoadedPipeline | None:
    try:
        data = marshal.loads(_cache_path(state_dir).read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None
    if not isinstance(data, dict) or data.get("v") != PARSE_VERSION or data.get("root") != str(root):
        return None
    for rel, stat in data["files"].items():
        if _stat(root, rel) != stat:
            return None
    specs = [StageSpec.from_dict(d) for d in data["stages"]]
    dag = Dag(stages={s.name: s for s in specs}, upstream={k: tuple(v) for k, v in data["upstream"].items()},
              order=tuple(data["order"]), producers=data["producers"])
    return LoadedPipeline(dag, data["params"], data["source"], data["executor"], tuple(data["environment"]),
                          data["features_repo"])


def _to_cache(root: Path, state_dir: Path, loaded: LoadedPipeline, files: dict[str, list[int] | None]) -> None:
    now = time.time_ns()
    if any(stat is not None and stat[1] >= now - RACY_NS for stat in files.values()):
        return
    data = {
        "v": PARSE_VERSION, "root": str(root), "files": files, "source": loaded.source, "executor": loaded.executor,
        "environment": list(loaded.environment), "features_repo": loaded.features_repo, "params": {k: dict(v) for k, v in loaded.params.items()},
        "stages": [s.to_dict() for s in loaded.dag.stages.values()],
        "upstream": {k: list(v) for k, v in loaded.dag.upstream.items()}, "order": list(loaded.dag.order),
        "producers": dict(loaded.dag.producers),
    }
    path = _cache_path(state_dir)
    try:
        blob = marshal.dumps(data)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".parsed.{os.getpid()}.tmp")
        tmp.write_bytes(blob)
        os.replace(tmp, path)
    except (OSError, ValueError):
        return  # unmarshallable params (e.g. YAML dates) or a read-only folder: only costs speed


def load_pipeline(root: Path, state_dir: Path, *, use_cache: bool = True) -> LoadedPipeline:
    """The project's pipeline, from the parse cache when no input file changed."""
    root = Path(root)
    if use_cache:
        cached = _from_cache(root, state_dir)
        if cached is not None:
            return cached
    files = _Files(root)
    if (root / CONFIG_NAME).is_file():
        loaded = _load_shipyard(root, files, state_dir if use_cache else None)
    elif (root / DVC_NAME).is_file():
        loaded = _load_dvc(root, files, state_dir if use_cache else None)
    else:
        raise NotFound(f"no {CONFIG_NAME} or {DVC_NAME} in {root}", hint="run 'shipyard init' and add stages")
    if use_cache:
        _to_cache(root, state_dir, loaded, files.stats)
    return loaded


class _Position:
    """``file:line:col`` of a config key, worked out only when an error message is formatted."""

    __slots__ = ("fn", "loc")

    def __init__(self, fn: Any, loc: tuple[str | int, ...]) -> None:
        self.fn = fn
        self.loc = loc

    def __str__(self) -> str:
        return self.fn(self.loc)

    def __format__(self, spec: str) -> str:
        return format(str(self), spec)


def _validated_config(root: Path, state_dir: Path | None) -> dict[str, Any]:
    """shipyard.yaml's pipeline section, validated; remembered by the file's stat so that a change
    of params alone does not pay for pydantic again."""
    path = root / CONFIG_NAME
    stat = _stat(root, CONFIG_NAME)
    cache = state_dir / "pipeline" / "config.bin" if state_dir is not None else None
    if cache is not None:
        try:
            data = marshal.loads(cache.read_bytes())
            if data.get("v") == PARSE_VERSION and data.get("stat") == stat and data.get("path") == str(path):
                return data
        except (OSError, ValueError, EOFError, TypeError, AttributeError):
            pass
    from shipyard.config import load_config

    config = load_config(path)
    data = {"v": PARSE_VERSION, "stat": stat, "path": str(path),
            "stages": {k: v.model_dump(exclude_none=True, exclude_defaults=True) for k, v in config.pipeline.stages.items()},
            "executor": config.pipeline.executor, "environment": list(config.pipeline.environment),
            "features_repo": config.features.repo if config.features is not None else None}
    if cache is not None and stat is not None and stat[1] < time.time_ns() - RACY_NS:
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".config.{os.getpid()}.tmp")
            tmp.write_bytes(marshal.dumps(data))
            os.replace(tmp, cache)
        except (OSError, ValueError):
            pass
    return data


def _load_shipyard(root: Path, files: _Files, state_dir: Path | None = None) -> LoadedPipeline:
    files.track(CONFIG_NAME)
    config = _validated_config(root, state_dir)
    if not config["stages"] and (root / DVC_NAME).is_file():
        # A shipyard.yaml without stages (only model:, gates: ...) must not hide the dvc.yaml next to it.
        loaded = _load_dvc(root, files, state_dir)
        return replace(loaded, executor=config["executor"], environment=tuple(config["environment"]),
                       features_repo=config["features_repo"])
    positions = None

    def position(loc: tuple[str | int, ...]) -> str:
        from shipyard.yaml_positions import load_yaml

        nonlocal positions
        if positions is None:
            positions = load_yaml(root / CONFIG_NAME)
        return positions.where(loc)

    def where(loc: tuple[str | int, ...]) -> str:
        return _Position(position, loc)  # type: ignore[return-value]

    context = files.optional(DEFAULT_PARAMS)
    specs: list[StageSpec] = []
    for origin, raw in config["stages"].items():
        for name, body in expand(origin, raw, context, where):
            checked = body if body == raw else _revalidate(root, name, body)
            specs.append(resolve(name, origin, checked, files.params, where))
    dag = Dag.build(specs, where)
    params = {rel: files.values[rel] for s in specs for rel in s.param_files}
    return LoadedPipeline(dag, params, CONFIG_NAME, config["executor"], tuple(config["environment"]),
                          config["features_repo"])


def _revalidate(root: Path, name: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A stage body after templating or foreach expansion, validated like the config itself."""
    from pydantic import ValidationError

    from shipyard.config import Stage
    from shipyard.validation_errors import explain_validation
    from shipyard.yaml_positions import load_yaml

    try:
        return Stage.model_validate(body).model_dump(exclude_none=True)
    except ValidationError as exc:
        raise ConfigError(f"stage {name}: " + explain_validation(exc, load_yaml(root / CONFIG_NAME), Stage)) from None


def _validated_raw(raw_stages: Mapping[str, Mapping[str, Any]], source: str, state_dir: Path | None
                   ) -> dict[str, dict[str, Any]]:
    """The stages (as written, before templating) validated like shipyard.yaml's; remembered by
    their content in ``pipeline/raw.bin`` so that a params change does not import pydantic again."""
    cache = state_dir / "pipeline" / "raw.bin" if state_dir is not None else None
    if cache is not None:
        try:
            data = marshal.loads(cache.read_bytes())
            if data.get("v") == PARSE_VERSION and data.get("source") == source and data.get("raw") == raw_stages:
                return data["valid"]
        except (OSError, ValueError, EOFError, TypeError, AttributeError):
            pass
    valid = {origin: _validate_body(origin, body, source) for origin, body in raw_stages.items()}
    if cache is not None:
        try:
            blob = marshal.dumps({"v": PARSE_VERSION, "source": source, "raw": dict(raw_stages), "valid": valid})
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".raw.{os.getpid()}.tmp")
            tmp.write_bytes(blob)
            os.replace(tmp, cache)
        except (OSError, ValueError):
            pass  # unmarshallable values (e.g. YAML dates): only costs speed
    return valid


def _validate_body(name: str, body: Mapping[str, Any], source: str) -> dict[str, Any]:
    from pydantic import ValidationError

    from shipyard.config import Stage

    try:
        return Stage.model_validate(body).model_dump(exclude_none=True, exclude_defaults=True)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{source}: stage {name}: {loc}: {first['msg']}") from None


def build_from_raw(root: Path, files: _Files, raw_stages: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any],
                   source: str, state_dir: Path | None = None) -> LoadedPipeline:
    """Stages given as plain dicts (the dvc.yaml adapter) -> LoadedPipeline, validated like ours.

    Only a stage that templating or foreach expansion changed is validated again after expanding."""

    def where(loc: tuple[str | int, ...]) -> str:
        parts = [str(p) for p in loc[2:3]]
        return f"{source}: stage {parts[0]}" if parts else source

    specs: list[StageSpec] = []
    for origin, raw in _validated_raw(raw_stages, source, state_dir).items():
        for name, body in expand(origin, raw, context, where):
            checked = body if body == raw else _validate_body(name, body, source)
            specs.append(resolve(name, origin, checked, files.params, where))
    dag = Dag.build(specs, where)
    params = {rel: files.values[rel] for s in specs for rel in s.param_files}
    return LoadedPipeline(dag, params, source, "local", ())


def _load_dvc(root: Path, files: _Files, state_dir: Path | None = None) -> LoadedPipeline:
    """Run a dvc.yaml as our pipeline (``files`` tracks the params files; ``state_dir`` holds the
    cache of validated stages). Lives here, not in dvc.py, so that dvc.py does not import the loader."""
    from shipyard.pipeline.dvc import attach_reports, convert, read_doc

    files.track(DVC_NAME)
    doc = read_doc(root)
    raw, _dropped = convert(doc)
    context = dict(files.optional(DEFAULT_PARAMS))
    for entry in doc.get("vars") or []:
        if isinstance(entry, Mapping):
            context.update(entry)
        else:
            path, _, keys = str(entry).partition(":")
            values = files.params(path)
            if keys:
                values = {k: values[k] for k in keys.split(",") if k in values}
            context.update(values)
    loaded = build_from_raw(root, files, raw, context, DVC_NAME, state_dir)
    dag, _loose = attach_reports(loaded.dag, doc)
    return replace(loaded, dag=dag)
