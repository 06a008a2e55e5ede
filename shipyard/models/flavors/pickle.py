"""pickle and joblib: only with explicit trust, a recorded hash and an opcode scan."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from shipyard.errors import UnsafeModel
from shipyard.models import pickle_scan
from shipyard.models.flavors.base import Flavor


class PickleFlavor(Flavor):
    name = "pickle"
    safe = False
    extensions = (".pkl", ".pickle", ".joblib")
    format_name = "pickle"

    def _check(self, data: bytes, what: str, trust: bool) -> dict[str, Any]:
        try:
            result = pickle_scan.check(data, what, extra=_project_allow_list())
        except UnsafeModel as exc:
            # deferrable only for a caller that vouched for the file (trust) and lets it be stored
            # untrusted: registration under supply.scan: record, which registers it unloaded with
            # its findings (its scan gate fails it); loading still refuses
            exc.deferrable = trust
            raise
        return {"pickle_globals": sorted({f"{m}.{n}" for m, n, _ in result.globals}),
                "pickle_scan_complete": result.complete}

    def _load(self, data: bytes, what: str, meta: dict[str, Any], trust: bool) -> Any:
        if what.endswith(".joblib"):
            return pickle_scan.restricted_joblib_loads(data, _project_allow_list())
        return pickle_scan.restricted_loads(data, _project_allow_list())

    def _save(self, model: Any, folder: Path) -> Path:
        path = folder / "model.pkl"
        path.write_bytes(pickle.dumps(model, protocol=pickle.HIGHEST_PROTOCOL))
        return path


def _project_allow_list() -> list[str]:
    """The project's own classes a pickle may import (``supply.allow_globals``)."""
    from shipyard.supply.registration import current_settings

    return current_settings()[0].allow_globals
