"""Search spaces: ``train.lr=loguniform(1e-4,1e-1)`` as written on the command line, checked once.

Forms: ``uniform(low,high)``, ``loguniform(low,high)``, ``int(low,high)``, ``logint(low,high)``,
``choice(a,b,c)`` and ``[a,b,c]`` (a grid axis: every value is tried by the grid sampler, and is a
choice for the others). Each names a param of params.yaml that the swept stage reads; anything else
is an error naming the parameter and what was expected, before a trial runs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from shipyard.errors import UsageError

_CALL = re.compile(r"^(?P<kind>[a-z]+)\((?P<args>.*)\)$")
_FLOAT = re.compile(r"^[-+]?[0-9]*\.?[0-9]+[eE][-+]?[0-9]+$")  # 1e-4, which YAML 1.1 reads as text
KINDS = ("uniform", "loguniform", "int", "logint", "choice")


@dataclass(frozen=True)
class Dimension:
    """One swept param: its dotted name, its kind, and its bounds or choices."""

    name: str
    kind: str  # uniform | loguniform | int | logint | choice
    low: float | None = None
    high: float | None = None
    choices: tuple[Any, ...] = ()

    def suggest(self, trial: Any) -> Any:
        """The value an Optuna trial picks for this dimension."""
        if self.kind == "choice":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind in ("int", "logint"):
            return trial.suggest_int(self.name, int(self.low or 0), int(self.high or 0), log=self.kind == "logint")
        return trial.suggest_float(self.name, float(self.low or 0), float(self.high or 0), log=self.kind == "loguniform")

    def describe(self) -> str:
        """As written on the command line."""
        if self.kind == "choice":
            return f"{self.name}=choice({','.join(map(str, self.choices))})"
        return f"{self.name}={self.kind}({self.low:g},{self.high:g})"


def _scalar(text: str, where: str) -> Any:
    try:
        return float(text.strip()) if _FLOAT.match(text.strip()) else yaml.safe_load(text.strip())
    except yaml.YAMLError:
        raise UsageError(f"{where}: cannot read {text.strip()!r} as a value") from None


def _number(text: str, where: str) -> float:
    try:
        value = float(text.strip())  # YAML would read 1e-4 as text
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise UsageError(f"{where}: {text.strip()!r} is not a finite number")
    return value


def parse_dimension(spec: str) -> Dimension:
    """``train.lr=loguniform(1e-4,1e-1)`` -> Dimension; a UsageError names what is wrong."""
    name, sep, body = spec.partition("=")
    name, body = name.strip(), body.strip()
    where = f"-p {spec}"
    if not sep or not name or not body:
        raise UsageError(f"{where}: expected PARAM=DISTRIBUTION", hint="-p train.lr=loguniform(1e-4,1e-1)")
    if body.startswith("[") and body.endswith("]"):
        values = _scalar(body, where)
        return _choices(name, values, where)
    match = _CALL.match(body)
    if match is None or match["kind"] not in KINDS:
        raise UsageError(f"{where}: unknown distribution {body!r}",
                         hint="one of uniform(a,b), loguniform(a,b), int(a,b), logint(a,b), choice(x,y,...), [x,y,...]")
    kind, args = match["kind"], [a for a in match["args"].split(",") if a.strip()]
    if kind == "choice":
        return _choices(name, [_scalar(a, where) for a in args], where)
    if len(args) != 2:
        raise UsageError(f"{where}: {kind} takes two bounds (low, high), got {len(args)}")
    low, high = (_number(a, where) for a in args)
    if low >= high:
        raise UsageError(f"{where}: low {low:g} must be below high {high:g}")
    if kind in ("loguniform", "logint") and low <= 0:
        raise UsageError(f"{where}: {kind} needs a positive low bound, got {low:g}")
    if kind in ("int", "logint") and (low != int(low) or high != int(high)):
        raise UsageError(f"{where}: {kind} bounds must be whole numbers")
    return Dimension(name, kind, low, high)


def _choices(name: str, values: Any, where: str) -> Dimension:
    if not isinstance(values, list) or len(values) < 2:
        raise UsageError(f"{where}: a choice needs at least two values")
    if len({repr(v) for v in values}) != len(values):
        raise UsageError(f"{where}: the choices repeat a value")
    return Dimension(name, "choice", choices=tuple(values))


def parse_space(specs: Iterable[str]) -> tuple[Dimension, ...]:
    """Every ``-p`` of a sweep; a param named twice is an error."""
    dims = tuple(parse_dimension(spec) for spec in specs)
    if not dims:
        raise UsageError("a sweep needs a search space", hint="-p train.lr=loguniform(1e-4,1e-1) (repeatable)")
    seen: set[str] = set()
    for dim in dims:
        if dim.name in seen:
            raise UsageError(f"-p {dim.name}: the param is swept twice")
        seen.add(dim.name)
    return dims


def check_against_stage(dims: Sequence[Dimension], stage: str, stage_params: Sequence[tuple[str, str | None]],
                        params: Mapping[str, Any]) -> None:
    """Each dimension must be a param of params.yaml that ``stage`` (or a stage before it) reads.

    ``stage_params`` are the (file, key) params dependencies of the stage and its upstream stages;
    key None means the whole file.
    """
    from shipyard.config import lookup_param

    for dim in dims:
        read = any(file == "params.yaml" and (key is None or dim.name == key or dim.name.startswith(key + "."))
                   for file, key in stage_params)
        if not read:
            readable = ", ".join(sorted({k for _, k in stage_params if k})) or "(none)"
            raise UsageError(f"-p {dim.name}: stage {stage!r} does not read this param",
                             hint=f"list it under the stage's params in shipyard.yaml, or sweep a param it reads: {readable}")
        try:
            lookup_param(params, dim.name)
        except KeyError:
            raise UsageError(f"-p {dim.name}: params.yaml has no such param",
                             hint="a swept param must exist in params.yaml (its value there is the default)") from None


def grid(dims: Sequence[Dimension]) -> dict[str, list[Any]] | None:
    """The grid sampler's axes (every dimension must be a choice), or None when one is continuous."""
    if any(dim.kind != "choice" for dim in dims):
        return None
    return {dim.name: list(dim.choices) for dim in dims}
