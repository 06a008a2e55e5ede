"""The one lazy-import resolver (STYLE.md D2): tables of ``"package.module:attribute"`` strings,
imported only when a name is used.

Used by the CLI's command table, the gate checks, the model flavors and the public API in
``shipyard/__init__.py``. Importing this module costs nothing beyond ``importlib``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any


def load(entry: str) -> Any:
    """``"package.module:attribute"`` -> that attribute, importing its module now."""
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def lookup(table: Mapping[str, str], name: str, what: str) -> Any:
    """The entry ``name`` of ``table``, loaded; an unknown name is an InputError listing the known
    ones (``what`` names the kind of thing in the message: "gate kind", "model flavor")."""
    entry = table.get(name)
    if entry is None:
        from shipyard.errors import InputError, did_you_mean

        raise InputError(f"unknown {what} {name!r}", hint=did_you_mean(name, table))
    return load(entry)


def module_getattr(module_name: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` resolving the names of ``table`` on first use; each value is
    then kept in the module, so the next access does not come back here."""

    def __getattr__(name: str) -> Any:
        entry = table.get(name)
        if entry is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        value = load(entry)
        setattr(sys.modules[module_name], name, value)
        return value

    return __getattr__
