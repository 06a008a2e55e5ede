"""MLflow ``python_function`` models (a custom ``mlflow.pyfunc.PythonModel``): flavor ``mlflow_pyfunc``.

Such a model is a folder: the ``MLmodel``, ``python_model.pkl`` (the model object, cloudpickled),
``artifacts/`` (files the model reads in ``load_context``), ``code/`` (modules it imports) and the
requirements. The package holds the whole folder and ``shipyard-model.json``.

A cloudpickled ``PythonModel`` is code: its class and methods travel as bytecode that cloudpickle
rebuilds, so no static reading can tell what ``predict`` will do. Loading therefore needs trust
exactly like the ``pickle`` flavor (``--trust``, or a version trusted with ``shipyard models
trust``), and the pickle first goes through the one opcode scanner (``supply.pickles``) with this
flavor's allow-list: cloudpickle's own reconstruction helpers, MLflow's model base types, the
modules shipped in the model's ``code/`` folder and the project's ``supply.allow_globals``. Any
other import (``os.system``, ``subprocess``, ``builtins.eval`` ...) is refused even with trust:
it runs while unpickling, which no legitimate model needs. What the scan reports and trust
accepts is cloudpickle's rebuilding of the author's functions (calls of rebuilt callables).

Once trusted and scanned, the folder is checked out (every file verified) and loaded with
``mlflow.pyfunc.load_model``; predictions go through the model's ``predict`` with a pandas
DataFrame built per the MLmodel signature. A ``python_function`` model with another
``loader_module`` (a custom loader, or models-from-code) is refused with its name: it runs Python
source from the folder that no scan reads.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.errors import InputError, MissingExtra, ObjectCorrupt, UnsafeModel
from shipyard.hashing import FileEntry, Manifest, hash_bytes, is_dir_id
from shipyard.models.flavors.base import (
    FORMAT_VERSION,
    META_FILE,
    Flavor,
    LoadedModel,
    PackagedModel,
)
from shipyard.models.flavors.mlflow import MLMODEL, PYFUNC, parse_mlmodel
from shipyard.models.signature import Signature

PYFUNC_LOADER = "mlflow.pyfunc.model"

# What cloudpickle (1.x-3.x) writes to rebuild classes and functions defined by value. Not here:
# ``_file_reconstructor`` (opens a file) and anything else of cloudpickle's.
_CLOUDPICKLE_NAMES = ("_builtin_type", "_class_setstate", "_function_setstate", "_make_cell", "_make_empty_cell",
                      "_make_function", "_make_skeleton_class", "_make_skeleton_enum", "_enum_getnewargs",
                      "_make_dict_keys", "_make_dict_values", "_make_dict_items", "_make_typevar", "_get_bases",
                      "subimport", "dynamic_subimport", "_class_getnewargs", "_make__new__factory")
CLOUDPICKLE_GLOBALS = (*(f"{module}.{name}" for module in ("cloudpickle.cloudpickle", "cloudpickle.cloudpickle_fast")
                         for name in _CLOUDPICKLE_NAMES), "builtins.type", "types.SimpleNamespace")
# MLflow's types a PythonModel instance refers to by reference (its base classes, type hints)
MLFLOW_GLOBALS = ("mlflow.pyfunc.model.PythonModel", "mlflow.pyfunc.model.PythonModelContext",
                  "mlflow.pyfunc.utils.data_validation._FunctionPythonModel", "mlflow.models.signature._TypeHints",
                  "mlflow.pyfunc.model.ChatModel", "mlflow.pyfunc.model.ChatAgent")
# the one finding trust accepts: cloudpickle calling what it rebuilt (types.CodeType(...), a function)
_REBUILT_CALL = ("reduce-chain", "calls the result of another call")
_TRUST_HINT = ("if you know what this model's code does, trust the version: shipyard models trust NAME@VERSION "
               "(or pass --trust); a python_function model runs its author's code when it loads and predicts")


def pyfunc_conf(doc: Mapping[str, Any], where: str) -> dict[str, Any]:
    """The MLmodel's ``python_function`` section, refused with a reason unless it is a cloudpickled
    ``PythonModel`` (``loader_module: mlflow.pyfunc.model`` with a ``python_model`` pickle)."""
    conf = doc.get("flavors", {}).get("python_function")
    if not isinstance(conf, dict):
        raise InputError(f"{where} has no python_function flavor")
    loader = conf.get("loader_module")
    python_model = conf.get("python_model")
    if loader != PYFUNC_LOADER:
        raise InputError(f"{where}: python_function loader_module {loader!r} imports and runs Python source from "
                         "the model folder, which no scan reads; Shipyard does not load it",
                         hint="log a PythonModel instance (mlflow.pyfunc.log_model(python_model=MyModel())) or "
                              "the estimator with its own flavor (mlflow.sklearn/xgboost/lightgbm/onnx.log_model)")
    if not isinstance(python_model, str) or not python_model.endswith((".pkl", ".pickle")):
        raise InputError(f"{where}: this python_function model is defined by code ({python_model or conf.get('model_code_path')!r}, "
                         "MLflow's models-from-code), which runs when it loads and no scan reads; Shipyard does not load it",
                         hint="log a PythonModel instance (mlflow.pyfunc.log_model(python_model=MyModel())), whose "
                              "pickle Shipyard scans before it trusts it")
    return conf


def _inside(path: str, what: str) -> str:
    """A path the MLmodel names, which must stay inside the model folder."""
    parsed = PurePosixPath(path)
    if parsed.is_absolute() or ".." in parsed.parts or "\\" in path or not path:
        raise InputError(f"{what} names {path!r}, which is outside the model folder")
    return parsed.as_posix()


def code_module_globals(paths: list[str], code_dir: str | None) -> list[str]:
    """``module.*`` allow-list entries for the Python modules shipped in the model's ``code/`` folder
    (the author's own classes, pickled by reference). A module whose top-level name is importable
    from outside the folder (``os``, ``numpy`` ...) is left out: a file must not lend the standard
    library or an installed package the trust its own classes get."""
    if not code_dir:
        return []
    prefix = f"{code_dir.rstrip('/')}/"
    out: list[str] = []
    for path in paths:
        if not path.startswith(prefix) or not path.endswith(".py"):
            continue
        parts = path[len(prefix):-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if not parts or not all(p.isidentifier() for p in parts) or _importable(parts[0]):
            continue
        out.append(".".join(parts) + ".*")
    return out


def _importable(top: str) -> bool:
    """True when ``top`` is the standard library or an installed package (not a folder that
    ``mlflow.pyfunc.load_model`` put on ``sys.path`` for another model's code)."""
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return True
    import sysconfig

    installed = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib", "platstdlib")}
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return True   # cannot tell: not lent the model's trust
    places = [spec.origin] if spec and spec.origin else list(spec.submodule_search_locations or []) if spec else []
    return any(Path(place).resolve().is_relative_to(Path(root).resolve()) for place in places for root in installed)


def scan_python_model(data: bytes, what: str, extra: list[str]) -> dict[str, Any]:
    """Scan the cloudpickled model with this flavor's allow-list (plus ``extra``); refuse every
    finding except cloudpickle calling what it rebuilt. Returns facts for the package."""
    from shipyard.supply.pickles import scan_pickle

    result = scan_pickle(data, what, None, [*CLOUDPICKLE_GLOBALS, *MLFLOW_GLOBALS, *extra])
    refused = [f for f in result.findings if (f.kind, f.detail) != _REBUILT_CALL]
    if refused:
        first = refused[0]
        at = f" at byte {first.offset}" if first.offset is not None else ""
        more = f" (and {len(refused) - 1} more findings: shipyard scan lists them)" if len(refused) > 1 else ""
        raise UnsafeModel(f"{what}: pickle {first.detail}{at} ({first.reason}); refusing to load it, trusted or not{more}",
                          hint="a PythonModel pickle imports cloudpickle's helpers, MLflow's types and its code/ "
                               "modules only; this one would run something else while it loads. Do not trust it; "
                               "add your own classes to supply.allow_globals in shipyard.yaml if they are yours")
    return {"pickle_globals": sorted({f"{m}.{n}" for m, n, _ in result.globals}),
            "pickle_scan_complete": result.complete,
            "rebuilt_calls": len(result.findings)}


def allow_list(paths: list[str], code_dir: str | None) -> list[str]:
    """Everything a pyfunc pickle may import beyond cloudpickle's and MLflow's: its code/ modules
    and the project's ``supply.allow_globals``."""
    from shipyard.models.flavors.pickle import _project_allow_list

    return [*code_module_globals(paths, code_dir), *_project_allow_list()]


def registration_settings(settings: Any, objects: Any, packaged: PackagedModel) -> Any:
    """The ``supply`` settings registration scans a freshly packaged model with (``settings`` as
    they are, unless it is a python_function package).

    Its pickle was already scanned by this flavor, which refused every finding except cloudpickle
    rebuilding the author's functions (what trust accepts). So the registration scan takes this
    flavor's allow-list (cloudpickle's helpers, MLflow's types, the package's code/ modules) and,
    under ``supply.scan: refuse``, records the remaining findings instead of refusing them: the
    version is registered with them (a ``{scan: clean}`` gate fails it) and stays untrusted until
    someone trusts it.
    """
    if packaged.flavor != PYFUNC:
        return settings
    paths = sorted(e.path for e in objects.manifest(packaged.model_oid).entries)
    extra = [*CLOUDPICKLE_GLOBALS, *MLFLOW_GLOBALS, *code_module_globals(paths, packaged.meta.get("code"))]
    return settings.model_copy(update={"allow_globals": [*settings.allow_globals, *extra],
                                       "scan": "record" if settings.scan == "refuse" else settings.scan})


def _read_package(objects: Any, model_oid: str) -> tuple[dict[str, Any], dict[str, FileEntry]]:
    if not is_dir_id(model_oid):
        raise InputError(f"{model_oid} is not a model package (expected a folder id ending in .dir)")
    entries = {e.path: e for e in objects.manifest(model_oid).entries}
    if META_FILE not in entries:
        raise InputError(f"object {model_oid} is not a Shipyard model package (no {META_FILE})")
    meta = json.loads(objects.get_bytes(entries[META_FILE].oid))
    if meta.get("flavor") != PYFUNC:
        raise InputError(f"model {model_oid} was packaged as flavor {meta.get('flavor')!r}, not {PYFUNC!r}")
    return meta, entries


class MLflowPyfuncFlavor(Flavor):
    """``mlflow_pyfunc``: an MLflow model folder whose only flavor is ``python_function``."""

    name = PYFUNC
    safe = False
    extensions = (MLMODEL,)
    format_name = "MLflow python_function model"
    extra = "mlflow"

    def find_file(self, path: Path) -> Path:
        folder = path.parent if path.is_file() and path.name == MLMODEL else path
        if not (folder / MLMODEL).is_file():
            raise InputError(f"{path}: an MLflow model is a folder holding an {MLMODEL} file",
                             hint="point --path at the folder mlflow.pyfunc.save_model wrote")
        conf = pyfunc_conf(parse_mlmodel((folder / MLMODEL).read_bytes(), str(folder / MLMODEL)), str(folder))
        file = folder / _inside(conf["python_model"], "the MLmodel")
        if not file.is_file():
            raise InputError(f"the MLmodel names {conf['python_model']!r}, which is not in the model folder")
        return file

    def package(self, objects: Any, path: Path, *, trust: bool = False, sample: Any = None,
                classes: list[Any] | None = None, signature: Signature | None = None,
                untrusted_ok: bool = False) -> PackagedModel:
        """Store every file of the folder, then package them (``package_files``)."""
        folder = path.parent if path.is_file() else path
        self.find_file(folder)
        inside = folder.resolve()
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.resolve().is_relative_to(inside))
        oids = objects.put_bytes_many([p.read_bytes() for p in files])
        stored = {p.relative_to(folder).as_posix(): oid for p, oid in zip(files, oids, strict=True)}
        return self.package_files(objects, stored, str(folder), trust=trust, signature=signature,
                                  untrusted_ok=untrusted_ok)

    def package_files(self, objects: Any, files: Mapping[str, str], where: str, *, trust: bool = False,
                      signature: Signature | None = None, untrusted_ok: bool = False) -> PackagedModel:
        """Package an MLflow model folder whose files are in the object store (path -> object id).

        The pickle is scanned first (a refused import is refused with or without trust). With
        ``trust`` the folder is loaded once with MLflow to prove it loads; ``untrusted_ok`` (MLflow's
        REST API) stores it untrusted instead, so every later load needs trust.
        """
        if META_FILE in files:
            raise InputError(f"{where} holds a file named {META_FILE}, which Shipyard's package needs for itself")
        conf = pyfunc_conf(parse_mlmodel(objects.get_bytes(files[MLMODEL]), f"{where}/{MLMODEL}"), where)
        name = _inside(conf["python_model"], f"{where}/{MLMODEL}")
        if name not in files:
            raise InputError(f"the MLmodel names {name!r}, which is not in the model folder {where}")
        if not (trust or untrusted_ok):
            self._require_trust(trust, f"{where}/{name}")
        data = objects.get_bytes(files[name])
        code_dir = conf.get("code") if isinstance(conf.get("code"), str) else None
        meta: dict[str, Any] = {"format": FORMAT_VERSION, "flavor": self.name, "file": name,
                                "file_oid": hash_bytes(data), "size": 0, "trusted": bool(trust), "code": code_dir,
                                "mlflow_loader": PYFUNC_LOADER}
        meta.update(scan_python_model(data, f"{where}/{name}", allow_list(sorted(files), code_dir)))
        if signature is not None:
            meta["signature"] = signature.to_dict()
        contents = objects.get_many(list(files.values()))   # every file read once, verified
        entries = [FileEntry(path, oid, len(contents[oid])) for path, oid in sorted(files.items())]
        meta["size"] = sum(e.size for e in entries)
        meta_bytes = json.dumps(meta, sort_keys=True, indent=1).encode()
        meta_oid = objects.put_bytes(meta_bytes)
        manifest = Manifest(tuple(sorted([*entries, FileEntry(META_FILE, meta_oid, len(meta_bytes))],
                                         key=lambda e: e.path)))
        oid = objects.put_manifest(manifest)
        # the version's content is the whole folder (artifacts and code/ too), not only the pickle:
        # a changed artifact is a new version, the same folder again is the same one
        content_oid = hash_bytes(json.dumps(sorted(files.items())).encode())
        packaged = PackagedModel(oid, self.name, name, content_oid, meta["size"], signature, bool(trust), meta)
        if trust:
            self._open(objects, oid, name, meta)   # scanned above: prove it loads before it is registered trusted
        return packaged

    def load(self, objects: Any, model_oid: str, *, trust: bool = False) -> LoadedModel:
        """Scan, then check the folder out (verified) and load it with ``mlflow.pyfunc.load_model``."""
        meta, entries = _read_package(objects, model_oid)
        name = meta["file"]
        self._require_trust(trust, name)
        data = objects.get_bytes(entries[name].oid)
        if hash_bytes(data) != meta["file_oid"]:
            raise ObjectCorrupt(f"model file {name} of {model_oid} does not hash to the recorded {meta['file_oid']}",
                                hint="the package was tampered with; register the model again from its source")
        scan_python_model(data, name, allow_list(sorted(entries), meta.get("code")))
        return self._open(objects, model_oid, name, meta)

    def _open(self, objects: Any, model_oid: str, name: str, meta: dict[str, Any]) -> LoadedModel:
        """Check the scanned package out (verified) and load it with ``mlflow.pyfunc.load_model``."""
        try:
            import mlflow.pyfunc
        except ImportError as exc:
            raise MissingExtra("loading an MLflow python_function model needs the mlflow package, which is not installed",
                               hint="pip install mlflow") from exc
        folder = Path(tempfile.mkdtemp(prefix="shipyard-pyfunc-")) / "model"
        objects.checkout(model_oid, folder)
        try:
            native = self._load_checked_folder(mlflow.pyfunc, folder, name)
        except BaseException:
            shutil.rmtree(folder.parent, ignore_errors=True)
            raise
        loaded = LoadedModel(native, self, Signature.from_dict(meta.get("signature")), model_oid, meta)
        weakref.finalize(loaded, shutil.rmtree, str(folder.parent), True)   # artifacts stay while it lives
        return loaded

    def _load_checked_folder(self, pyfunc: Any, folder: Path, name: str) -> Any:
        from shipyard.errors import ShipyardError

        try:
            return pyfunc.load_model(str(folder))
        except ShipyardError:
            raise
        except Exception as exc:
            raise InputError(f"{name}: MLflow could not load this python_function model: {type(exc).__name__}: "
                             f"{str(exc)[:300]}",
                             hint="load it with mlflow.pyfunc.load_model in the environment that logged it "
                                  "(its requirements.txt lists what it needs)") from exc

    def _require_trust(self, trust: bool, what: str) -> None:
        if not trust:
            raise UnsafeModel(f"{what} is an {self.format_name} (cloudpickled code), which runs its author's code "
                              "when loaded; refusing without trust", hint=_TRUST_HINT)

    def _predict(self, loaded: LoadedModel, frame: Any) -> Any:
        out = loaded.native.predict(frame)
        if hasattr(out, "to_numpy"):
            out = out.to_numpy()
            if out.ndim == 2 and out.shape[1] == 1:
                out = out[:, 0]
        return out

    def _predict_proba(self, loaded: LoadedModel, frame: Any) -> Any:
        return None   # a PythonModel has predict only

    def _classes(self, loaded: LoadedModel) -> Any:
        return None
