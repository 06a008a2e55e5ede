"""Model flavors as a lazy string table (STYLE.md D2): name -> "module:Class"."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shipyard.errors import InputError
from shipyard.lazy_imports import lookup

if TYPE_CHECKING:
    from shipyard.models.flavors.base import Flavor

FLAVORS: dict[str, str] = {
    "sklearn": "shipyard.models.flavors.sklearn:SklearnFlavor",
    "onnx": "shipyard.models.flavors.onnx:OnnxFlavor",
    "xgboost": "shipyard.models.flavors.boosters:XGBoostFlavor",
    "lightgbm": "shipyard.models.flavors.boosters:LightGBMFlavor",
    "pickle": "shipyard.models.flavors.pickle:PickleFlavor",
    "mlflow": "shipyard.models.flavors.mlflow:MLflowFlavor",
    "mlflow_pyfunc": "shipyard.models.flavors.pyfunc:MLflowPyfuncFlavor",
}


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``; an unknown name lists the known ones."""
    cls = lookup(FLAVORS, name, "model flavor")
    if cls.name != name:
        raise InputError(f"flavor table entry {name!r} points at {FLAVORS[name]}, whose name is {cls.name!r}")
    return cls()
