"""Shipyard: CI/CD for machine learning.

The public Python API is re-exported here lazily, so ``import shipyard`` stays cheap.
"""

from __future__ import annotations

from shipyard.lazy_imports import module_getattr

__version__ = "0.1.0"

# name -> "module:attribute" that defines it; filled in by the services as they land.
_PUBLIC: dict[str, str] = {
    "start_run": "shipyard.tracking.fluent:start_run",
    "end_run": "shipyard.tracking.fluent:end_run",
    "active_run": "shipyard.tracking.fluent:active_run",
    "log_param": "shipyard.tracking.fluent:log_param",
    "log_params": "shipyard.tracking.fluent:log_params",
    "log_metric": "shipyard.tracking.fluent:log_metric",
    "log_metrics": "shipyard.tracking.fluent:log_metrics",
    "log_artifact": "shipyard.tracking.fluent:log_artifact",
    "log_artifacts": "shipyard.tracking.fluent:log_artifacts",
    "set_tag": "shipyard.tracking.fluent:set_tag",
    "set_tags": "shipyard.tracking.fluent:set_tags",
    "log_input": "shipyard.tracking.fluent:log_input",
    "flush": "shipyard.tracking.fluent:flush",
}


__getattr__ = module_getattr(__name__, _PUBLIC)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
