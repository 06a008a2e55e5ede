"""Model loaders for the gateway.

``RegistryLoader`` is the real one: ``name@version`` resolved in the registry, then loaded from the
object store through the model's flavor (verified against its hash; unsafe flavors only when the
version was registered as trusted). A load failure is a ShipyardError naming the version.
"""

from __future__ import annotations

from typing import Any

from shipyard.errors import ShipyardError
from shipyard.serving.protocols import ServableModel


class ModelLoadError(ShipyardError):
    """A model version could not be loaded into the gateway."""

    http_status = 503


class RegistryLoader:
    """Loads versions named in the routing table from the registry and the object store."""

    def __init__(self, store: Any, objects: Any) -> None:
        self.store = store
        self.objects = objects

    def load(self, name: str, version: int) -> ServableModel:
        from shipyard import registry
        from shipyard.models import load_model

        with self.store.read() as session:
            mv = registry.resolve(session, f"{name}@{version}")
        try:
            return load_model(self.objects, mv.model_oid, mv.flavor, trust=mv.trusted, what=mv.ref)
        except ShipyardError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"{name}@{version} ({mv.flavor}) failed to load: {type(exc).__name__}: {exc}",
                                 hint="register a fixed version; the champion keeps serving") from exc
