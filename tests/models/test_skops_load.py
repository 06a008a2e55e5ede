"""Loading a skops package parses the file once; the trusted-type policy is the same as before."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shipyard.errors import UnsafeModel
from shipyard.hashing import FileEntry, Manifest
from shipyard.models import load_model, package_model, save_model
from shipyard.models.flavors.base import META_FILE


@pytest.fixture
def tree_builds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts skops building its node tree from a file (one per parse: load, or a type listing)."""
    import skops.io._persist as persist

    calls: list[int] = []
    real = persist.get_tree

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(persist, "get_tree", counting)
    return calls


def test_load_parses_the_file_once(tmp_path: Path, objects, sk_model, penguin_frame, tree_builds) -> None:  # type: ignore[no-untyped-def]
    model, features = sk_model
    save_model(model, tmp_path / "model", "sklearn")
    packaged = package_model(objects, tmp_path / "model", "sklearn", sample=penguin_frame[features])
    assert packaged.meta["skops_types"] == ["sklearn.tree._tree.Tree"]
    tree_builds.clear()
    loaded = load_model(objects, packaged.model_oid, "sklearn")
    assert len(tree_builds) == 1
    assert (loaded.predict(penguin_frame) == model.predict(penguin_frame[features])).all()


def test_registered_with_trust_still_needs_trust_to_load(tmp_path: Path, objects) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    from sklearn.preprocessing import FunctionTransformer

    save_model(FunctionTransformer(_double).fit(np.ones((2, 1))), tmp_path / "m", "sklearn")
    packaged = package_model(objects, tmp_path / "m", "sklearn", trust=True)
    assert any(t.endswith("_double") for t in packaged.meta["skops_types"])
    with pytest.raises(UnsafeModel, match=r"outside the trusted list: tests\.models\.test_skops_load\._double"):
        load_model(objects, packaged.model_oid, "sklearn")
    loaded = load_model(objects, packaged.model_oid, "sklearn", trust=True)
    assert loaded.native.transform(np.array([[2.0]])).tolist() == [[4.0]]


def test_package_without_recorded_types_loads_by_reading_them(tmp_path: Path, objects, sk_model,  # type: ignore[no-untyped-def]
                                                                penguin_frame, tree_builds) -> None:
    model, features = sk_model
    save_model(model, tmp_path / "model", "sklearn")
    packaged = package_model(objects, tmp_path / "model", "sklearn", sample=penguin_frame[features])
    older = _without_recorded_types(objects, packaged.model_oid)
    tree_builds.clear()
    loaded = load_model(objects, older, "sklearn")
    assert len(tree_builds) == 3   # refused with nothing allowed, the types read, loaded
    assert (loaded.predict(penguin_frame) == model.predict(penguin_frame[features])).all()


def _without_recorded_types(objects: Any, model_oid: str) -> str:
    """The same package with ``skops_types`` left out of its metadata (as an older one might be)."""
    entries = {e.path: e for e in objects.manifest(model_oid).entries}
    meta = json.loads(objects.get_bytes(entries[META_FILE].oid))
    del meta["skops_types"]
    meta_bytes = json.dumps(meta).encode()
    (meta_oid,) = objects.put_bytes_many([meta_bytes])
    model_file = entries[meta["file"]]
    return objects.put_manifest(Manifest(tuple(sorted(
        [model_file, FileEntry(META_FILE, meta_oid, len(meta_bytes))], key=lambda e: e.path))))


def _double(x):  # type: ignore[no-untyped-def]
    return x * 2
