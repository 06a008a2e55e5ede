"""A static walk of pickle opcodes with a symbolic stack: nothing is imported, nothing is called.

Each GLOBAL/STACK_GLOBAL/INST becomes a symbol, each REDUCE/NEWOBJ/OBJ a call of a symbol, so the
walk knows (1) every global the pickle would import, judged by the allow-list, (2) calls whose
target is itself the result of a call (``__reduce__`` chains such as ``getattr(x, "system")(...)``)
and imports whose names are computed at run time, and (3) joblib's array wrappers: after the
wrapper's BUILD, joblib reads raw array bytes (skipped here, by the size the wrapper's dtype and shape
give) or, for object arrays, a *nested* pickle, which is walked in turn. Anything the walk cannot
follow is a finding, never a silent pass.
"""

from __future__ import annotations

import io
import pickletools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from math import prod
from typing import Any, BinaryIO

from shipyard.supply import allowlist


@dataclass(frozen=True)
class Finding:
    """One reason not to trust a file: where, what, and why."""

    file: str
    kind: str
    detail: str
    reason: str
    offset: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "kind": self.kind, "detail": self.detail, "reason": self.reason,
                "offset": self.offset}

    def __str__(self) -> str:
        at = f" at byte {self.offset}" if self.offset is not None else ""
        return f"{self.file}: {self.detail}{at} ({self.reason})"


@dataclass(frozen=True)
class PickleScan:
    """Every global the pickle imports (module, name, byte offset), and the findings."""

    globals: tuple[tuple[str, str, int], ...]
    findings: tuple[Finding, ...]
    complete: bool


class _Global:
    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def is_(self, module: str, name: str) -> bool:
        return self.module == module and self.name == name


class _Call:
    def __init__(self, func: Any, args: Any) -> None:
        self.func, self.args, self.state = func, args, None


class _Opaque:
    """A value the walk does not model (persistent ids, buffers, extension codes)."""


_MARK = object()
_VALUE_OPS = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "STRING",
    "BINSTRING", "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "UNICODE",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
})
_MAX_DEPTH = 8
_DESCR = re.compile(r"[<>|=]?([?bBiufcVSaUMmO])(\d*)")


class _Walker:
    """One pickle stream (and the pickles nested in it) read from ``stream`` up to its STOP."""

    def __init__(self, stream: BinaryIO, what: str, flavor: str | None, extra: tuple[str, ...], size: int,
                 depth: int = 0) -> None:
        self.stream, self.what, self.flavor, self.extra, self.size, self.depth = stream, what, flavor, extra, size, depth
        self.stack: list[Any] = []
        self.memo: dict[int, Any] = {}
        self.globals: list[tuple[str, str, int]] = []
        self.findings: list[Finding] = []

    def finding(self, kind: str, detail: str, reason: str, pos: int | None) -> None:
        label = self.what if self.depth == 0 else f"{self.what} (nested pickle, level {self.depth})"
        self.findings.append(Finding(label, kind, detail, reason, pos))

    def run(self) -> bool:
        """Walk to STOP; False when the stream could not be read to its end (a finding says why)."""
        stream, stack, memo = self.stream, self.stack, self.memo
        read, tell, code2op, handlers = stream.read, stream.tell, pickletools.code2op, _HANDLERS
        pos = tell()
        try:
            # pickletools.genops without its generator: the ops most files are made of inline
            while True:
                pos = tell()
                code = read(1)
                if not code:
                    break
                op = code2op.get(code.decode("latin-1"))
                if op is None:
                    raise ValueError(f"opcode {code!r} unknown")
                name = op.name
                arg = None if op.arg is None else op.arg.reader(stream)
                if name in _VALUE_OPS:
                    stack.append(arg)
                elif name == "MEMOIZE":
                    memo[len(memo)] = stack[-1]
                elif name in ("BINGET", "LONG_BINGET", "GET"):
                    stack.append(memo[int(arg)])
                elif name == "STOP":
                    return True
                else:
                    handler = handlers.get(name)
                    if handler is None:
                        raise ValueError(f"opcode {name} is not understood by the scan")
                    handler(self, arg, pos)
        except (ValueError, IndexError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            self.finding("unreadable", "the pickle stream cannot be read to its end",
                         f"{type(exc).__name__}: {str(exc)[:120]}; the rest of the file is unscanned", pos)
            return False
        self.finding("unreadable", "the pickle stream ends without STOP", "truncated file; the rest is unscanned", pos)
        return False

    def pop_mark(self) -> list[Any]:
        stack = self.stack
        for i in range(len(stack) - 1, -1, -1):
            if stack[i] is _MARK:
                items = stack[i + 1:]
                del stack[i:]
                return items
        raise IndexError("MARK missing")

    # -- one handler per opcode (``_HANDLERS`` maps the opcode names to them) -------------------
    def _op_NONE(self, arg: Any, pos: int) -> None:
        self.stack.append(None)

    def _op_NEWTRUE(self, arg: Any, pos: int) -> None:
        self.stack.append(True)

    def _op_NEWFALSE(self, arg: Any, pos: int) -> None:
        self.stack.append(False)

    def _op_MARK(self, arg: Any, pos: int) -> None:
        self.stack.append(_MARK)

    def _op_EMPTY_TUPLE(self, arg: Any, pos: int) -> None:
        self.stack.append(())

    def _op_EMPTY_LIST(self, arg: Any, pos: int) -> None:
        self.stack.append([])

    _op_EMPTY_SET = _op_EMPTY_LIST

    def _op_EMPTY_DICT(self, arg: Any, pos: int) -> None:
        self.stack.append({})

    def _op_TUPLE(self, arg: Any, pos: int) -> None:
        self.stack.append(tuple(self.pop_mark()))

    _op_FROZENSET = _op_TUPLE

    def _op_LIST(self, arg: Any, pos: int) -> None:
        self.stack.append(self.pop_mark())

    def _op_TUPLE1(self, arg: Any, pos: int) -> None:
        self.stack[-1] = (self.stack[-1],)

    def _op_TUPLE2(self, arg: Any, pos: int) -> None:
        self._tuple_n(2)

    def _op_TUPLE3(self, arg: Any, pos: int) -> None:
        self._tuple_n(3)

    def _tuple_n(self, n: int) -> None:
        if len(self.stack) < n:
            raise IndexError("stack underflow")
        items = tuple(self.stack[-n:])
        del self.stack[-n:]
        self.stack.append(items)

    def _op_DICT(self, arg: Any, pos: int) -> None:
        items = self.pop_mark()
        self.stack.append(_dict(zip(items[::2], items[1::2], strict=False)))

    def _op_APPEND(self, arg: Any, pos: int) -> None:
        value = self.stack.pop()
        if isinstance(self.stack[-1], list):
            self.stack[-1].append(value)

    def _op_APPENDS(self, arg: Any, pos: int) -> None:
        items = self.pop_mark()
        if isinstance(self.stack[-1], list):
            self.stack[-1].extend(items)

    _op_ADDITEMS = _op_APPENDS

    def _op_SETITEM(self, arg: Any, pos: int) -> None:
        value, key = self.stack.pop(), self.stack.pop()
        if isinstance(self.stack[-1], dict):
            self.stack[-1].update(_dict([(key, value)]))

    def _op_SETITEMS(self, arg: Any, pos: int) -> None:
        items = self.pop_mark()
        if isinstance(self.stack[-1], dict):
            self.stack[-1].update(_dict(zip(items[::2], items[1::2], strict=False)))

    def _op_POP(self, arg: Any, pos: int) -> None:
        self.stack.pop()

    def _op_POP_MARK(self, arg: Any, pos: int) -> None:
        self.pop_mark()

    def _op_DUP(self, arg: Any, pos: int) -> None:
        self.stack.append(self.stack[-1])

    def _op_PUT(self, arg: Any, pos: int) -> None:
        self.memo[int(arg)] = self.stack[-1]

    _op_BINPUT = _op_LONG_BINPUT = _op_PUT

    def _op_GLOBAL(self, arg: Any, pos: int) -> None:
        module, _, attr = str(arg).partition(" ")
        self.stack.append(self.imports(module, attr, pos))

    def _op_STACK_GLOBAL(self, arg: Any, pos: int) -> None:
        attr, module = self.stack.pop(), self.stack.pop()
        if isinstance(module, str) and isinstance(attr, str):
            self.stack.append(self.imports(module, attr, pos))
            return
        self.finding("computed-import", "an import whose name is built at run time",
                     "the walk cannot tell what it imports; a model file has no reason to do this", pos)
        self.stack.append(_Global("<computed>", "<computed>"))

    def _op_INST(self, arg: Any, pos: int) -> None:
        module, _, attr = str(arg).partition(" ")
        self.stack.append(self.call(self.imports(module, attr, pos), tuple(self.pop_mark()), pos))

    def _op_OBJ(self, arg: Any, pos: int) -> None:
        items = self.pop_mark()
        self.stack.append(self.call(items[0], tuple(items[1:]), pos))

    def _op_REDUCE(self, arg: Any, pos: int) -> None:
        args = self.stack.pop()
        self.stack.append(self.call(self.stack.pop(), args, pos))

    _op_NEWOBJ = _op_REDUCE

    def _op_NEWOBJ_EX(self, arg: Any, pos: int) -> None:
        self.stack.pop()
        self._op_REDUCE(arg, pos)

    def _op_BUILD(self, arg: Any, pos: int) -> None:
        self.build(self.stack.pop(), pos)

    def _op_BINPERSID(self, arg: Any, pos: int) -> None:
        self.stack[-1] = _Opaque()

    def _op_PERSID(self, arg: Any, pos: int) -> None:
        self.stack.append(_Opaque())

    _op_NEXT_BUFFER = _op_PERSID

    def _op_EXT1(self, arg: Any, pos: int) -> None:
        self.finding("extension-code", f"an import through the extension registry (code {arg})",
                     "the object imported depends on the loading process; not allowed in a model file", pos)
        self.stack.append(_Global("<extension>", str(arg)))

    _op_EXT2 = _op_EXT4 = _op_EXT1

    def _op_FRAME(self, arg: Any, pos: int) -> None:
        """Framing, the protocol number and read-only buffers change nothing on the stack."""

    _op_PROTO = _op_READONLY_BUFFER = _op_FRAME

    def imports(self, module: str, name: str, pos: int) -> _Global:
        self.globals.append((module, name, pos))
        if not allowlist.is_allowed(module, name, self.flavor, self.extra):
            self.finding("global", f"imports {module}.{name}", allowlist.reason(module, name, self.flavor), pos)
        return _Global(module, name)

    def call(self, func: Any, args: Any, pos: int) -> _Call:
        if isinstance(func, _Call):
            self.finding("reduce-chain", "calls the result of another call",
                         "a __reduce__ chain (such as getattr(module, name)(...)) reaches callables no import names", pos)
        elif not isinstance(func, _Global):
            self.finding("reduce-chain", f"calls a {type(func).__name__} value",
                         "only imported classes may be called in a model file", pos)
        return _Call(func, args)

    def build(self, state: Any, pos: int) -> None:
        obj = self.stack[-1]
        if not isinstance(obj, _Call):
            return
        obj.state = state
        target = obj.func
        if isinstance(target, _Global) and target.is_("copyreg", "_reconstructor") and obj.args:
            target = obj.args[0]
        if isinstance(target, _Global) and target.is_("joblib.numpy_pickle", "NumpyArrayWrapper"):
            self.joblib_array(state, pos)

    def joblib_array(self, state: Any, pos: int) -> None:
        """Step over the array joblib writes after its wrapper: raw bytes, or a nested pickle."""
        dtype = state.get("dtype") if isinstance(state, dict) else None
        descr, elsize = _dtype_of(dtype)
        if descr is not None and descr.lstrip("<>|=").startswith("O"):
            if self.depth >= _MAX_DEPTH:
                raise ValueError("pickles nested too deep")
            inner = _Walker(self.stream, self.what, self.flavor, self.extra, self.size, self.depth + 1)
            inner.run()
            self.globals.extend(inner.globals)
            self.findings.extend(inner.findings)
            return
        itemsize = elsize if elsize and elsize > 0 else _itemsize(descr)
        shape = state.get("shape") if isinstance(state, dict) else None
        if itemsize is None or not isinstance(shape, tuple) or not all(isinstance(n, int) and n >= 0 for n in shape):
            raise ValueError(f"joblib array of dtype {descr!r} and shape {shape!r} cannot be stepped over")
        if "numpy_array_alignment_bytes" in state and state["numpy_array_alignment_bytes"] is not None:
            padding = self.stream.read(1)
            self.stream.seek(int.from_bytes(padding or b"\0", "little"), io.SEEK_CUR)
        end = self.stream.tell() + prod(shape) * itemsize
        if end > self.size:
            raise ValueError(f"joblib array at byte {pos} claims {end - self.stream.tell()} bytes past the end of the file")
        self.stream.seek(end)


_HANDLERS: dict[str, Any] = {name[4:]: fn for name, fn in vars(_Walker).items() if name.startswith("_op_")}


def _dict(pairs: Iterable[tuple[Any, Any]]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    for key, value in pairs:
        try:
            out[key] = value
        except TypeError:
            continue  # an unhashable symbolic key: the value is of no use to the walk
    return out


def _dtype_of(dtype: Any) -> tuple[str | None, int | None]:
    """(descr, element size) of a pickled ``numpy.dtype(descr, ...)`` call with its BUILD state."""
    if not (isinstance(dtype, _Call) and isinstance(dtype.func, _Global) and dtype.func.is_("numpy", "dtype")):
        return None, None
    descr = dtype.args[0] if isinstance(dtype.args, tuple) and dtype.args else None
    state = dtype.state
    elsize = state[5] if isinstance(state, tuple) and len(state) > 5 and isinstance(state[5], int) else None
    if isinstance(state, tuple) and len(state) > 2 and state[2] is not None:
        return "V", elsize   # a structured dtype: its size is the recorded element size
    return (descr if isinstance(descr, str) else None), elsize


def _itemsize(descr: str | None) -> int | None:
    match = _DESCR.fullmatch(descr or "")
    if not match:
        return None
    kind, digits = match.group(1), match.group(2)
    if kind in "?bB":
        return 1
    if kind == "O":
        return None
    n = int(digits) if digits else None
    return None if n is None else n * 4 if kind == "U" else n


def scan_pickle(data: bytes, what: str, flavor: str | None = None, extra: Iterable[str] = ()) -> PickleScan:
    """Walk one pickle (or joblib) file's opcodes; list its globals and what is wrong with them."""
    walker = _Walker(io.BytesIO(data), what, flavor, tuple(extra), len(data))
    complete = walker.run()
    return PickleScan(tuple(walker.globals), tuple(walker.findings), complete)

