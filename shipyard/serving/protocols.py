"""What the gateway needs from the layers below it, as small Protocols (STYLE A2).

``ServableModel`` is one loaded model version; ``shipyard.models.LoadedModel`` satisfies it (and the
optional ``ArrayPredictor``, the request path's matrix fast path).
``ModelLoader`` turns ``(name, version)`` into one; the real one reads the registry
(``shipyard.serving.loaders.RegistryLoader``). ``RoutingSource`` is where routing tables live (the
store, through ``shipyard.serving.follower.StoreRoutingSource``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class ServableModel(Protocol):
    """A loaded model version: predictions from a pandas DataFrame of its input columns."""

    @property
    def classes(self) -> Any: ...

    @property
    def signature(self) -> Any: ...

    def predict(self, frame: Any) -> Any: ...

    def predict_proba(self, frame: Any) -> Any: ...


@runtime_checkable
class ArrayPredictor(Protocol):
    """Optional for a ServableModel: predictions straight from a 2-D float64 matrix whose columns
    are the signature's inputs, in order. The gateway builds that matrix from numeric requests and
    skips the DataFrame; ``shipyard.models.LoadedModel`` falls back to its DataFrame path itself
    when the flavor cannot take a matrix."""

    def predict_array(self, array: Any) -> Any: ...

    def predict_proba_array(self, array: Any) -> Any: ...


class ModelLoader(Protocol):
    """Loads (and verifies) one model version; raises a ShipyardError naming it on failure."""

    def load(self, name: str, version: int) -> ServableModel: ...


class RoutingSource(Protocol):
    """The routing tables every gateway replica follows."""

    def revision(self) -> int: ...

    def tables(self) -> dict[str, dict[str, Any]]: ...


@dataclass(frozen=True)
class Feature:
    """One input column a model expects: name and portable type (double, long, boolean, string)."""

    name: str
    type: str = "double"


def features_of(model: ServableModel) -> tuple[Feature, ...] | None:
    """The model's input columns from its signature (an object with ``.inputs`` or a dict), if any."""
    signature = getattr(model, "signature", None)
    if signature is None:
        return None
    inputs = signature.get("inputs") if isinstance(signature, dict) else getattr(signature, "inputs", None)
    if not inputs:
        return None
    out = []
    for col in inputs:
        if isinstance(col, dict):
            out.append(Feature(str(col["name"]), str(col.get("type", "double"))))
        else:
            out.append(Feature(str(col.name), str(getattr(col, "type", "double"))))
    return tuple(out)
