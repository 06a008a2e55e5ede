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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, NotFound
from shipyard.pipeline.dag import DEFAULT_PARAMS, Dag, StageSpec, expand, resolve

PARSE_VERSION = 2
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
    from shipyard.config import load_yaml

    if not path.exists():
        raise ConfigError(f"params file {path.name} does not exist",
                          hint=f"create {path} or remove the params entry that names it")
    loaded = load_yaml(path)
    if not isinstance(loaded.data, Mapping):
        raise ConfigError(f"{loaded.where(())}: params must be a mapping of names to values")
    return dict(loaded.data)


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
    return LoadedPipeline(dag, data["params"], data["source"], data["executor"], tuple(data["environment"]))


def _to_cache(root: Path, state_dir: Path, loaded: LoadedPipeline, files: dict[str, list[int] | None]) -> None:
    now = time.time_ns()
    if any(stat is not None and stat[1] >= now - RACY_NS for stat in files.values()):
        return
    data = {
        "v": PARSE_VERSION, "root": str(root), "files": files, "source": loaded.source, "executor": loaded.executor,
        "environment": list(loaded.environment), "params": {k: dict(v) for k, v in loaded.params.items()},
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
        loaded = _load_shipyard(root, files)
    elif (root / DVC_NAME).is_file():
        from shipyard.pipeline.dvc import load_dvc

        loaded = load_dvc(root, files)
    else:
        raise NotFound(f"no {CONFIG_NAME} or {DVC_NAME} in {root}", hint="run 'shipyard init' and add stages")
    if use_cache:
        _to_cache(root, state_dir, loaded, files.stats)
    return loaded


def _load_shipyard(root: Path, files: _Files) -> LoadedPipeline:
    from pydantic import ValidationError

    from shipyard.config import Stage, explain_validation, load_config, load_yaml

    files.track(CONFIG_NAME)
    config = load_config(root / CONFIG_NAME)
    positions = None

    def where(loc: tuple[str | int, ...]) -> str:
        nonlocal positions
        if positions is None:
            positions = load_yaml(root / CONFIG_NAME)
        return positions.where(loc)

    context = files.optional(DEFAULT_PARAMS)
    specs: list[StageSpec] = []
    for origin, stage in config.pipeline.stages.items():
        raw = stage.model_dump(exclude_none=True, exclude_defaults=True)
        for name, body in expand(origin, raw, context, where):
            try:
                checked = Stage.model_validate(body).model_dump(exclude_none=True)
            except ValidationError as exc:
                loaded_yaml = load_yaml(root / CONFIG_NAME)
                raise ConfigError(f"stage {name}: " + explain_validation(exc, loaded_yaml, Stage)) from None
            specs.append(resolve(name, origin, checked, files.params, where))
    dag = Dag.build(specs, where)
    params = {rel: files.values[rel] for s in specs for rel in s.param_files}
    return LoadedPipeline(dag, params, CONFIG_NAME, config.pipeline.executor, tuple(config.pipeline.environment))


def build_from_raw(root: Path, files: _Files, raw_stages: Mapping[str, Mapping[str, Any]], context: Mapping[str, Any],
                   source: str) -> LoadedPipeline:
    """Stages given as plain dicts (the dvc.yaml adapter) -> LoadedPipeline, validated like ours."""
    from pydantic import ValidationError

    from shipyard.config import Stage

    def where(loc: tuple[str | int, ...]) -> str:
        parts = [str(p) for p in loc[2:3]]
        return f"{source}: stage {parts[0]}" if parts else source

    specs: list[StageSpec] = []
    for origin, raw in raw_stages.items():
        for name, body in expand(origin, raw, context, where):
            try:
                checked = Stage.model_validate(body).model_dump(exclude_none=True)
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                raise ConfigError(f"{source}: stage {name}: {loc}: {first['msg']}") from None
            specs.append(resolve(name, origin, checked, files.params, where))
    dag = Dag.build(specs, where)
    params = {rel: files.values[rel] for s in specs for rel in s.param_files}
    return LoadedPipeline(dag, params, source, "local", ())
