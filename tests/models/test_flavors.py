"""Every flavor round-trips through a package; bad files, tampering and pickles are refused."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import InputError, ObjectCorrupt, UnsafeModel
from shipyard.models import load_model, package_model, save_model
from shipyard.models.flavors import get_flavor
from tests.models.conftest import NUMERIC


@pytest.fixture(scope="module")
def numeric_lr(penguin_frame):  # type: ignore[no-untyped-def]
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        penguin_frame[NUMERIC], penguin_frame["species"])


def test_sklearn_skops_round_trip_with_signature(tmp_path: Path, objects, sk_model, penguin_frame) -> None:
    model, features = sk_model
    save_model(model, tmp_path / "model", "sklearn")
    packaged = package_model(objects, tmp_path / "model", "sklearn", sample=penguin_frame[features])
    assert packaged.model_oid.endswith(".dir")
    assert packaged.signature is not None and packaged.signature.columns == features
    loaded = load_model(objects, packaged.model_oid, "sklearn")
    expected = model.predict(penguin_frame[features])
    assert (loaded.predict(penguin_frame) == expected).all()  # extra columns are dropped
    assert loaded.classes == ["Adelie", "Chinstrap", "Gentoo"]
    assert loaded.predict_proba(penguin_frame.head(5)).shape == (5, 3)
    assert loaded.signature.to_dict()["classes"] == ["Adelie", "Chinstrap", "Gentoo"]


@pytest.mark.slow
def test_onnx_round_trip(tmp_path: Path, objects, numeric_lr, penguin_frame) -> None:
    from skl2onnx import to_onnx

    onx = to_onnx(numeric_lr, penguin_frame[NUMERIC].head(1).to_numpy().astype(np.float32), options={"zipmap": False})
    save_model(onx, tmp_path / "onnx", "onnx")
    classes = sorted(penguin_frame["species"].unique())
    packaged = package_model(objects, tmp_path / "onnx", "onnx", sample=penguin_frame[NUMERIC], classes=classes)
    loaded = load_model(objects, packaged.model_oid, "onnx")
    agree = (loaded.predict(penguin_frame) == numeric_lr.predict(penguin_frame[NUMERIC])).mean()
    assert agree > 0.99
    assert loaded.classes == classes
    assert loaded.predict_proba(penguin_frame.head(3)).shape == (3, 3)


@pytest.mark.slow
def test_xgboost_native_round_trip(tmp_path: Path, objects, penguin_frame) -> None:
    import xgboost as xgb

    classes = sorted(penguin_frame["species"].unique())
    codes = penguin_frame["species"].map({c: i for i, c in enumerate(classes)})
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(penguin_frame[NUMERIC], codes)
    written = save_model(model, tmp_path / "xgb", "xgboost")
    assert written.suffix == ".ubj"
    packaged = package_model(objects, tmp_path / "xgb", "xgboost", sample=penguin_frame[NUMERIC], classes=classes)
    loaded = load_model(objects, packaged.model_oid, "xgboost")
    want = np.asarray(classes, dtype=object)[model.predict(penguin_frame[NUMERIC])]
    assert (loaded.predict(penguin_frame) == want).all()
    assert loaded.predict_proba(penguin_frame.head(2)).shape == (2, 3)


@pytest.mark.slow
def test_lightgbm_native_round_trip(tmp_path: Path, objects, penguin_frame) -> None:
    import lightgbm as lgb

    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(penguin_frame[NUMERIC], penguin_frame["species"])
    save_model(model, tmp_path / "lgb", "lightgbm")
    classes = sorted(penguin_frame["species"].unique())
    packaged = package_model(objects, tmp_path / "lgb", "lightgbm", sample=penguin_frame[NUMERIC], classes=classes)
    loaded = load_model(objects, packaged.model_oid, "lightgbm")
    assert (loaded.predict(penguin_frame) == model.predict(penguin_frame[NUMERIC])).all()
    assert np.allclose(loaded.predict_proba(penguin_frame.head(4)), model.predict_proba(penguin_frame[NUMERIC].head(4)))


def test_pickle_needs_trust_then_loads(tmp_path: Path, objects, numeric_lr, penguin_frame) -> None:
    save_model(numeric_lr, tmp_path / "pkl", "pickle")
    with pytest.raises(UnsafeModel, match="runs code when loaded"):
        package_model(objects, tmp_path / "pkl", "pickle")
    packaged = package_model(objects, tmp_path / "pkl", "pickle", trust=True, sample=penguin_frame[NUMERIC])
    assert packaged.trusted and packaged.meta["file_oid"].startswith("xxh128:")
    with pytest.raises(UnsafeModel):
        load_model(objects, packaged.model_oid, "pickle")
    loaded = load_model(objects, packaged.model_oid, "pickle", trust=True)
    assert (loaded.predict(penguin_frame) == numeric_lr.predict(penguin_frame[NUMERIC])).all()


def test_joblib_loads_through_restricted_unpickler(tmp_path: Path, objects, numeric_lr, penguin_frame) -> None:
    import joblib

    (tmp_path / "jl").mkdir()
    joblib.dump(numeric_lr, tmp_path / "jl" / "model.joblib")
    packaged = package_model(objects, tmp_path / "jl", "pickle", trust=True)
    loaded = load_model(objects, packaged.model_oid, "pickle", trust=True)
    assert (loaded.predict(penguin_frame[NUMERIC]) == numeric_lr.predict(penguin_frame[NUMERIC])).all()


class _Evil:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, ("echo pwned > /tmp/shipyard-pwned",))


def test_malicious_pickle_is_refused_even_with_trust(tmp_path: Path, objects) -> None:
    folder = tmp_path / "evil"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(_Evil()))
    with pytest.raises(UnsafeModel, match=r"pickle imports (posix|os)\.system at byte \d+"):
        package_model(objects, folder, "pickle", trust=True)
    assert objects.backend.list() == [] or not list(objects.backend.list())


def test_file_that_is_not_its_flavor(tmp_path: Path, objects) -> None:
    folder = tmp_path / "fake"
    folder.mkdir()
    (folder / "model.skops").write_text("this is not a zip file")
    with pytest.raises(InputError, match=r"model.skops is not a valid skops file for the sklearn flavor"):
        package_model(objects, folder, "sklearn")
    (folder / "model.skops").unlink()
    (folder / "model.onnx").write_bytes(b"\x00garbage")
    with pytest.raises(InputError, match="not a valid ONNX file"):
        package_model(objects, folder, "onnx")


def test_folder_without_the_flavors_file(tmp_path: Path, objects) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "model.pkl").write_bytes(b"x")
    with pytest.raises(InputError, match=r"holds no \.skops file"):
        package_model(objects, tmp_path / "m", "sklearn")


def test_unknown_flavor_suggests() -> None:
    with pytest.raises(InputError, match="unknown model flavor 'sklern'") as info:
        get_flavor("sklern")
    assert "sklearn" in str(info.value)


def test_tampered_model_object_is_refused(tmp_path: Path, objects, sk_model, penguin_frame) -> None:
    model, features = sk_model
    save_model(model, tmp_path / "model", "sklearn")
    packaged = package_model(objects, tmp_path / "model", "sklearn", sample=penguin_frame[features])
    from shipyard.objects.store import key_of

    target = objects.backend.local_path(key_of(packaged.file_oid))
    target.chmod(0o644)
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(ObjectCorrupt, match=packaged.file_oid):
        load_model(objects, packaged.model_oid, "sklearn")


def test_wrong_flavor_on_load(tmp_path: Path, objects, sk_model, penguin_frame) -> None:
    model, _ = sk_model
    save_model(model, tmp_path / "model", "sklearn")
    packaged = package_model(objects, tmp_path / "model", "sklearn")
    with pytest.raises(InputError, match="packaged as flavor 'sklearn', not 'onnx'"):
        load_model(objects, packaged.model_oid, "onnx")


def test_skops_untrusted_type_is_refused(tmp_path: Path, objects, penguin_frame) -> None:
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    (tmp_path / "m2").mkdir()
    sio.dump(FunctionTransformer(_custom_fn), tmp_path / "m2" / "model.skops")
    with pytest.raises(UnsafeModel, match="outside the trusted list"):
        package_model(objects, tmp_path / "m2", "sklearn")


def _custom_fn(x):  # type: ignore[no-untyped-def]
    return x
