"""Pickle safety at load time: the one scanner's verdict, then a restricted unpickler.

``check`` runs ``shipyard.supply.pickles.scan_pickle`` (the static opcode walk that ``shipyard
scan`` uses: an allow-list of globals per flavor, joblib arrays and nested pickles followed) and
refuses the file with an UnsafeModel error naming the first finding. Loading then goes through
``RestrictedUnpickler``, whose ``find_class`` applies the same allow-list to what the names resolve
to (so an alias such as ``sklearn.somemodule.os`` or a re-exported ``os.system`` is refused too).
"""

from __future__ import annotations

import io
import pickle
import types
from collections.abc import Iterable
from typing import Any

from shipyard.errors import UnsafeModel
from shipyard.supply import allowlist
from shipyard.supply.pickles import PickleScan, scan_pickle

_HINT = ("this file would run code when loaded; do not trust it. Re-save the model in a safe format (skops, "
         "ONNX, native booster), or add your own classes to supply.allow_globals in shipyard.yaml")


def denied_reason(module: str, name: str, flavor: str | None = None, extra: Iterable[str] = ()) -> str | None:
    """Why importing ``module.name`` from a pickle is refused, or None when it is on the allow-list."""
    if allowlist.is_allowed(module, name, flavor, extra):
        return None
    return allowlist.reason(module, name, flavor)


def scan(data: bytes) -> PickleScan:
    """Walk the opcodes of ``data`` without executing anything; list the globals it imports."""
    return scan_pickle(data, "<pickle>")


def check(data: bytes, what: str, flavor: str | None = None, extra: Iterable[str] = ()) -> PickleScan:
    """Scan and refuse: raises UnsafeModel naming the first finding in ``what``."""
    result = scan_pickle(data, what, flavor, extra)
    if result.findings:
        first = result.findings[0]
        at = f" at byte {first.offset}" if first.offset is not None else ""
        more = f" (and {len(result.findings) - 1} more findings: shipyard scan lists them)" if len(result.findings) > 1 else ""
        raise UnsafeModel(f"{what}: pickle {first.detail}{at} ({first.reason}); refusing to load it{more}", hint=_HINT)
    return result


def _check_resolved(module: str, name: str, obj: Any, extra: Iterable[str]) -> None:
    """Refuse a global off the allow-list, a module object, or a name re-exporting something refused."""
    reason = denied_reason(module, name, None, extra)
    if reason is None and isinstance(obj, types.ModuleType):
        reason = f"{module}.{name} is the module {obj.__name__}"
    if reason is None and obj is not None:
        owner = getattr(obj, "__module__", None) or ""
        real = getattr(obj, "__name__", name)
        if isinstance(owner, str) and owner and (owner, real) != (module, name):
            inner = denied_reason(owner, real, None, extra)
            if inner:
                reason = f"{module}.{name} is {owner}.{real}: {inner}"
    if reason:
        raise UnsafeModel(f"pickle imports {module}.{name} ({reason}); refusing to load it", hint=_HINT)


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` refuses globals off the allow-list and what they alias."""

    extra: tuple[str, ...] = ()

    def find_class(self, module: str, name: str) -> Any:
        _check_resolved(module, name, None, self.extra)
        obj = super().find_class(module, name)
        _check_resolved(module, name, obj, self.extra)
        return obj


def restricted_loads(data: bytes, extra: Iterable[str] = ()) -> Any:
    """Unpickle ``data`` allowing only the allow-list's globals (plus ``extra``)."""
    unpickler = RestrictedUnpickler(io.BytesIO(data))
    unpickler.extra = tuple(extra)
    return unpickler.load()


def restricted_joblib_loads(data: bytes, extra: Iterable[str] = ()) -> Any:
    """Load a joblib file through joblib's own unpickler with our ``find_class``."""
    from joblib import numpy_pickle

    allowed = tuple(extra)

    class _Restricted(numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            _check_resolved(module, name, None, allowed)
            obj = super().find_class(module, name)
            _check_resolved(module, name, obj, allowed)
            return obj

    handle = io.BytesIO(data)
    with numpy_pickle._validate_fileobject_and_memmap(handle, "<model>", None) as (fobj, _):
        unpickler = _Restricted("<model>", fobj, ensure_native_byte_order=True)
        try:
            return unpickler.load()
        finally:
            if hasattr(unpickler, "file_handle"):
                unpickler.file_handle = None
