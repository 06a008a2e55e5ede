"""``shipyard.lock``: what each stage last ran with and produced, as deterministic YAML.

Like dvc.lock: one entry per stage (sorted by name) with the resolved command, its fingerprint, deps
and outs sorted by path with their content ids, the params values it read and the environment. Users
commit it; it diffs line by line. It is rewritten atomically (temporary file + rename) after each
stage that succeeds, so a runner killed at any point leaves either the old or the new entry.

Reading it is on the path of every ``status`` and no-op ``run``, so the parsed form is remembered in
``.shipyard/pipeline/lock.bin`` keyed by the lock file's stat (no YAML parser needed when unchanged).
"""

from __future__ import annotations

import marshal
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError
from shipyard.pipeline.fingerprint import FORMAT_VERSION, Inputs, normalize_cmd
from shipyard.pipeline.hashcache import PathHash

LOCK_NAME = "shipyard.lock"
SCHEMA = "shipyard-lock/1"
HEADER = "# Written by 'shipyard run': what each stage ran with and produced. Commit it; do not edit.\n"
RACY_NS = 1_000_000_000


def _stat(path: Path) -> list[int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino]


def _hash_entry(path: str, found: PathHash | None, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": path, "hash": found.oid if found else None, "size": found.size if found else None}
    if found is not None and found.nfiles is not None:
        entry["nfiles"] = found.nfiles
    if extra:
        entry.update(extra)
    return entry


def make_entry(inputs: Inputs, deps: Mapping[str, PathHash | None], outs: Mapping[str, PathHash],
               out_flags: Mapping[str, tuple[bool, bool]], cmd: tuple[str, ...]) -> dict[str, Any]:
    """The lock entry of a stage that just succeeded (or was restored); ``cmd`` as written."""
    entry: dict[str, Any] = {"cmd": cmd[0] if len(cmd) == 1 else list(cmd), "fingerprint": inputs.fingerprint,
                             "format": FORMAT_VERSION}
    if inputs.wdir != ".":
        entry["wdir"] = inputs.wdir
    if deps:
        entry["deps"] = [_hash_entry(p, deps.get(p)) for p in sorted(deps)]
    if inputs.params:
        entry["params"] = {f: dict(v) for f, v in inputs.params.items()}
    entry["env"] = dict(sorted(inputs.env.items()))
    if inputs.stage_env:
        entry["stage_env"] = dict(sorted(inputs.stage_env.items()))
    if inputs.features is not None:
        entry["features"] = dict(inputs.features)
    if inputs.environment is not None:
        entry["environment"] = inputs.environment
    if outs:
        rows = []
        for path in sorted(outs):
            cache, persist = out_flags.get(path, (True, False))
            flags = {**({"cache": False} if not cache else {}), **({"persist": True} if persist else {})}
            rows.append(_hash_entry(path, outs[path], flags))
        entry["outs"] = rows
    return entry


def document_of(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint input document recorded by a lock entry (for ``explain``)."""
    return {
        "format": entry.get("format"), "cmd": _normalized(entry.get("cmd")), "wdir": entry.get("wdir", "."),
        "deps": {d["path"]: d.get("hash") for d in entry.get("deps") or []},
        "params": entry.get("params") or {}, "env": entry.get("env") or {}, "stage_env": entry.get("stage_env") or {},
        "outs": sorted([o["path"], o.get("cache", True), o.get("persist", False)] for o in entry.get("outs") or []),
        **({"features": entry["features"]} if entry.get("features") is not None else {}),
        **({"environment": entry["environment"]} if entry.get("environment") is not None else {}),
    }


def _normalized(cmd: Any) -> str | None:
    if cmd is None:
        return None
    return normalize_cmd(cmd if isinstance(cmd, list) else [str(cmd)])


def _parse(path: Path) -> Any:
    """The lock file's YAML with the C loader; only a malformed file pays for ``load_yaml``, which
    parses twice to keep positions for its message."""
    import yaml

    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, UnicodeDecodeError):
        from shipyard.yaml_positions import load_yaml

        return load_yaml(path).data  # raises ConfigError with the file, line and column
    return {} if data is None else data


class Lockfile:
    """The lock file of a project, read once and rewritten per finished stage."""

    def __init__(self, root: Path, state_dir: Path | None) -> None:
        self.path = Path(root) / LOCK_NAME
        self.cache_path = state_dir / "pipeline" / "lock.bin" if state_dir is not None else None
        self.stages: dict[str, dict[str, Any]] = self._read()

    def _read(self) -> dict[str, dict[str, Any]]:
        stat = _stat(self.path)
        if stat is None:
            return {}
        if self.cache_path is not None:
            try:
                cached = marshal.loads(self.cache_path.read_bytes())
                if cached.get("stat") == stat and cached.get("path") == str(self.path):
                    return cached["stages"]
            except (OSError, ValueError, EOFError, TypeError, AttributeError):
                pass
        data = _parse(self.path)
        if not isinstance(data, Mapping) or not isinstance(data.get("stages", {}), Mapping):
            raise ConfigError(f"{LOCK_NAME}: expected 'schema' and a 'stages' mapping",
                              hint=f"delete {LOCK_NAME}; the next 'shipyard run' rewrites it (stages rerun or restore)")
        if data.get("schema") not in (SCHEMA, None):
            raise ConfigError(f"{LOCK_NAME}: schema {data.get('schema')!r} is not {SCHEMA!r}",
                              hint="upgrade Shipyard, or delete the lock file to start over")
        stages = {str(k): dict(v) for k, v in (data.get("stages") or {}).items() if isinstance(v, Mapping)}
        self._remember(stat, stages)
        return stages

    def _remember(self, stat: list[int] | None, stages: dict[str, dict[str, Any]]) -> None:
        if self.cache_path is None or stat is None or stat[1] >= time.time_ns() - RACY_NS:
            return
        try:
            self.cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.cache_path.with_name(f".lock.{os.getpid()}.tmp")
            tmp.write_bytes(marshal.dumps({"stat": stat, "path": str(self.path), "stages": stages}))
            os.replace(tmp, self.cache_path)
        except (OSError, ValueError):
            return

    def get(self, name: str) -> dict[str, Any] | None:
        return self.stages.get(name)

    def render(self, keep: set[str] | None = None) -> str:
        import yaml

        stages = {name: self.stages[name] for name in sorted(self.stages) if keep is None or name in keep}
        class Dumper(yaml.SafeDumper):
            def ignore_aliases(self, data: Any) -> bool:  # no &id001 anchors: every value written out
                return True

        body = yaml.dump({"schema": SCHEMA, "stages": stages}, Dumper=Dumper, sort_keys=False,
                         default_flow_style=False, width=1000, allow_unicode=True)
        return HEADER + body

    def update(self, name: str, entry: dict[str, Any], keep: set[str] | None = None) -> None:
        """Record one stage's entry and rewrite the file atomically (stages not in ``keep`` are dropped)."""
        self.stages[name] = entry
        if keep is not None:
            for stale in [n for n in self.stages if n not in keep]:
                del self.stages[stale]
        text = self.render()
        tmp = self.path.with_name(f".{LOCK_NAME}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
