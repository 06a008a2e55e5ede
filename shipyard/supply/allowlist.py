"""The globals a model pickle may import, per flavor: an allow-list, never a deny-list.

A pickle can call any importable callable, and the standard library alone holds many that run code
(``uuid._get_command_stdout``, ``pydoc.pipepager``, ``timeit.timeit`` ...). A deny-list has to name
every one of them and leaks the day a new one is found; here a global is accepted only when it is a
data type a model of that flavor is made of (numpy arrays, estimator classes, containers). The
deny-list that used to decide survives as ``danger``: it only explains *why* a refused global is
bad, so that a finding reads "os.system: module os gives access to the system".
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# -- exact (module, name) pairs every flavor may import --------------------------------------------
_BASE_EXACT = {
    "builtins": {"set", "frozenset", "slice", "complex", "bytearray", "bytes", "object", "dict", "list",
                 "tuple", "int", "float", "str", "bool", "range"},
    "__builtin__": {"set", "frozenset", "slice", "complex", "bytearray", "bytes", "object", "long"},
    "collections": {"OrderedDict", "defaultdict", "deque", "Counter"},
    "copyreg": {"_reconstructor"},
    "copy_reg": {"_reconstructor"},
    "_codecs": {"encode"},
    "datetime": {"datetime", "date", "time", "timedelta", "timezone"},
    "decimal": {"Decimal"},
    "numpy": {"ndarray", "dtype", "matrix"},
    "numpy.core.multiarray": {"_reconstruct", "scalar"},
    "numpy._core.multiarray": {"_reconstruct", "scalar"},
    "numpy.core.numeric": {"_frombuffer"},
    "numpy._core.numeric": {"_frombuffer"},
    "numpy.ma.core": {"_mareconstruct", "MaskedArray"},
    "numpy.random._pickle": {"__randomstate_ctor", "__bit_generator_ctor", "__generator_ctor"},
    "numpy.random.mtrand": {"RandomState", "_rand"},
    "numpy.random._generator": {"Generator"},
    "numpy.random._mt19937": {"MT19937"},
    "numpy.random._pcg64": {"PCG64", "PCG64DXSM"},
    "numpy.random._philox": {"Philox"},
    "numpy.random._sfc64": {"SFC64"},
    "numpy.random.bit_generator": {"SeedSequence", "__pyx_unpickle_SeedSequence"},
    "joblib.numpy_pickle": {"NumpyArrayWrapper"},
    "joblib.numpy_pickle_compat": {"NDArrayWrapper", "ZNDArrayWrapper"},
}
# numpy's scalar and dtype classes (numpy.float64, numpy.dtypes.Float64DType, ...)
_NUMPY_SCALAR = re.compile(r"(u?int(8|16|32|64|c|p)?|u?long(long)?|u?short|u?byte|float(16|32|64|128)?|"
                           r"complex(64|128|256)?|c?longdouble|half|single|double|csingle|cdouble|"
                           r"bool_?|str_|bytes_|void|object_|datetime64|timedelta64|\w+DType)")

# -- ecosystems: (module prefix, name rule, modules under the prefix that are never allowed) ------
_CLASS = re.compile(r"_?[A-Z]\w*")                        # classes, not functions (fetchers, loaders)
_PANDAS_NAME = re.compile(r"_?[A-Z]\w*|_new_\w+|_unpickle\w*|__pyx_unpickle\w*|_reconstruct\w*|new_block\w*|"
                          r"_restore\w*")
ECOSYSTEMS: dict[str, tuple[tuple[str, re.Pattern[str], tuple[str, ...]], ...]] = {
    "sklearn": (("sklearn.", _CLASS, ("sklearn.datasets", "sklearn.utils._testing", "sklearn.externals",
                                      "sklearn.utils._show_versions")),
                ("sklearn.", re.compile(r"_passthrough_scorer|__pyx_unpickle_\w+"), ("sklearn.datasets",)),),
    "scipy": (("scipy.sparse.", _CLASS, ()), ("scipy.sparse.", re.compile(r"_\w+_matrix|_\w+_array"), ())),
    "pandas": (("pandas.core.", _PANDAS_NAME, ("pandas.core.computation", "pandas.io")),
               ("pandas._libs.", _PANDAS_NAME, ()), ("pandas.", re.compile(r"(DataFrame|Series|Index|Categorical|Timestamp|Timedelta|Period|Interval)"), ()),),
    "xgboost": (("xgboost.", _CLASS, ("xgboost.testing", "xgboost.dask", "xgboost.spark", "xgboost.tracker")),),
    "lightgbm": (("lightgbm.", _CLASS, ("lightgbm.dask",)),),
}
# which ecosystems a pickle of each flavor may draw on; a pickle stored by another flavor (an
# MLflow model's python_model.pkl, a plain joblib file) may hold any of the data libraries
FLAVOR_ECOSYSTEMS: dict[str, tuple[str, ...]] = {
    "sklearn": ("sklearn", "scipy", "pandas"),
    "xgboost": ("xgboost", "sklearn", "scipy", "pandas"),
    "lightgbm": ("lightgbm", "sklearn", "scipy", "pandas"),
}
ALL_ECOSYSTEMS = tuple(ECOSYSTEMS)

# -- why a refused global is dangerous (explanations only; the decision is the allow-list) --------
DANGER_MODULES = frozenset({
    "os", "posix", "nt", "posixpath", "ntpath", "subprocess", "socket", "_socket", "sys", "shutil",
    "importlib", "runpy", "pty", "ctypes", "webbrowser", "code", "codeop", "commands", "multiprocessing",
    "asyncio", "pickle", "_pickle", "cPickle", "marshal", "dill", "cloudpickle", "signal", "threading",
    "_thread", "tempfile", "pathlib", "glob", "http", "urllib", "ftplib", "smtplib", "telnetlib",
    "requests", "httpx", "platform", "pdb", "bdb", "inspect", "gc", "sqlite3", "zipimport",
    "pkgutil", "site", "sysconfig", "imp", "uuid", "imaplib", "pydoc", "timeit", "cProfile", "profile",
    "logging", "_pyrepl", "trace", "nntplib", "poplib", "xmlrpc", "venv", "ensurepip", "pip", "shelve",
})
DANGER_BUILTINS = frozenset({
    "eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr", "globals", "locals",
    "vars", "input", "breakpoint", "exit", "quit", "help", "memoryview", "__loader__", "__build_class__",
    "execfile", "file", "reload", "apply",
})
DANGER_NAMES = {
    ("uuid", "_get_command_stdout"): "runs a shell command", ("imaplib", "IMAP4_stream"): "runs a shell command",
    ("pydoc", "pipepager"): "pipes text into a shell command", ("timeit", "timeit"): "executes a code string",
    ("cProfile", "run"): "executes a code string", ("profile", "run"): "executes a code string",
    ("logging", "FileHandler"): "creates or truncates any file", ("operator", "attrgetter"): "reaches any attribute",
    ("operator", "methodcaller"): "calls any method", ("_operator", "attrgetter"): "reaches any attribute",
    ("_operator", "methodcaller"): "calls any method", ("numpy", "load"): "loads a second, unchecked pickle",
    ("joblib", "load"): "loads a second, unchecked pickle", ("pandas", "read_pickle"): "loads a second, unchecked pickle",
    ("torch", "load"): "loads a second, unchecked pickle",
}
_BUILTIN_MODULES = ("builtins", "__builtin__", "__builtins__")

# skops rebuilds types outside its own default list only when told to trust them: these we accept
SKOPS_TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "scipy.special.", "collections.OrderedDict",
                          "collections.defaultdict", "builtins.slice", "builtins.frozenset", "builtins.set")


def untrusted_skops_types(types: Iterable[str]) -> list[str]:
    """The types a skops file holds that are not on our trusted list."""
    return [t for t in types if not t.startswith(SKOPS_TRUSTED_PREFIXES)]


def is_allowed(module: str, name: str, flavor: str | None = None, extra: Iterable[str] = ()) -> bool:
    """True when a pickle of ``flavor`` may import ``module.name``. ``extra`` holds the project's
    own additions (``supply.allow_globals``): exact ``module.name`` or ``module.*`` entries."""
    if name in _BASE_EXACT.get(module, ()):
        return True
    if module in ("numpy", "numpy.dtypes") and _NUMPY_SCALAR.fullmatch(name):
        return True
    for ecosystem in FLAVOR_ECOSYSTEMS.get(flavor or "", ALL_ECOSYSTEMS):
        for prefix, rule, excluded in ECOSYSTEMS[ecosystem]:
            if module.startswith(prefix) and rule.fullmatch(name) and not module.startswith(excluded):
                return True
    full = f"{module}.{name}"
    return any(full == e or (e.endswith(".*") and module == e[:-2]) for e in extra)


def danger(module: str, name: str) -> str | None:
    """What a known-dangerous global does, or None when it is merely not on the allow-list."""
    root = module.split(".")[0]
    if module in _BUILTIN_MODULES:
        return f"builtin {name} can run arbitrary code" if name in DANGER_BUILTINS else None
    known = DANGER_NAMES.get((module, name)) or DANGER_NAMES.get((root, name))
    if known:
        return f"{module}.{name} {known}: a known gadget for running code from a pickle"
    if root in DANGER_MODULES or module in DANGER_MODULES:
        return f"module {module} gives access to the system"
    return None


def reason(module: str, name: str, flavor: str | None) -> str:
    """The reason a refused global is a finding, for the report."""
    bad = danger(module, name)
    where = f"the {flavor} flavor's allow-list" if flavor in FLAVOR_ECOSYSTEMS else "the allow-list"
    return f"{bad}; not on {where}" if bad else f"not on {where} (a model pickle imports data types only)"
