"""Dotted keys for nested mappings: how params and metrics files are named (``train.lr``).

A foundation of its own, free of pydantic, so that the pipeline's fast paths (a no-op run, a
run-cache restore) can use it without importing ``shipyard.config``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (params and metrics files); lists are kept whole."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value} if prefix else {}


def set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b`` in a nested dict, creating the mappings on the way (``flatten``'s inverse, one key)."""
    node = data
    *parents, last = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def numeric_leaves(data: Any) -> dict[str, float]:
    """The numbers of a metrics document by dotted key (booleans, text and NaN left out)."""
    out = {}
    for key, value in flatten(data).items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if isinstance(value, float) and math.isnan(value):
            continue
        out[key] = float(value)
    return out
