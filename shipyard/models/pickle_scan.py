"""Pickle safety: a static scan of the opcodes, and a restricted unpickler for loading.

A pickle runs code on load: any importable callable named by a GLOBAL/STACK_GLOBAL opcode can be
called by REDUCE. ``scan`` walks the opcodes without executing anything and lists every global the
pickle would import; ``check`` refuses those on the deny list (os, subprocess, eval, exec, ...)
with an UnsafeModel error naming the global and its byte offset. Loading then goes through
``RestrictedUnpickler``, whose ``find_class`` applies the same rule to what the names resolve to
(so an alias such as ``somepackage.os`` or a re-exported ``os.system`` is refused too).

joblib files embed raw array bytes between opcodes, so the static walk stops at the first array;
the restricted unpickler (a subclass of joblib's own) covers the rest of the stream.
"""

from __future__ import annotations

import io
import pickle
import pickletools
import types
from dataclasses import dataclass
from typing import Any

from shipyard.errors import UnsafeModel

DENIED_MODULES = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "socket", "_socket", "sys", "shutil",
    "importlib", "runpy", "pty", "ctypes", "webbrowser", "code", "codeop", "commands", "multiprocessing",
    "asyncio", "pickle", "_pickle", "cPickle", "marshal", "dill", "cloudpickle", "signal", "threading",
    "_thread", "tempfile", "pathlib", "glob", "http", "urllib", "ftplib", "smtplib", "telnetlib",
    "requests", "httpx", "platform", "pdb", "bdb", "inspect", "gc", "sqlite3", "zipimport",
    "pkgutil", "site", "sysconfig", "imp", "builtins_exec",
})
DENIED_BUILTINS = frozenset({
    "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals", "locals",
    "vars", "input", "breakpoint", "exit", "quit", "help", "memoryview", "__loader__", "__build_class__",
    "execfile", "file", "reload", "apply",
})
DENIED_NAMES = frozenset({
    ("operator", "attrgetter"), ("operator", "methodcaller"), ("_operator", "attrgetter"),
    ("_operator", "methodcaller"), ("numpy", "load"), ("numpy", "loadtxt"), ("numpy", "fromfile"),
    ("joblib", "load"), ("pandas", "read_pickle"), ("torch", "load"),
})
_BUILTIN_MODULES = ("builtins", "__builtin__", "__builtins__")


@dataclass(frozen=True)
class ScanResult:
    """What the opcode walk found: every imported global, and whether it reached the end."""

    globals: tuple[tuple[str, str, int], ...]
    complete: bool
    stopped_at: int | None = None


def denied_reason(module: str, name: str) -> str | None:
    """Why importing ``module.name`` from a pickle is refused, or None when it is allowed."""
    root = module.split(".")[0]
    if module in _BUILTIN_MODULES:
        return f"builtin {name} can run arbitrary code" if name in DENIED_BUILTINS else None
    if root in DENIED_MODULES or module in DENIED_MODULES:
        return f"module {module} gives access to the system"
    if (module, name) in DENIED_NAMES or (root, name) in DENIED_NAMES:
        return f"{module}.{name} is a known gadget for running code from a pickle"
    return None


def scan(data: bytes) -> ScanResult:
    """Walk the opcodes of ``data`` without executing anything; list the globals it imports."""
    found: list[tuple[str, str, int]] = []
    strings: list[Any] = []  # recent pushes, enough to resolve STACK_GLOBAL's two operands
    memo: dict[int, Any] = {}
    stream = io.BytesIO(data)
    try:
        for op, arg, pos in pickletools.genops(stream):
            name = op.name
            if name == "BUILD" and any(m == "joblib.numpy_pickle" for m, _, _ in found):
                # joblib writes raw array bytes right after this BUILD: the opcode stream ends here.
                return ScanResult(tuple(found), False, pos)
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.append((module, attr, pos or 0))
                strings.append(None)
            elif name == "STACK_GLOBAL":
                module = strings[-2] if len(strings) >= 2 else None
                attr = strings[-1] if strings else None
                if not isinstance(module, str) or not isinstance(attr, str):
                    # Operands built some other way: we cannot tell what is imported, so refuse.
                    found.append(("<computed>", "<computed>", pos or 0))
                else:
                    found.append((module, attr, pos or 0))
                strings.append(None)
            elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                          "BINSTRING", "STRING"):
                strings.append(arg)
            elif name in ("MEMOIZE",):
                memo[len(memo)] = strings[-1] if strings else None
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = strings[-1] if strings else None
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                strings.append(memo.get(int(arg)))
            elif name == "STOP":
                continue
            else:
                strings.append(None)
            if len(strings) > 64:
                del strings[:32]
    except ValueError:
        return ScanResult(tuple(found), False, stream.tell())
    return ScanResult(tuple(found), True)


def check(data: bytes, what: str) -> ScanResult:
    """Scan and refuse: raises UnsafeModel naming the first denied global in ``what``."""
    result = scan(data)
    for module, name, pos in result.globals:
        if module == "<computed>":
            raise UnsafeModel(f"{what}: pickle builds the name of an import at run time (byte {pos}); refusing to load it",
                              hint="re-save the model in a safe format (skops, ONNX, native booster)")
        reason = denied_reason(module, name)
        if reason:
            raise UnsafeModel(f"{what}: pickle imports {module}.{name} at byte {pos} ({reason}); refusing to load it",
                              hint="this file would run code when loaded; do not trust it. Re-save the model in a safe format (skops, ONNX, native booster)")
    return result


def _check_resolved(module: str, name: str, obj: Any) -> None:
    reason = denied_reason(module, name)
    if reason is None and isinstance(obj, types.ModuleType):
        reason = f"{module}.{name} is the module {obj.__name__}"
    if reason is None:
        owner = getattr(obj, "__module__", None) or ""
        if isinstance(owner, str) and owner:
            inner = denied_reason(owner, getattr(obj, "__name__", name))
            if inner:
                reason = f"{module}.{name} is {owner}.{getattr(obj, '__name__', name)}: {inner}"
    if reason:
        raise UnsafeModel(f"pickle imports {module}.{name} ({reason}); refusing to load it",
                          hint="this file would run code when loaded; re-save the model in a safe format")


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` refuses denied globals and what they alias."""

    def find_class(self, module: str, name: str) -> Any:
        if denied_reason(module, name):
            _check_resolved(module, name, None)
        obj = super().find_class(module, name)
        _check_resolved(module, name, obj)
        return obj


def restricted_loads(data: bytes) -> Any:
    return RestrictedUnpickler(io.BytesIO(data)).load()


def restricted_joblib_loads(data: bytes) -> Any:
    """Load a joblib file through joblib's own unpickler with our ``find_class``."""
    from joblib import numpy_pickle

    class _Restricted(numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            if denied_reason(module, name):
                _check_resolved(module, name, None)
            obj = super().find_class(module, name)
            _check_resolved(module, name, obj)
            return obj

    handle = io.BytesIO(data)
    with numpy_pickle._validate_fileobject_and_memmap(handle, "<model>", None) as (fobj, _):
        unpickler = _Restricted("<model>", fobj, ensure_native_byte_order=True)
        try:
            return unpickler.load()
        finally:
            if hasattr(unpickler, "file_handle"):
                unpickler.file_handle = None
