"""shipyard.yaml and params.yaml: loading, interpolation and validation.

Errors name the file, line, column and key, and say what was expected, e.g.
``shipyard.yaml:7:5: pipeline.stages.train.deps: expected a list of paths, got a number``.

``${VAR}`` (upper-case names) is replaced from the environment everywhere, with ``${VAR:-default}``
for a fallback; ``${lower.dotted}`` is left for the pipeline, which templates it from params.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from shipyard.errors import ConfigError, did_you_mean

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
ENV_PATTERN = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}")


class Frozen(BaseModel):
    """Base of every config model: unknown keys are errors, values never change after load."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Stage(Frozen):
    """One pipeline stage, as written in ``pipeline.stages``."""

    cmd: str | list[str]
    deps: list[str] = Field(default_factory=list)
    params: list[str | dict[str, list[str]]] = Field(default_factory=list)
    outs: list[str | dict[str, dict[str, Any]]] = Field(default_factory=list)
    metrics: list[str | dict[str, dict[str, Any]]] = Field(default_factory=list)
    plots: list[str | dict[str, dict[str, Any]]] = Field(default_factory=list)
    wdir: str = "."
    env: dict[str, str] = Field(default_factory=dict)
    always_changed: bool = False
    frozen: bool = False
    foreach: list[Any] | dict[str, Any] | str | None = None
    matrix: dict[str, list[Any] | str] | None = None
    do: dict[str, Any] | None = None
    desc: str | None = None


class Pipeline(Frozen):
    """The ``pipeline`` section: stages by name, and the executor that runs them."""

    stages: dict[str, Stage] = Field(default_factory=dict)
    executor: str = "local"
    environment: list[str] = Field(default_factory=list)


class ModelSection(Frozen):
    """The ``model`` section: what registration and gates need to know."""

    name: str
    path: str
    flavor: Literal["sklearn", "onnx", "xgboost", "lightgbm", "pickle"] = "sklearn"
    train: str | None = None
    eval: str | None = None
    target: str | None = None
    features: list[str] | None = None
    groups: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _name_is_simple(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", value):
            raise ValueError("a model name uses letters, digits, '.', '_' and '-' only")
        return value


class Notifier(Frozen):
    """One entry of ``notify``: where alerts and rollout events are sent."""

    webhook: str
    format: Literal["json", "slack", "teams"] = "json"
    secret: str | None = None


class ShipyardConfig(Frozen):
    """The whole of shipyard.yaml.

    ``gates``, ``deploy`` and ``monitor`` are kept as parsed YAML here and validated by their own
    services (gates/, rollout/, monitoring/), which own their vocabulary.
    """

    version: int = 1
    pipeline: Pipeline = Field(default_factory=Pipeline)
    model: ModelSection | None = None
    gates: list[dict[str, Any]] = Field(default_factory=list)
    deploy: dict[str, Any] = Field(default_factory=dict)
    monitor: dict[str, Any] = Field(default_factory=dict)
    notify: list[Notifier] = Field(default_factory=list)
    data: dict[str, Any] = Field(default_factory=dict)


class LoadedYaml:
    """A parsed YAML document that still knows where each value came from."""

    def __init__(self, path: Path, data: Any, root_node: yaml.Node | None) -> None:
        self.path = path
        self.data = data
        self._root = root_node

    def where(self, loc: tuple[str | int, ...], at_key: bool = False) -> str:
        """``file:line:col`` of the deepest node of ``loc`` that exists (its key if ``at_key``)."""
        node = self._root
        best = node
        for i, part in enumerate(loc):
            last = i == len(loc) - 1
            node = _child(node, part, want_key=at_key and last)
            if node is None:
                break
            best = node
        if best is None:
            return str(self.path)
        mark = best.start_mark
        return f"{self.path.name}:{mark.line + 1}:{mark.column + 1}"


def _child(node: yaml.Node | None, part: str | int, want_key: bool = False) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                # Empty scalars have no useful position of their own: point at the key.
                empty = isinstance(value, yaml.ScalarNode) and not value.value
                return key if want_key or empty else value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def load_yaml(path: str | os.PathLike[str], *, missing_ok: bool = False) -> LoadedYaml:
    """Parse a YAML file, keeping positions; a malformed file raises ConfigError with its line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if missing_ok:
            return LoadedYaml(path, {}, None)
        raise ConfigError(f"{path}: file not found", hint="run 'shipyard init' to create it")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})")
    try:
        node = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader) if node is not None else {}
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        raise ConfigError(
            f"{where}: malformed YAML: {exc.problem or exc.context}",
            hint="check indentation and quoting on that line",
        ) from exc
    if data is None:
        data = {}
    return LoadedYaml(path, data, node)


def interpolate_env(value: Any, loaded: LoadedYaml, loc: tuple[str | int, ...] = ()) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` from the environment, recursively."""
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise ConfigError(
                f"{loaded.where(loc)}: {_dotted(loc)}: environment variable {name} is not set",
                hint=f"export {name}=... or write ${{{name}:-default}}",
            )

        return ENV_PATTERN.sub(substitute, value)
    if isinstance(value, Mapping):
        return {k: interpolate_env(v, loaded, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate_env(v, loaded, (*loc, i)) for i, v in enumerate(value)]
    return value


def _dotted(loc: tuple[str | int, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


_TYPE_WORDS = {
    "list_type": "a list",
    "dict_type": "a mapping",
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "float_type": "a number",
    "float_parsing": "a number",
}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return "nothing" if value is None else type(value).__name__


def _model_keys(model: type[BaseModel], loc: tuple[str | int, ...]) -> list[str]:
    """The field names allowed at ``loc`` (for 'did you mean' on unknown keys)."""
    annotation: Any = model
    for part in loc:
        target = _first_model(annotation)
        fields = getattr(target, "model_fields", None) if target is not None else None
        if fields is not None and part in fields and _is_model(annotation):
            annotation = fields[part].annotation
        elif _container_value(annotation) is not None:
            annotation = _container_value(annotation)  # a dict key or list index: step into its value
        else:
            return []
    target = _first_model(annotation)
    return list(target.model_fields) if target is not None else []


def _is_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_is_model(a) for a in getattr(annotation, "__args__", ()) if getattr(a, "__origin__", None) is None)


def _container_value(annotation: Any) -> Any:
    origin = getattr(annotation, "__origin__", None)
    args = getattr(annotation, "__args__", ())
    if origin in (dict, list) and args:
        return args[-1]
    for arg in args:
        found = _container_value(arg)
        if found is not None:
            return found
    return None


def _first_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if getattr(annotation, "__origin__", None) in (dict, list):
        return None
    for arg in getattr(annotation, "__args__", ()):
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def explain_validation(exc: ValidationError, loaded: LoadedYaml, model: type[BaseModel]) -> str:
    """Turn pydantic's errors into ``file:line:col: key: expected ..., got ...`` lines."""
    lines = []
    for err in exc.errors():
        # Drop union branch names pydantic inserts (e.g. 'str', 'list[str]').
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or p in {"str", "int", "bool", "float", "dict", "list"})))
        kind = err["type"]
        where = loaded.where(loc, at_key=kind == "extra_forbidden")
        key = _dotted(loc)
        if kind == "extra_forbidden":
            unknown = str(loc[-1])
            parent_keys = _model_keys(model, loc[:-1])
            hint = did_you_mean(unknown, parent_keys)
            lines.append(f"{where}: {key}: unknown key" + (f" ({hint})" if hint else ""))
        elif kind == "missing":
            lines.append(f"{where}: {key}: required key is missing")
        elif kind in _TYPE_WORDS:
            lines.append(f"{where}: {key}: expected {_TYPE_WORDS[kind]}, got {_describe(err.get('input'))}")
        else:
            lines.append(f"{where}: {key}: {err['msg']}")
    return "\n".join(dict.fromkeys(lines))


def load_config(path: str | os.PathLike[str]) -> ShipyardConfig:
    """Load and validate shipyard.yaml."""
    loaded = load_yaml(path)
    if not isinstance(loaded.data, Mapping):
        raise ConfigError(f"{loaded.where(())}: expected a mapping at the top of {loaded.path.name}")
    data = interpolate_env(loaded.data, loaded)
    try:
        return ShipyardConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(
            explain_validation(exc, loaded, ShipyardConfig),
            hint="see docs/user-guide.md#shipyardyaml for every key",
        ) from None


def load_params(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load params.yaml (any nested mapping); a missing file is an empty mapping."""
    loaded = load_yaml(path, missing_ok=True)
    if not isinstance(loaded.data, Mapping):
        raise ConfigError(f"{loaded.where(())}: params must be a mapping of names to values")
    return dict(loaded.data)


def lookup_param(params: Mapping[str, Any], dotted: str) -> Any:
    """``train.lr`` -> params['train']['lr']; KeyError names the missing part."""
    value: Any = params
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise KeyError(dotted)
        value = value[part]
    return value
