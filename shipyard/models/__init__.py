"""Models: flavors with safe formats, packages in the object store, signatures.

``load_model(objects, model_oid, flavor, trust=False) -> LoadedModel`` is what the registry, the
gates and the gateway call; ``package_model`` is what registration calls; ``save_model`` writes a
model in its flavor's safe format.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shipyard.models.flavors.base import LoadedModel, PackagedModel

__all__ = ["load_model", "package_model", "save_model"]


EXTERNAL = "external"   # a version that only records where its model is (MLflow's REST API, a source we do not read)


def load_model(objects: Any, model_oid: str, flavor: str, trust: bool = False, what: str | None = None, *,
               verified: bool = False) -> LoadedModel:
    """Load a packaged model from the object store (verified; unsafe flavors need ``trust``);
    ``what`` names it in errors (``NAME@VERSION``). ``verified``: the caller has just run
    ``verify_package`` on this package (the gates do), so its signature is not verified twice."""
    from shipyard.errors import InputError
    from shipyard.models.flavors import get_flavor

    if flavor == EXTERNAL:
        raise InputError("this version only records its model's source (flavor external): there is no model to load",
                         hint="see why in 'shipyard models show NAME@VERSION --json' (lineage.mlflow); log the model "
                              "with mlflow.<flavor>.log_model against this server, or use 'shipyard models register'")
    if not verified:
        from shipyard.supply.signing import verify_package

        verify_package(objects, model_oid, what=what)   # a signed package must verify before a byte of it is loaded
    return get_flavor(flavor).load(objects, model_oid, trust=trust)


def package_model(objects: Any, path: str | Path, flavor: str, *, trust: bool = False, sample: Any = None,
                  classes: list[Any] | None = None) -> PackagedModel:
    """Check a model file, capture its signature from ``sample`` and store it as a package."""
    from shipyard.models.flavors import get_flavor

    return get_flavor(flavor).package(objects, Path(path), trust=trust, sample=sample, classes=classes)


def save_model(model: Any, folder: str | Path, flavor: str) -> Path:
    """Write ``model`` into ``folder`` in the flavor's format; returns the file."""
    from shipyard.models.flavors import get_flavor

    return get_flavor(flavor).save(model, folder)


def __getattr__(name: str) -> Any:
    if name in ("LoadedModel", "PackagedModel"):
        from shipyard.models.flavors import base

        return getattr(base, name)
    if name == "Signature":
        from shipyard.models.signature import Signature

        return Signature
    raise AttributeError(name)
