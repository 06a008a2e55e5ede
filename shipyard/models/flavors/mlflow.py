"""MLflow-logged models: read the MLmodel file and package the model with the Shipyard flavor it maps to.

An MLflow model is a folder with an ``MLmodel`` file naming one or more flavors and their data
file. The model file inside is packaged by the Shipyard flavor that reads its format, so the
version loads, gates and serves like any other (its flavor is ``sklearn``, ``pickle``, ...):

=========================================  ================  ===============================
MLmodel flavor                             Shipyard flavor   loads
=========================================  ================  ===============================
sklearn, ``serialization_format: skops``   sklearn           safely (skops' type audit)
sklearn, cloudpickle or pickle             pickle            after the opcode scan, ``--trust``
xgboost, ``model_format: ubj`` or json     xgboost           safely (native format)
lightgbm Booster (``model.lgb`` text)      lightgbm          safely (native format)
lightgbm scikit-learn API (skops)         sklearn           its types are off our list: ``--trust``
onnx                                       onnx              safely
python_function only (a ``PythonModel``)   mlflow_pyfunc     after the opcode scan, trust
=========================================  ================  ===============================

The signature comes from the MLmodel's ``signature`` (``models.signature.from_mlflow``). A
``python_function``-only model (a custom ``PythonModel``, cloudpickled) is packaged whole, folder
and all, by ``models.flavors.pyfunc``; it runs its author's code, so it loads only with trust and
after the scan. A ``python_function`` model with another loader (models-from-code, a custom
``loader_module``) is refused with a reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.errors import InputError
from shipyard.models.flavors.base import META_FILE, Flavor, LoadedModel, PackagedModel
from shipyard.models.signature import Signature, from_mlflow

MLMODEL = "MLmodel"
PYFUNC = "mlflow_pyfunc"   # the flavor of a python_function-only model (models.flavors.pyfunc)
_PICKLES = ("cloudpickle", "pickle")


@dataclass(frozen=True)
class MLflowModel:
    """What the MLmodel file says, mapped: our flavor, the model file (relative), the signature."""

    flavor: str
    file: str
    mlflow_flavor: str
    serialization: str | None
    signature: Signature | None
    model_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"flavor": self.flavor, "file": self.file, "mlflow_flavor": self.mlflow_flavor,
                "serialization": self.serialization, "model_id": self.model_id}


def _no_mlmodel(where: Any) -> InputError:
    return InputError(f"{where} holds no {MLMODEL} file, so it is not an MLflow model",
                      hint="log the model with mlflow.<flavor>.log_model, or register the model file with 'shipyard models register'")


def read_mlmodel(folder: Path) -> dict[str, Any]:
    """The parsed MLmodel file of an MLflow model folder (a 400 naming what is wrong otherwise)."""
    path = folder / MLMODEL
    if not path.is_file():
        raise _no_mlmodel(folder)
    return parse_mlmodel(path.read_bytes(), str(path))


def parse_mlmodel(data: bytes, where: str) -> dict[str, Any]:
    """An MLmodel document from its bytes (``where`` names it in errors).

    Safe loading only; libyaml's C loader when PyYAML has it, since the pure-Python one costs
    milliseconds for an MLmodel file on every model version created over MLflow's API.
    """
    import yaml

    try:
        doc = yaml.load(data.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{where} is not valid YAML: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise InputError(f"{where} has no 'flavors' mapping", hint="is this an MLflow model folder?")
    return doc


def map_mlmodel(doc: dict[str, Any]) -> MLflowModel:
    """Our flavor and model file for an MLmodel document (first match: sklearn, xgboost, lightgbm, onnx,
    then a python_function-only model)."""
    flavors = doc["flavors"]
    signature = from_mlflow(doc.get("signature"))
    model_id = doc.get("model_id") or None
    for name in ("sklearn", "xgboost", "lightgbm", "onnx"):
        conf = flavors.get(name)
        if isinstance(conf, dict):
            ours, file, fmt = _map_one(name, conf)
            return MLflowModel(ours, _relative(file, name), name, fmt, signature, model_id)
    conf = flavors.get("python_function")
    if isinstance(conf, dict):
        from shipyard.models.flavors.pyfunc import pyfunc_conf

        file = pyfunc_conf(doc, "the MLmodel")["python_model"]
        return MLflowModel(PYFUNC, _relative(file, "python_function"), "python_function", "cloudpickle",
                           signature, model_id)
    known = ", ".join(sorted(flavors)) or "none"
    raise InputError(f"MLflow model flavors {known}: none of them is one Shipyard loads "
                     "(sklearn, xgboost, lightgbm, onnx, python_function)",
                     hint="log the estimator with mlflow.sklearn/xgboost/lightgbm/onnx.log_model, or a "
                          "PythonModel with mlflow.pyfunc.log_model")


def _map_one(name: str, conf: dict[str, Any]) -> tuple[str, Any, str | None]:
    fmt = conf.get("serialization_format") or conf.get("model_format")
    if name == "sklearn":
        file = conf.get("pickled_model")
        return ("sklearn" if fmt == "skops" else "pickle"), file, fmt or "cloudpickle"
    file = conf.get("data")
    if name == "xgboost":
        if fmt not in ("ubj", "json"):
            raise InputError(f"this XGBoost model is saved in the {fmt!r} format, which Shipyard does not load",
                             hint="log it with mlflow.xgboost.log_model(..., model_format='ubj')")
        return "xgboost", file, fmt
    if name == "lightgbm":
        suffix = str(file or "").rsplit(".", 1)[-1]
        if suffix in ("lgb", "txt"):
            return "lightgbm", file, "native"
        return ("sklearn" if suffix == "skops" else "pickle"), file, fmt
    return "onnx", file, "onnx"


def _relative(file: Any, flavor: str) -> str:
    """The model file named by the MLmodel, which must stay inside the model folder."""
    if not isinstance(file, str) or not file:
        raise InputError(f"MLmodel flavor {flavor!r} names no model file")
    path = PurePosixPath(file)
    if path.is_absolute() or ".." in path.parts or "\\" in file:
        raise InputError(f"MLmodel flavor {flavor!r} names the model file {file!r}, which is outside the model folder")
    return path.as_posix()


def model_file(folder: Path) -> tuple[Path, MLflowModel]:
    """The model file an MLflow model folder's MLmodel names (inside the folder), and the mapping."""
    mapped = map_mlmodel(read_mlmodel(folder))
    file = folder / mapped.file
    if not file.resolve().is_relative_to(folder.resolve()) or not file.is_file():
        raise InputError(f"the MLmodel names {mapped.file!r}, which is not in the model folder")
    return file, mapped


def package_mlflow_model(objects: Any, folder: Path, *, trust: bool = False, sample: Any = None,
                         classes: list[Any] | None = None,
                         untrusted_ok: bool = False) -> tuple[PackagedModel, MLflowModel]:
    """Package the model of an MLflow model folder with the flavor its MLmodel maps to.

    The signature is the MLmodel's unless a ``sample`` is given (then it is captured from it).
    ``untrusted_ok`` (MLflow's REST API, whose client cannot say ``--trust``) stores a pickle
    after its opcode scan as an untrusted package: every load of it then needs ``--trust``.
    """
    from shipyard.models.flavors import get_flavor

    file, mapped = model_file(folder)
    if mapped.flavor == PYFUNC:   # the whole folder is the model
        return get_flavor(PYFUNC).package(objects, folder, trust=trust, signature=mapped.signature,
                                          untrusted_ok=untrusted_ok), mapped
    packaged = get_flavor(mapped.flavor).package(objects, file, trust=trust, sample=sample, classes=classes,
                                                  signature=mapped.signature, untrusted_ok=untrusted_ok)
    return packaged, mapped


def package_mlflow_files(objects: Any, files: Mapping[str, str], where: str, *, trust: bool = False,
                         untrusted_ok: bool = False) -> tuple[PackagedModel, MLflowModel]:
    """``package_mlflow_model`` for an MLflow model whose files are already in the object store.

    ``files`` maps each file's path inside the model folder to its object id (a logged model's
    or a run's artifacts, uploaded through the artifact proxy); ``where`` names the folder in
    errors. The MLmodel and the model file are read from the store (each verified against its
    hash) and packaged from memory: nothing is copied to disk, and the model file, already
    stored, is not written again.
    """
    from shipyard.models.flavors import get_flavor

    if MLMODEL not in files:
        raise _no_mlmodel(where)
    mapped = map_mlmodel(parse_mlmodel(objects.get_bytes(files[MLMODEL]), f"{where}/{MLMODEL}"))
    if mapped.flavor == PYFUNC:   # the whole folder is the model
        from shipyard.models.flavors.pyfunc import MLflowPyfuncFlavor

        return MLflowPyfuncFlavor().package_files(objects, files, where, trust=trust, signature=mapped.signature,
                                                  untrusted_ok=untrusted_ok), mapped
    oid = files.get(mapped.file)
    if oid is None:
        raise InputError(f"the MLmodel names {mapped.file!r}, which is not in the model folder")
    name = PurePosixPath(mapped.file).name
    packaged = get_flavor(mapped.flavor).package_bytes(objects, name, objects.get_bytes(oid), what=f"{where}/{mapped.file}",
                                                       trust=trust, signature=mapped.signature, untrusted_ok=untrusted_ok)
    return packaged, mapped


class MLflowFlavor(Flavor):
    """``flavor: mlflow``: a folder written by ``mlflow.<flavor>.save_model``, registered with
    ``shipyard models register --flavor mlflow`` (``--trust`` for a pickled model).

    The package is the mapped flavor's (sklearn, pickle, xgboost, ...), so loading reads the
    flavor recorded in the package and lets that flavor load it, with its own trust rule.
    """

    name = "mlflow"
    extensions = (MLMODEL,)
    format_name = "MLflow model"

    def find_file(self, path: Path) -> Path:
        folder = path.parent if path.is_file() and path.name == MLMODEL else path
        if not folder.is_dir():
            raise InputError(f"{path}: an MLflow model is a folder holding an {MLMODEL} file",
                             hint="point --path at the folder mlflow.<flavor>.save_model wrote")
        return model_file(folder)[0]

    def package(self, objects: Any, path: Path, *, trust: bool = False, sample: Any = None,
                classes: list[Any] | None = None, signature: Signature | None = None,
                untrusted_ok: bool = False) -> PackagedModel:
        folder = path.parent if path.is_file() and path.name == MLMODEL else path
        return package_mlflow_model(objects, folder, trust=trust, sample=sample, classes=classes,
                                    untrusted_ok=untrusted_ok)[0]

    def load(self, objects: Any, model_oid: str, *, trust: bool = False) -> LoadedModel:
        import json

        from shipyard.hashing import is_dir_id
        from shipyard.models.flavors import get_flavor

        if not is_dir_id(model_oid):
            raise InputError(f"{model_oid} is not a model package (expected a folder id ending in .dir)")
        manifest = {e.path: e for e in objects.manifest(model_oid).entries}
        if META_FILE not in manifest:
            raise InputError(f"object {model_oid} is not a Shipyard model package (no {META_FILE})")
        inner = json.loads(objects.get_bytes(manifest[META_FILE].oid)).get("flavor")
        if inner == self.name or not isinstance(inner, str):
            raise InputError(f"model package {model_oid} records no flavor to load it with")
        return get_flavor(inner).load(objects, model_oid, trust=trust)
