"""Pydantic's validation errors explained as ``file:line:col: key: expected ..., got ...`` lines.

Used by every file Shipyard validates with pydantic: shipyard.yaml, dvc.yaml stages, data schemas
and behavioural test suites.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from shipyard.errors import did_you_mean
from shipyard.yaml_positions import LoadedYaml, dotted_key

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
        key = dotted_key(loc)
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
