"""The flavor base class: hashing, signature capture and the trust check around ``_save``/``_load``.

A registered model is a *package*: a folder object holding the model file (in the flavor's own
format) and ``shipyard-model.json`` (flavor, file name and hash, signature, classes, trust).
``package`` reads a model file, refuses unsafe formats unless trusted, loads it once to prove the
file is what the flavor says, captures the signature from a sample and stores everything in the
object store. ``load`` reads the package back (every byte verified against its hash), checks the
recorded hash and trust again, and returns a ``LoadedModel``. Flavors fill in ``_load``,
``_save``, ``_predict`` (and optionally ``_predict_proba``, ``_classes``, ``_check``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from shipyard.errors import InputError, ObjectCorrupt, ShipyardError, UnsafeModel
from shipyard.hashing import FileEntry, Manifest, hash_bytes, is_dir_id
from shipyard.models.signature import (
    INTEGER_TYPES,
    NUMERIC_TYPES,
    Signature,
    fits_type,
    infer_signature,
    to_pandas,
    typed_frame,
)

META_FILE = "shipyard-model.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class PackagedModel:
    """What ``Flavor.package`` stored: the package id, its size and what it captured."""

    model_oid: str
    flavor: str
    file: str
    file_oid: str
    size_bytes: int
    signature: Signature | None
    trusted: bool
    meta: dict[str, Any]


class LoadedModel:
    """A model in memory: predict, predict_proba, classes and signature, whatever its flavor."""

    def __init__(self, native: Any, flavor: Flavor, signature: Signature | None, model_oid: str | None,
                 meta: dict[str, Any]) -> None:
        self.native = native
        self.flavor = flavor
        self.signature = signature
        self.model_oid = model_oid
        self.meta = meta

    def _frame(self, frame: Any) -> Any:
        return self.signature.enforce(frame) if self.signature is not None else to_pandas(frame)

    def predict(self, frame: Any) -> Any:
        import numpy as np

        return np.asarray(self.flavor._predict(self, self._frame(frame)))

    def predict_proba(self, frame: Any) -> Any:
        out = self.flavor._predict_proba(self, self._frame(frame))
        if out is None:
            return None
        import numpy as np

        return np.asarray(out, dtype=float)

    def predict_array(self, array: Any) -> Any:
        """Predict from a float64 matrix whose columns are the signature's inputs, in order (the
        gateway's fast path: no DataFrame when the flavor can take a matrix; else as ``predict``)."""
        import numpy as np

        native = self._matrix_native(array)
        return np.asarray(native.predict(array)) if native is not None else self.predict(self._matrix_frame(array))

    def predict_proba_array(self, array: Any) -> Any:
        """``predict_proba`` from a matrix, as ``predict_array``."""
        native = self._matrix_native(array)
        if native is None:
            return self.predict_proba(self._matrix_frame(array))
        method = getattr(native, "predict_proba", None)
        if method is None:
            return None
        import numpy as np

        return np.asarray(method(array), dtype=float)

    def _matrix_native(self, array: Any) -> Any:
        """The native model when it may take ``array`` as is: every input numeric (double, long,
        boolean), the flavor able to (names checked once), no missing value in a column that must
        have one, and whole numbers in long columns (0 or 1 in boolean ones). Otherwise the
        DataFrame path runs, and its signature check names the column."""
        if not hasattr(self, "_matrix_ready"):
            sig = self.signature
            ok = sig is not None and all(c.type in NUMERIC_TYPES for c in sig.inputs)
            self._matrix_model = self.flavor._array_native(self) if ok else None
            inputs = list(sig.inputs) if ok and sig else []
            self._matrix_required = [i for i, c in enumerate(inputs) if not c.nullable]
            self._matrix_whole = [i for i, c in enumerate(inputs) if c.type in INTEGER_TYPES]
            self._matrix_flags = [i for i, c in enumerate(inputs) if c.type == "boolean"]
            self._matrix_ready = True
        if self._matrix_model is None:
            return None
        import numpy as np

        if self._matrix_required and np.isnan(array[:, self._matrix_required]).any():
            return None
        if self._matrix_whole and not fits_type(array[:, self._matrix_whole], "long", missing=True):
            return None
        if self._matrix_flags and not fits_type(array[:, self._matrix_flags], "boolean", missing=True):
            return None
        return self._matrix_model

    def _matrix_frame(self, array: Any) -> Any:
        sig = self.signature
        return typed_frame(array, None, ()) if sig is None else typed_frame(array, list(sig.columns),
                                                                            [c.type for c in sig.inputs])

    @property
    def classes(self) -> list[Any] | None:
        found = self.flavor._classes(self)
        if found is None and self.meta.get("classes") is not None:
            return list(self.meta["classes"])
        return None if found is None else [v.item() if hasattr(v, "item") else v for v in found]

    def __repr__(self) -> str:
        return f"LoadedModel(flavor={self.flavor.name!r}, oid={self.model_oid!r})"


class Flavor:
    """Base of every flavor. ``safe`` flavors load without running code from the file."""

    name: str = ""
    safe: bool = True
    extensions: tuple[str, ...] = ()
    format_name: str = ""
    extra: str = "sklearn"
    # True when ``_load`` itself refuses whatever ``_check`` would, so ``load`` skips the check
    # (for skops that is a second parse of the file).
    checks_while_loading: bool = False

    # -- public: bookkeeping around the hooks ---------------------------------------------
    def find_file(self, path: Path) -> Path:
        """The model file inside ``path`` (a file, or a folder holding exactly one such file)."""
        if path.is_file():
            self.check_file_name(path.name, str(path))
            return path
        if not path.is_dir():
            raise InputError(f"{path}: no such model file or folder", hint="train the model first (shipyard run)")
        found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(self.extensions))
        if not found:
            raise InputError(f"{path}/ holds no {' or '.join(self.extensions)} file, which the {self.name} flavor needs",
                             hint="check model.flavor in shipyard.yaml (sklearn: .skops, onnx: .onnx, xgboost: .ubj/.json, lightgbm: .txt, pickle: .pkl/.joblib)")
        if len(found) > 1:
            raise InputError(f"{path}/ holds several model files ({', '.join(p.name for p in found)})",
                             hint="point --path at the one to register")
        return found[0]

    def package(self, objects: Any, path: Path, *, trust: bool = False, sample: Any = None,
                classes: list[Any] | None = None, signature: Signature | None = None,
                untrusted_ok: bool = False) -> PackagedModel:
        """Check, load once, capture the signature, and store the model as a package.

        ``signature`` is a known signature (an MLflow model's) used when there is no ``sample``.
        ``untrusted_ok`` stores an unsafe file without trust after its static check, not loaded:
        the package is recorded untrusted, so every later load needs ``trust`` (a version created
        by a client that cannot say ``--trust``, such as MLflow's REST API). The same holds for a
        safe format holding types outside its trusted list (``needs_trust`` in the package).
        """
        file = self.find_file(path)
        return self.package_bytes(objects, file.name, file.read_bytes(), what=str(file), trust=trust, sample=sample,
                                  classes=classes, signature=signature, untrusted_ok=untrusted_ok)

    def check_file_name(self, name: str, what: str) -> None:
        """Refuse a model file whose name does not end with one of this flavor's extensions."""
        if not name.endswith(self.extensions):
            suffix = PurePosixPath(name).suffix
            raise InputError(f"{what}: a {self.name} model is a {' or '.join(self.extensions)} file, not {suffix or 'a file without extension'}",
                             hint=f"pass the {self.format_name} file, or the right --flavor")

    def package_bytes(self, objects: Any, name: str, data: bytes, *, what: str | None = None, trust: bool = False,
                      sample: Any = None, classes: list[Any] | None = None, signature: Signature | None = None,
                      untrusted_ok: bool = False) -> PackagedModel:
        """``package`` for a model file already in memory (``name`` is its file name, ``what``
        names it in messages): the same checks, load and signature capture, with no disk read."""
        what = what or name
        self.check_file_name(name, what)
        deferred = untrusted_ok and not trust and not self.safe
        if not deferred:
            self._require_trust(trust, what)
        meta: dict[str, Any] = {"format": FORMAT_VERSION, "flavor": self.name, "file": name,
                                "file_oid": hash_bytes(data), "size": len(data), "trusted": bool(trust and not self.safe)}
        if classes is not None:
            meta["classes"] = [_plain(c) for c in classes]
        try:
            meta.update(self._check(data, what, trust))
        except UnsafeModel as exc:
            # types outside a safe format's trusted list (not a pickle's denied globals) may be
            # stored untrusted for a client that cannot say --trust; loading then needs trust.
            # A pickle's findings are deferrable only under supply.scan: record at registration.
            if not (untrusted_ok and getattr(exc, "deferrable", False)):
                raise
            deferred = True
            meta["needs_trust"] = exc.message
            meta["trusted"] = False   # even with --trust: what the check found is not trusted
        if signature is not None and sample is None:
            meta["signature"] = signature.to_dict()
        if deferred:
            return self._store(objects, name, data, meta, signature)
        loaded = LoadedModel(self._load_checked(data, what, meta, trust), self, signature, None, meta)
        if signature is not None and meta.get("classes") is None and loaded.classes is not None:
            meta["classes"] = loaded.classes
            meta["signature"] = {**signature.to_dict(), "classes": loaded.classes}
            signature = Signature.from_dict(meta["signature"])
        if sample is not None:
            frame = to_pandas(sample)
            try:
                predictions = loaded.predict(frame.head(200))
            except ShipyardError:
                raise
            except Exception as exc:
                raise InputError(f"{what}: the model cannot predict on the sample ({type(exc).__name__}: {exc})",
                                 hint="check model.features and model.target in shipyard.yaml") from exc
            signature = infer_signature(frame, predictions, loaded.classes)
            meta["signature"] = signature.to_dict()
            if meta.get("classes") is None and loaded.classes is not None:
                meta["classes"] = loaded.classes
        return self._store(objects, name, data, meta, signature)

    def _store(self, objects: Any, name: str, data: bytes, meta: dict[str, Any],
               signature: Signature | None) -> PackagedModel:
        """Write the model file and its ``shipyard-model.json`` as one package."""
        meta_bytes = json.dumps(meta, sort_keys=True, indent=1).encode()
        file_oid, meta_oid = objects.put_bytes_many([data, meta_bytes])
        manifest = Manifest(tuple(sorted([
            FileEntry(name, file_oid, len(data)),
            FileEntry(META_FILE, meta_oid, len(meta_bytes)),
        ], key=lambda e: e.path)))
        oid = objects.put_manifest(manifest)
        return PackagedModel(oid, self.name, name, file_oid, len(data), signature, meta["trusted"], meta)

    def load(self, objects: Any, model_oid: str, *, trust: bool = False) -> LoadedModel:
        """Read a package back, verified, and load it (unsafe flavors need ``trust``)."""
        if not is_dir_id(model_oid):
            raise InputError(f"{model_oid} is not a model package (expected a folder id ending in .dir)",
                             hint="register the model with 'shipyard models register' first")
        manifest = objects.manifest(model_oid)
        entries = {e.path: e for e in manifest.entries}
        if META_FILE not in entries:
            raise InputError(f"object {model_oid} is not a Shipyard model package (no {META_FILE})")
        meta_bytes = objects.get_bytes(entries[META_FILE].oid)
        meta = json.loads(meta_bytes)
        if meta.get("flavor") != self.name:
            raise InputError(f"model {model_oid} was packaged as flavor {meta.get('flavor')!r}, not {self.name!r}",
                             hint=f"load it with flavor={meta.get('flavor')!r}")
        name = meta["file"]
        self._require_trust(trust, name)
        data = objects.get_bytes(entries[name].oid)
        actual = hash_bytes(data)
        if actual != meta["file_oid"]:
            raise ObjectCorrupt(f"model file {name} of {model_oid} hashes to {actual}, but {meta['file_oid']} was recorded",
                                hint="the package was tampered with; register the model again from its source")
        if not self.checks_while_loading:
            self._check(data, name, trust)
        native = self._load_checked(data, name, meta, trust)
        return LoadedModel(native, self, Signature.from_dict(meta.get("signature")), model_oid, meta)

    def save(self, model: Any, folder: str | Path) -> Path:
        """Write ``model`` into ``folder`` in this flavor's format; returns the file written."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        return self._save(model, folder)

    # -- helpers ----------------------------------------------------------------------------
    def _require_trust(self, trust: bool, what: str) -> None:
        if not self.safe and not trust:
            raise UnsafeModel(f"{what} is a {self.format_name} file, which runs code when loaded; refusing without trust",
                              hint="re-save it with skops/ONNX/native booster, or pass --trust (trust=True) if you made this file yourself")

    def _load_checked(self, data: bytes, what: str, meta: dict[str, Any], trust: bool) -> Any:
        try:
            return self._load(data, what, meta, trust)
        except ShipyardError:
            raise
        except Exception as exc:
            raise InputError(f"{what} is not a valid {self.format_name} file for the {self.name} flavor: {type(exc).__name__}: {str(exc)[:300]}",
                             hint="check model.flavor in shipyard.yaml, or re-save the model") from exc

    # -- hooks ---------------------------------------------------------------------------------
    def _check(self, data: bytes, what: str, trust: bool) -> dict[str, Any]:
        """Inspect the raw file before loading; return facts to record in the package."""
        return {}

    def _load(self, data: bytes, what: str, meta: dict[str, Any], trust: bool) -> Any:
        raise InputError(f"flavor {self.name} cannot load models")

    def _save(self, model: Any, folder: Path) -> Path:
        raise InputError(f"flavor {self.name} cannot save models")

    def _predict(self, loaded: LoadedModel, frame: Any) -> Any:
        return loaded.native.predict(frame)

    def _predict_proba(self, loaded: LoadedModel, frame: Any) -> Any:
        method = getattr(loaded.native, "predict_proba", None)
        return None if method is None else method(frame)

    def _classes(self, loaded: LoadedModel) -> Any:
        return getattr(loaded.native, "classes_", None)

    def _array_native(self, loaded: LoadedModel) -> Any:
        """The native model when it predicts from a matrix in signature order, else None."""
        return None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
