"""A stage's identity: the one function that says whether two executions are interchangeable.

fingerprint = hash of a canonical JSON document of
  * the format version (``FORMAT_VERSION``: bump it and every stage runs again),
  * the normalized command (whitespace between arguments does not matter, quoting does),
  * the working folder, the stage's own ``env`` variables and its out paths (with cache/persist),
  * the *set* of deps with each one's content id (so removing a dep changes it, unlike DVC),
  * the values of the declared params,
  * the declared environment: the Python version and the hash of the project's lock file
    (uv.lock, poetry.lock, Pipfile.lock, requirements*.txt, environment.yml) by default, plus
    every ``pipeline.environment`` entry (a file path is hashed, ``env:NAME`` takes a variable).
Nothing else compares stages (STYLE.md B1).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import xxhash

from shipyard.pipeline.dag import StageSpec, _lookup
from shipyard.pipeline.hashcache import HashCache

FORMAT_VERSION = 1
DEFAULT_ENV_FILES = ("uv.lock", "poetry.lock", "Pipfile.lock", "requirements.txt", "requirements.lock",
                     "requirements-dev.txt", "environment.yml", "conda-lock.yml")


def normalize_cmd(cmd: Iterable[str]) -> str:
    """Each command line re-joined from its shell words; lines joined with newlines."""
    lines = []
    for line in (part for text in cmd for part in str(text).splitlines() if part.strip()):
        try:
            lines.append(shlex.join(shlex.split(line, posix=True)))
        except ValueError:  # unbalanced quotes: the shell will say so; keep whitespace-normalized text
            lines.append(" ".join(line.split()))
    return "\n".join(lines)


def environment(root: Path, declared: Iterable[str], hashes: HashCache) -> dict[str, str]:
    """The environment part of every stage's fingerprint."""
    env = {"python": "{}.{}.{}".format(*sys.version_info[:3])}
    for name in DEFAULT_ENV_FILES:
        if os.path.isfile(root / name):
            env[name] = hashes.hash_path(name).oid
    for entry in declared:
        if entry.startswith("env:"):
            var = entry[4:]
            env[entry] = os.environ.get(var, "<unset>")
        else:
            rel = entry.strip().rstrip("/")
            try:
                env[rel] = hashes.hash_path(rel).oid
            except FileNotFoundError:
                env[rel] = "<missing>"
    return env


def params_values(stage: StageSpec, params: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{params file: {key: value}} for the keys the stage declares (every top-level key for a whole file)."""
    out: dict[str, dict[str, Any]] = {}
    for dep in stage.params:
        values = params.get(dep.file, {})
        bucket = out.setdefault(dep.file, {})
        if dep.key is None:
            bucket.update(values)
        else:
            try:
                bucket[dep.key] = _lookup(values, dep.key)
            except KeyError:
                bucket[dep.key] = "<missing>"
    return {f: dict(sorted(v.items())) for f, v in sorted(out.items())}


@dataclass(frozen=True)
class Inputs:
    """Everything a stage's result depends on, in canonical form."""

    cmd: str
    wdir: str
    deps: Mapping[str, str | None]  # path -> content id (None: missing)
    params: Mapping[str, Mapping[str, Any]]
    env: Mapping[str, str]
    stage_env: Mapping[str, str]
    outs: tuple[tuple[str, bool, bool], ...]
    # a stage that reads features: refs, view definition hashes, source content ids (features/stage.py)
    features: Mapping[str, Any] | None = None
    # a stage with its own Python environment: its resolved lock's hash (shipyard.pipeline.envs)
    environment: str | None = None

    def document(self) -> dict[str, Any]:
        doc = {
            "format": FORMAT_VERSION, "cmd": self.cmd, "wdir": self.wdir, "deps": dict(sorted(self.deps.items())),
            "params": self.params, "env": dict(sorted(self.env.items())), "stage_env": dict(sorted(self.stage_env.items())),
            "outs": sorted([list(o) for o in self.outs]),
        }
        if self.features is not None:  # absent otherwise: every other stage keeps its fingerprint
            doc["features"] = self.features
        if self.environment is not None:  # likewise
            doc["environment"] = self.environment
        return doc

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.document())


def fingerprint_of(document: Mapping[str, Any]) -> str:
    blob = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"xxh128:{xxhash.xxh3_128_hexdigest(blob.encode())}"


def stage_inputs(stage: StageSpec, dep_ids: Mapping[str, str | None], params: Mapping[str, Mapping[str, Any]],
                 env: Mapping[str, str], features: Mapping[str, Any] | None = None,
                 environment: str | None = None) -> Inputs:
    return Inputs(
        cmd=normalize_cmd(stage.cmd), wdir=stage.wdir, deps={d: dep_ids.get(d) for d in stage.deps},
        params=params_values(stage, params), env=env, stage_env=dict(stage.env),
        outs=tuple((o.path, o.cache, o.persist) for o in stage.outs), features=features, environment=environment,
    )


@dataclass(frozen=True)
class Change:
    """One input that differs from the last recorded run: what, and old and new value."""

    kind: str  # cmd | dep | params | env | stage_env | wdir | outs | format | features
    name: str
    old: Any
    new: Any

    def describe(self) -> str:
        if self.old is None:
            return f"{self.kind} {self.name}: added ({_short(self.new)})"
        if self.new is None:
            return f"{self.kind} {self.name}: removed (was {_short(self.old)})"
        return f"{self.kind} {self.name}: {_short(self.old)} -> {_short(self.new)}"


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Change]:
    """What changed between two input documents (the lock's recorded one and today's)."""
    changes: list[Change] = []
    if old.get("format") != new.get("format"):
        changes.append(Change("format", "version", old.get("format"), new.get("format")))
    for key in ("cmd", "wdir"):
        if old.get(key) != new.get(key):
            changes.append(Change(key, key, old.get(key), new.get(key)))
    for kind in ("deps", "env", "stage_env"):
        a, b = old.get(kind) or {}, new.get(kind) or {}
        label = "dep" if kind == "deps" else kind
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name) or (name in a) != (name in b):
                changes.append(Change(label, name, a.get(name), b.get(name)))
    a_params, b_params = old.get("params") or {}, new.get("params") or {}
    for file in sorted(set(a_params) | set(b_params)):
        a, b = a_params.get(file) or {}, b_params.get(file) or {}
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b or a[key] != b[key]:
                changes.append(Change("params", f"{file}:{key}", a.get(key), b.get(key)))
    a_feat, b_feat = old.get("features") or {}, new.get("features") or {}
    for part in ("views", "sources"):  # per view: the definition, then the source's content
        a, b = a_feat.get(part) or {}, b_feat.get(part) or {}
        for name in sorted(set(a) | set(b)):
            if a.get(name) != b.get(name) or (name in a) != (name in b):
                label = "definition" if part == "views" else "source"
                changes.append(Change("features", f"{name} {label}", a.get(name), b.get(name)))
    if a_feat.get("refs") != b_feat.get("refs"):
        changes.append(Change("features", "refs", a_feat.get("refs"), b_feat.get("refs")))
    if old.get("environment") != new.get("environment"):
        changes.append(Change("environment", "resolved lock", old.get("environment"), new.get("environment")))
    if sorted(map(list, old.get("outs") or [])) != sorted(map(list, new.get("outs") or [])):
        changes.append(Change("outs", "declared outs", old.get("outs"), new.get("outs")))
    return changes
