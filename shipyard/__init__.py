"""Shipyard: CI/CD for machine learning.

The public Python API is re-exported here lazily, so ``import shipyard`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

# name -> module that defines it; filled in by the services as they land.
_PUBLIC: dict[str, str] = {
    "start_run": "shipyard.tracking.fluent",
    "end_run": "shipyard.tracking.fluent",
    "active_run": "shipyard.tracking.fluent",
    "log_param": "shipyard.tracking.fluent",
    "log_params": "shipyard.tracking.fluent",
    "log_metric": "shipyard.tracking.fluent",
    "log_metrics": "shipyard.tracking.fluent",
    "log_artifact": "shipyard.tracking.fluent",
    "log_artifacts": "shipyard.tracking.fluent",
    "set_tag": "shipyard.tracking.fluent",
    "set_tags": "shipyard.tracking.fluent",
    "log_input": "shipyard.tracking.fluent",
    "flush": "shipyard.tracking.fluent",
}


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'shipyard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
