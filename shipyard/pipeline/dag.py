"""Stages and the graph between them: templating, foreach/matrix expansion, checks, slices.

Pure: takes the validated ``pipeline.stages`` (plain dicts), the params values and a ``where``
function that names a config position, and returns a frozen ``Dag`` of ``StageSpec``. Nothing here
touches the store, the object store or the terminal. A bad graph (cycle, two stages writing one path,
an out inside another stage's out, an out outside the project, a params key that does not exist)
never reaches a runner.
"""

from __future__ import annotations

import graphlib
import itertools
import posixpath
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shipyard.errors import ConfigError, NotFound, PathEscapeError, did_you_mean
from shipyard.pipeline.envs import EnvUse, default_python

DEFAULT_PARAMS = "params.yaml"
TEMPLATE = re.compile(r"\$\{\s*([A-Za-z_][\w.-]*)\s*\}")

Where = Callable[[tuple[str | int, ...]], str]


def _nowhere(loc: tuple[str | int, ...]) -> str:
    return "shipyard.yaml"


@dataclass(frozen=True)
class Out:
    """One output path (root-relative) and how it is kept."""

    path: str
    cache: bool = True
    persist: bool = False
    kind: str = "outs"  # outs | metrics | plots


@dataclass(frozen=True)
class ParamDep:
    """A params dependency: one dotted ``key`` of ``file``, or the whole file when key is None."""

    file: str
    key: str | None


@dataclass(frozen=True)
class FeatureUse:
    """A stage's ``features``: feature refs retrieved into ``out`` for the entity table ``entities``
    (both root-relative) before the stage runs (shipyard.features)."""

    refs: tuple[str, ...]
    entities: str
    out: str


@dataclass(frozen=True)
class StageSpec:
    """A resolved stage: templates expanded, every path relative to the project root."""

    name: str
    cmd: tuple[str, ...]
    wdir: str = "."
    deps: tuple[str, ...] = ()
    params: tuple[ParamDep, ...] = ()
    outs: tuple[Out, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    always_changed: bool = False
    frozen: bool = False
    desc: str | None = None
    origin: str = ""  # the name written in the config (differs for foreach/matrix items)
    # Metrics and plots files that lie inside this stage's outs, as (kind, path): dvc.yaml's
    # top-level ``metrics:``/``plots:`` (e.g. eval/metrics.json inside the out eval/). They are
    # not outs of their own (outs may not overlap); the runner logs their values after the stage.
    reports: tuple[tuple[str, str], ...] = ()
    features: FeatureUse | None = None
    environment: EnvUse | None = None  # its own Python environment (shipyard.pipeline.envs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "cmd": list(self.cmd), "wdir": self.wdir, "deps": list(self.deps),
            "params": [[p.file, p.key] for p in self.params],
            "outs": [[o.path, o.cache, o.persist, o.kind] for o in self.outs],
            "env": [list(kv) for kv in self.env], "always_changed": self.always_changed,
            "frozen": self.frozen, "desc": self.desc, "origin": self.origin,
            "reports": [list(r) for r in self.reports],
            "features": ([list(self.features.refs), self.features.entities, self.features.out]
                         if self.features else None),
            "environment": ([self.environment.python, self.environment.file, self.environment.locked]
                            if self.environment else None),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StageSpec:
        return cls(
            name=d["name"], cmd=tuple(d["cmd"]), wdir=d["wdir"], deps=tuple(d["deps"]),
            params=tuple(ParamDep(f, k) for f, k in d["params"]),
            outs=tuple(Out(p, c, s, k) for p, c, s, k in d["outs"]),
            env=tuple((k, v) for k, v in d["env"]), always_changed=d["always_changed"],
            frozen=d["frozen"], desc=d["desc"], origin=d["origin"],
            reports=tuple((k, p) for k, p in d.get("reports", ())),
            features=FeatureUse(tuple(d["features"][0]), d["features"][1], d["features"][2]) if d.get("features") else None,
            environment=EnvUse(*d["environment"]) if d.get("environment") else None,
        )

    @property
    def out_paths(self) -> tuple[str, ...]:
        return tuple(o.path for o in self.outs)

    @property
    def param_files(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(p.file for p in self.params))


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


@dataclass(frozen=True)
class Dag:
    """Stages in a valid order with their edges; build with ``Dag.build``."""

    stages: Mapping[str, StageSpec]
    upstream: Mapping[str, tuple[str, ...]]
    order: tuple[str, ...]
    producers: Mapping[str, str] = field(default_factory=dict)  # out path -> stage

    @classmethod
    def build(cls, specs: Iterable[StageSpec], where: Where = _nowhere) -> Dag:
        stages: dict[str, StageSpec] = {}
        for spec in specs:
            if spec.name in stages:
                raise ConfigError(f"{where(('pipeline', 'stages', spec.origin))}: stage {spec.name!r} is defined twice",
                                  hint="stage names (including foreach items) must be unique")
            stages[spec.name] = spec
        producers: dict[str, str] = {}
        for spec in stages.values():
            for out in spec.outs:
                for path, other in producers.items():
                    if _overlaps(path, out.path):
                        same = path == out.path
                        what = f"both write {out.path!r}" if same else f"write overlapping paths {path!r} and {out.path!r}"
                        if other == spec.name:
                            raise ConfigError(f"{where(('pipeline', 'stages', spec.origin, 'outs'))}: stage {spec.name!r} lists "
                                              f"{path!r} and {out.path!r}, which overlap",
                                              hint="list a folder once, or its files, not both")
                        raise ConfigError(
                            f"{where(('pipeline', 'stages', spec.origin, 'outs'))}: stages {other!r} and {spec.name!r} {what}",
                            hint="each path is written by exactly one stage; give one of them another output path")
                producers[out.path] = spec.name
        upstream: dict[str, tuple[str, ...]] = {}
        for spec in stages.values():
            ups: list[str] = []
            for dep in spec.deps:
                for path, producer in producers.items():
                    if _overlaps(dep, path):
                        if producer == spec.name:
                            raise ConfigError(
                                f"{where(('pipeline', 'stages', spec.origin, 'deps'))}: stage {spec.name!r} depends on "
                                f"{dep!r}, which it writes itself (cycle: {spec.name} -> {spec.name})",
                                hint="a stage cannot read its own output; split it into two stages")
                        ups.append(producer)
            upstream[spec.name] = tuple(dict.fromkeys(ups))
        sorter = graphlib.TopologicalSorter(upstream)
        try:
            order = tuple(sorter.static_order())
        except graphlib.CycleError as exc:
            cycle = list(exc.args[1])
            raise ConfigError(f"the pipeline has a cycle: {' -> '.join(reversed(cycle))}",
                              hint="a stage's deps may not (even indirectly) include its own outs") from None
        # Keep the config's order among independent stages: stable topological order.
        position = {name: i for i, name in enumerate(stages)}
        order = _stable_order(stages, upstream, position)
        return cls(stages=stages, upstream=upstream, order=order, producers=producers)

    def downstream(self) -> dict[str, tuple[str, ...]]:
        down: dict[str, list[str]] = {name: [] for name in self.stages}
        for name, ups in self.upstream.items():
            for up in ups:
                down[up].append(name)
        return {k: tuple(v) for k, v in down.items()}

    def _closure(self, names: Iterable[str], edges: Mapping[str, tuple[str, ...]]) -> set[str]:
        seen: set[str] = set()
        stack = list(names)
        while stack:
            name = stack.pop()
            if name not in seen:
                seen.add(name)
                stack.extend(edges[name])
        return seen

    def select(self, targets: Iterable[str], *, downstream: bool = False) -> Dag:
        """The slice that ``shipyard run TARGET...`` runs: targets with their upstream (or downstream)."""
        targets = list(targets)
        for name in targets:
            self.require(name)
        if not targets:
            return self
        keep = self._closure(targets, self.downstream() if downstream else self.upstream)
        stages = {n: s for n, s in self.stages.items() if n in keep}
        upstream = {n: tuple(u for u in self.upstream[n] if u in keep) for n in stages}
        return Dag(stages, upstream, tuple(n for n in self.order if n in keep), self.producers)

    def require(self, name: str) -> StageSpec:
        if name not in self.stages:
            hint = did_you_mean(name, self.stages)
            raise NotFound(f"unknown stage {name!r}" + (f" ({hint})" if hint else ""),
                           hint="list the stages with 'shipyard dag'")
        return self.stages[name]

    def producer_of(self, dep: str) -> str | None:
        for path, producer in self.producers.items():
            if _overlaps(dep, path):
                return producer
        return None


def _stable_order(stages: Mapping[str, StageSpec], upstream: Mapping[str, tuple[str, ...]],
                  position: Mapping[str, int]) -> tuple[str, ...]:
    done: list[str] = []
    placed: set[str] = set()
    remaining = sorted(stages, key=position.__getitem__)
    while remaining:
        for name in remaining:
            if all(u in placed for u in upstream[name]):
                done.append(name)
                placed.add(name)
                remaining.remove(name)
                break
    return tuple(done)


# -- templating -------------------------------------------------------------------------------

def _lookup(context: Mapping[str, Any], dotted: str) -> Any:
    value: Any = context
    for part in dotted.split("."):
        if isinstance(value, Mapping) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise KeyError(dotted)
    return value


def _flat_keys(value: Any, prefix: str = "") -> list[str]:
    keys = []
    if isinstance(value, Mapping):
        for k, v in value.items():
            name = f"{prefix}{k}"
            keys.append(name)
            keys.extend(_flat_keys(v, name + "."))
    return keys


def render(value: Any, context: Mapping[str, Any], where: str) -> Any:
    """Expand ``${a.b}`` in every string of ``value``; a lone template keeps the value's type."""
    if isinstance(value, str):
        whole = TEMPLATE.fullmatch(value.strip())

        def get(name: str) -> Any:
            try:
                return _lookup(context, name)
            except KeyError:
                hint = did_you_mean(name, _flat_keys(context))
                raise ConfigError(f"{where}: ${{{name}}} is not defined in params or the stage's item",
                                  hint=hint or "define it in params.yaml") from None

        if whole:
            return get(whole.group(1))

        def substitute(match: re.Match[str]) -> str:
            found = get(match.group(1))
            if isinstance(found, Mapping | list):
                raise ConfigError(f"{where}: ${{{match.group(1)}}} is a {type(found).__name__}, not a value",
                                  hint="use it alone as the whole value, or pick one of its keys")
            return str(found)

        return TEMPLATE.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: render(v, context, where) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, context, where) for v in value]
    return value


def _item_label(value: Any, index: int) -> str:
    return str(value) if isinstance(value, str | int | float | bool) else str(index)


def expand(name: str, raw: Mapping[str, Any], params: Mapping[str, Any], where: Where) -> list[tuple[str, dict]]:
    """One config stage -> [(stage name, rendered body)], expanding foreach and matrix."""
    here = where(("pipeline", "stages", name))
    if raw.get("foreach") is not None:
        items = raw["foreach"]
        if isinstance(items, str):
            items = render(items, params, here)
        body = raw["do"]
        if isinstance(items, Mapping):
            pairs = [(str(k), {"item": v, "key": k}) for k, v in items.items()]
        elif isinstance(items, list):
            pairs = [(_item_label(v, i), {"item": v}) for i, v in enumerate(items)]
        else:
            raise ConfigError(f"{here}: foreach: expected a list or a mapping, got {type(items).__name__}")
        return [(f"{name}@{label}", render(body, {**params, **extra}, here)) for label, extra in pairs]
    if raw.get("matrix") is not None:
        axes: list[tuple[str, list[Any]]] = []
        for key, values in raw["matrix"].items():
            if isinstance(values, str):
                values = render(values, params, here)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where(('pipeline', 'stages', name, 'matrix', key))}: matrix.{key}: expected a non-empty list")
            axes.append((key, values))
        body = {k: v for k, v in raw.items() if k != "matrix"}
        out = []
        for combo in itertools.product(*(list(enumerate(v)) for _, v in axes)):
            item = {key: value for (key, _), (_, value) in zip(axes, combo, strict=True)}
            label = "-".join(_item_label(value, i) for i, value in combo)
            out.append((f"{name}@{label}", render(body, {**params, "item": item}, here)))
        return out
    return [(name, render(dict(raw), params, here))]


# -- resolution of one rendered stage ---------------------------------------------------------

def _norm(path: str, wdir: str, what: str, where: str) -> str:
    raw = str(path).strip()
    if not raw:
        raise ConfigError(f"{where}: {what}: empty path")
    if posixpath.isabs(raw) or raw.startswith("~"):
        raise PathEscapeError(f"{where}: {what} {raw!r} is absolute; it must be inside the project",
                              hint="write it relative to the project root (or the stage's wdir)")
    joined = posixpath.normpath(posixpath.join(wdir, raw.rstrip("/")))
    if joined == ".." or joined.startswith("../"):
        raise PathEscapeError(f"{where}: {what} {raw!r} is outside the project",
                              hint="stages may only read and write paths inside the project folder")
    return joined


def _outs(entries: list[Any], kind: str, wdir: str, where: str) -> list[Out]:
    outs = []
    for entry in entries:
        if isinstance(entry, Mapping):
            for path, opts in entry.items():
                opts = opts or {}
                outs.append(Out(_norm(path, wdir, kind[:-1] if kind != "metrics" else "metric", where),
                                bool(opts.get("cache", True)), bool(opts.get("persist", False)), kind))
        else:
            outs.append(Out(_norm(entry, wdir, "out", where), True, False, kind))
    return outs


def resolve(name: str, origin: str, body: Mapping[str, Any], params_of: Callable[[str], Mapping[str, Any]],
            where: Where) -> StageSpec:
    """A rendered, validated stage body -> StageSpec (paths root-relative, params keys checked)."""
    here = where(("pipeline", "stages", origin))
    wdir_raw = body.get("wdir") or "."
    wdir = "." if wdir_raw in (".", "./") else _norm(wdir_raw, ".", "wdir", here)
    cmd = body["cmd"]
    cmd_t = tuple(str(c) for c in cmd) if isinstance(cmd, list) else (str(cmd),)
    deps = tuple(dict.fromkeys(_norm(d, wdir, "dep", where(("pipeline", "stages", origin, "deps"))) for d in body.get("deps") or []))
    params: list[ParamDep] = []
    for i, entry in enumerate(body.get("params") or []):
        loc = where(("pipeline", "stages", origin, "params", i))
        if isinstance(entry, Mapping):
            pairs = [(file, keys) for file, keys in entry.items()]
        else:
            pairs = [(DEFAULT_PARAMS, [entry])]
        for file, keys in pairs:
            rel = _norm(file, wdir, "params file", loc)
            values = params_of(rel)
            if not keys:
                params.append(ParamDep(rel, None))
                continue
            for key in keys:
                key = str(key)
                try:
                    _lookup(values, key)
                except KeyError:
                    hint = did_you_mean(key, _flat_keys(values))
                    raise ConfigError(f"{loc}: params key {key!r} is not in {rel}" + (f" ({hint})" if hint else ""),
                                      hint=f"add {key} to {rel}, or fix the name in shipyard.yaml") from None
                params.append(ParamDep(rel, key))
    outs = [*_outs(body.get("outs") or [], "outs", wdir, here), *_outs(body.get("metrics") or [], "metrics", wdir, here),
            *_outs(body.get("plots") or [], "plots", wdir, here)]
    env = tuple(sorted((str(k), str(v)) for k, v in (body.get("env") or {}).items()))
    features = None
    if body.get("features"):
        # the entity table is a dep (an upstream stage may write it); the retrieved rows are an out
        spec = body["features"]
        loc = where(("pipeline", "stages", origin, "features"))
        features = FeatureUse(tuple(spec["refs"]), _norm(spec["entities"], wdir, "features.entities", loc),
                              _norm(spec["out"], wdir, "features.out", loc))
        deps = tuple(dict.fromkeys((*deps, features.entities)))
        if features.out not in (o.path for o in outs):
            outs.append(Out(features.out))
    environment = None
    if body.get("environment"):
        spec = body["environment"]
        loc = where(("pipeline", "stages", origin, "environment"))
        locked = spec.get("lock") is not None
        environment = EnvUse(str(spec.get("python") or default_python()), _norm(spec["lock"] if locked else spec["requirements"], wdir,
                                                        "environment file", loc), locked)
    return StageSpec(
        name=name, cmd=cmd_t, wdir=wdir, deps=deps, params=tuple(dict.fromkeys(params)), outs=tuple(outs), env=env,
        always_changed=bool(body.get("always_changed")), frozen=bool(body.get("frozen")), desc=body.get("desc"),
        origin=origin, features=features, environment=environment,
    )
