"""MLflow-logged models: the MLmodel file maps to our flavors; safe formats load, pickles need trust.

Every model here is written by MLflow's own ``save_model`` (mlflow 3), so the MLmodel files are
the ones a team's training script produces.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.errors import InputError, UnsafeModel
from shipyard.models import load_model
from shipyard.models.flavors.mlflow import map_mlmodel, package_mlflow_model, read_mlmodel
from shipyard.models.signature import from_mlflow
from tests.models.conftest import NUMERIC


@pytest.fixture(scope="module")
def numeric(penguin_frame):  # type: ignore[no-untyped-def]
    """(features frame, species) of the penguins, numbers only."""
    return penguin_frame[NUMERIC].astype(float), penguin_frame["species"]


def _signature(frame, predictions):  # type: ignore[no-untyped-def]
    from mlflow.models import infer_signature

    return infer_signature(frame, predictions)


def test_sklearn_skops_loads_safely_with_the_mlmodel_signature(tmp_path: Path, objects, numeric) -> None:
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    frame, species = numeric
    model = LogisticRegression(max_iter=2000).fit(frame, species)
    mlflow.sklearn.save_model(model, tmp_path / "m", serialization_format="skops",
                              signature=_signature(frame, model.predict(frame)))
    packaged, mapped = package_mlflow_model(objects, tmp_path / "m")
    assert (mapped.flavor, mapped.file, mapped.serialization) == ("sklearn", "model.skops", "skops")
    assert packaged.flavor == "sklearn" and not packaged.trusted
    assert packaged.signature is not None and packaged.signature.columns == NUMERIC
    assert packaged.signature.classes == ("Adelie", "Chinstrap", "Gentoo")
    loaded = load_model(objects, packaged.model_oid, packaged.flavor)
    assert (loaded.predict(frame.head(20)) == model.predict(frame.head(20))).all()
    with pytest.raises(InputError, match="missing column 'body_mass_g'"):
        loaded.predict(frame.drop(columns="body_mass_g"))


def test_cloudpickle_sklearn_is_scanned_and_needs_trust(tmp_path: Path, objects, numeric) -> None:
    import mlflow.sklearn
    from sklearn.tree import DecisionTreeClassifier

    frame, species = numeric
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame, species)
    mlflow.sklearn.save_model(model, tmp_path / "m", serialization_format="cloudpickle")
    with pytest.raises(UnsafeModel, match="refusing without trust"):
        package_mlflow_model(objects, tmp_path / "m")
    stored, mapped = package_mlflow_model(objects, tmp_path / "m", untrusted_ok=True)   # as over MLflow's REST API
    assert mapped.flavor == "pickle" and not stored.trusted and stored.signature is None
    assert stored.meta["pickle_globals"] and all(g.startswith(("sklearn.", "numpy.", "_codecs.", "copyreg."))
                                                 for g in stored.meta["pickle_globals"])
    with pytest.raises(UnsafeModel, match="refusing without trust"):
        load_model(objects, stored.model_oid, "pickle")
    loaded = load_model(objects, stored.model_oid, "pickle", trust=True)
    assert (loaded.predict(frame.head(10)) == model.predict(frame.head(10))).all()
    trusted, _ = package_mlflow_model(objects, tmp_path / "m", trust=True)
    assert trusted.trusted


def test_a_pickle_that_runs_code_is_refused_even_untrusted_ok(tmp_path: Path, objects, numeric) -> None:
    import mlflow.sklearn
    from sklearn.tree import DecisionTreeClassifier

    frame, species = numeric
    mlflow.sklearn.save_model(DecisionTreeClassifier(max_depth=2).fit(frame, species), tmp_path / "m",
                              serialization_format="pickle")
    (tmp_path / "m" / "model.pkl").write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(UnsafeModel, match=r"os\.system"):
        package_mlflow_model(objects, tmp_path / "m", untrusted_ok=True)


def test_xgboost_and_lightgbm_native_formats_load_safely(tmp_path: Path, objects, numeric) -> None:
    import lightgbm as lgb
    import mlflow.lightgbm
    import mlflow.xgboost
    import xgboost as xgb

    frame, species = numeric
    labels = (species == "Gentoo").astype(int)
    booster = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(frame, labels)
    mlflow.xgboost.save_model(booster, tmp_path / "xgb", signature=_signature(frame, booster.predict(frame)))
    packaged, mapped = package_mlflow_model(objects, tmp_path / "xgb")
    assert (mapped.flavor, mapped.file) == ("xgboost", "model.ubj") and packaged.signature.columns == NUMERIC
    assert (load_model(objects, packaged.model_oid, "xgboost").predict(frame.head(8)) == booster.predict(frame.head(8))).all()

    native = lgb.train({"objective": "binary", "verbose": -1}, lgb.Dataset(frame, labels), 5)
    mlflow.lightgbm.save_model(native, tmp_path / "lgb")
    packaged, mapped = package_mlflow_model(objects, tmp_path / "lgb")
    assert (mapped.flavor, mapped.file, mapped.serialization) == ("lightgbm", "model.lgb", "native")
    loaded = load_model(objects, packaged.model_oid, "lightgbm")
    assert (loaded.predict(frame.head(8)) == (native.predict(frame.head(8)) >= 0.5).astype(int)).all()


def test_skops_types_outside_the_trusted_list_are_stored_untrusted_for_rest(tmp_path: Path, objects, numeric) -> None:
    """LightGBM's scikit-learn API in skops (MLflow 3's default): its types are not on our list,
    so without trust it is refused, or (over MLflow's REST API) stored untrusted: loading needs trust."""
    import lightgbm as lgb
    import mlflow.lightgbm

    frame, species = numeric
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(frame, species)
    mlflow.lightgbm.save_model(model, tmp_path / "m")
    with pytest.raises(UnsafeModel, match=r"lightgbm\.sklearn\.LGBMClassifier"):
        package_mlflow_model(objects, tmp_path / "m")
    stored, mapped = package_mlflow_model(objects, tmp_path / "m", untrusted_ok=True)
    assert (mapped.flavor, mapped.file) == ("sklearn", "model.skops") and not stored.trusted
    assert "outside the trusted list" in stored.meta["needs_trust"]
    with pytest.raises(UnsafeModel, match="outside the trusted list"):
        load_model(objects, stored.model_oid, "sklearn")
    loaded = load_model(objects, stored.model_oid, "sklearn", trust=True)
    assert (loaded.predict(frame.head(8)) == model.predict(frame.head(8))).all()


def test_onnx_loads_safely(tmp_path: Path, objects, numeric) -> None:
    import mlflow.onnx
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    frame, _ = numeric
    target = frame["body_mass_g"] / 1000
    model = LinearRegression().fit(frame[NUMERIC[:3]], target)
    onnx_model = to_onnx(model, frame[NUMERIC[:3]].to_numpy()[:1])
    mlflow.onnx.save_model(onnx_model, tmp_path / "m")
    packaged, mapped = package_mlflow_model(objects, tmp_path / "m")
    assert (mapped.flavor, mapped.file) == ("onnx", "model.onnx") and packaged.flavor == "onnx"


def test_python_function_only_models_map_to_the_pyfunc_flavor_and_other_loaders_are_refused(tmp_path: Path) -> None:
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
                                      "    python_model: python_model.pkl\n")
    mapped = map_mlmodel(read_mlmodel(tmp_path))
    assert (mapped.flavor, mapped.file, mapped.mlflow_flavor) == ("mlflow_pyfunc", "python_model.pkl", "python_function")
    (tmp_path / "MLmodel").write_text("flavors:\n  python_function:\n    loader_module: my_loader\n    data: d\n")
    with pytest.raises(InputError, match="loader_module 'my_loader'") as info:
        map_mlmodel(read_mlmodel(tmp_path))
    assert "PythonModel" in (info.value.hint or "")
    (tmp_path / "MLmodel").write_text("flavors:\n  spark: {}\n")
    with pytest.raises(InputError, match="spark: none of them is one Shipyard loads"):
        map_mlmodel(read_mlmodel(tmp_path))


@pytest.mark.parametrize(("text", "words"), [
    ("flavors:\n  sklearn:\n    pickled_model: ../../etc/passwd\n    serialization_format: skops\n", "outside the model folder"),
    ("flavors:\n  onnx:\n    data: /etc/passwd\n", "outside the model folder"),
    ("flavors:\n  xgboost:\n    data: model.xgb\n    model_format: xgb\n", "model_format='ubj'"),
    ("flavors: [1, 2]\n", "has no 'flavors' mapping"),
    ("flavors: {sklearn: {pickled_model: x\n", "is not valid YAML"),
])
def test_a_bad_mlmodel_is_a_clear_input_error(tmp_path: Path, text: str, words: str) -> None:
    (tmp_path / "MLmodel").write_text(text)
    with pytest.raises(InputError) as info:
        map_mlmodel(read_mlmodel(tmp_path))
    assert words in str(info.value)


def test_a_folder_without_mlmodel_says_so(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="holds no MLmodel file"):
        read_mlmodel(tmp_path)


def test_signature_mapping() -> None:
    cols = [{"type": "double", "name": "x", "required": True}, {"type": "integer", "name": "n", "required": False},
            {"type": "string", "name": "s", "required": True}, {"type": "boolean", "name": "b"}]
    sig = from_mlflow({"inputs": json.dumps(cols), "outputs": json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}])})
    assert sig is not None and [(c.name, c.type, c.nullable) for c in sig.inputs] == [
        ("x", "double", True), ("n", "long", True), ("s", "string", True), ("b", "boolean", True)]
    assert [(c.name, c.type) for c in sig.outputs] == [("prediction", "long")]
    tensor_in = json.dumps([{"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 4]}}])
    assert from_mlflow({"inputs": tensor_in}) is None
    assert from_mlflow({"inputs": json.dumps([{"type": "binary", "name": "img"}])}) is None
    assert from_mlflow(None) is None
    with pytest.raises(InputError, match="not valid JSON"):
        from_mlflow({"inputs": "[{"})


def test_flavor_mlflow_registers_a_saved_mlflow_folder(tmp_path: Path, objects, numeric) -> None:
    """``flavor: mlflow`` (``shipyard models register --flavor mlflow``): the folder's model is
    packaged by the flavor it maps to and loads through ``load_model(..., "mlflow")``."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    from shipyard.models import package_model
    from shipyard.models.flavors import get_flavor

    frame, species = numeric
    model = LogisticRegression(max_iter=2000).fit(frame, species)
    mlflow.sklearn.save_model(model, tmp_path / "skops", serialization_format="skops",
                              signature=_signature(frame, model.predict(frame)))
    assert get_flavor("mlflow").find_file(tmp_path / "skops") == tmp_path / "skops" / "model.skops"
    packaged = package_model(objects, tmp_path / "skops" / "MLmodel", "mlflow")
    assert packaged.flavor == "sklearn" and packaged.signature.columns == NUMERIC
    loaded = load_model(objects, packaged.model_oid, "mlflow")
    assert (loaded.predict(frame.head(5)) == model.predict(frame.head(5))).all()

    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame, species)
    mlflow.sklearn.save_model(model, tmp_path / "pickled", serialization_format="cloudpickle")
    with pytest.raises(UnsafeModel, match="refusing without trust"):
        package_model(objects, tmp_path / "pickled", "mlflow")
    trusted = package_model(objects, tmp_path / "pickled", "mlflow", trust=True, sample=frame.head(50))
    assert trusted.trusted and trusted.signature.columns == NUMERIC          # captured from the sample
    with pytest.raises(UnsafeModel, match="refusing without trust"):
        load_model(objects, trusted.model_oid, "mlflow")
    assert (load_model(objects, trusted.model_oid, "mlflow", trust=True).predict(frame.head(5))
            == model.predict(frame.head(5))).all()
    with pytest.raises(InputError, match="holding an MLmodel file"):
        get_flavor("mlflow").find_file(tmp_path / "nope")


def _stored(objects, folder: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The folder's files put in the object store, as the artifact proxy keeps them: path -> id."""
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    oids = objects.put_bytes_many([p.read_bytes() for p in files])
    return {p.relative_to(folder).as_posix(): oid for p, oid in zip(files, oids, strict=True)}


def test_files_already_in_the_store_package_as_the_folder_does(tmp_path: Path, objects, numeric) -> None:
    """The registry packages a logged model from the store (no copy to disk): the same package as
    from its folder, and every file read back is verified against its hash."""
    import mlflow.sklearn
    from sklearn.linear_model import LogisticRegression

    from shipyard.errors import ObjectCorrupt
    from shipyard.models.flavors.mlflow import package_mlflow_files
    from shipyard.objects.store import key_of

    frame, species = numeric
    model = LogisticRegression(max_iter=2000).fit(frame, species)
    mlflow.sklearn.save_model(model, tmp_path / "m", serialization_format="skops",
                              signature=_signature(frame, model.predict(frame)))
    from_folder, _ = package_mlflow_model(objects, tmp_path / "m")
    files = _stored(objects, tmp_path / "m")
    packaged, mapped = package_mlflow_files(objects, files, "logged model m-1")
    assert packaged == from_folder and mapped.file == "model.skops"
    with pytest.raises(InputError, match="logged model m-2 holds no MLmodel file"):
        package_mlflow_files(objects, {k: v for k, v in files.items() if k != "MLmodel"}, "logged model m-2")
    with pytest.raises(InputError, match=r"names 'model\.skops', which is not in the model folder"):
        package_mlflow_files(objects, {k: v for k, v in files.items() if k != "model.skops"}, "logged model m-3")
    stored = Path(objects.backend.url) / key_of(files["model.skops"])
    stored.chmod(0o644)
    stored.write_bytes(b"tampered")
    with pytest.raises(ObjectCorrupt, match=files["model.skops"]):
        package_mlflow_files(objects, files, "logged model m-1")


def test_stored_pickle_is_scanned_and_kept_untrusted(tmp_path: Path, objects, numeric) -> None:
    """A cloudpickle model read from the store: refused without trust, stored untrusted for a
    client that cannot say --trust (MLflow's REST API), so loading it needs trust."""
    import mlflow.sklearn
    from sklearn.tree import DecisionTreeClassifier

    from shipyard.models.flavors.mlflow import package_mlflow_files

    frame, species = numeric
    model = DecisionTreeClassifier(max_depth=3, random_state=0).fit(frame, species)
    mlflow.sklearn.save_model(model, tmp_path / "m", serialization_format="cloudpickle")
    files = _stored(objects, tmp_path / "m")
    with pytest.raises(UnsafeModel, match="refusing without trust"):
        package_mlflow_files(objects, files, "run r1 artifact 'model'")
    packaged, mapped = package_mlflow_files(objects, files, "run r1 artifact 'model'", untrusted_ok=True)
    assert (mapped.flavor, packaged.trusted) == ("pickle", False)
    with pytest.raises(UnsafeModel):
        load_model(objects, packaged.model_oid, "pickle")
    assert (load_model(objects, packaged.model_oid, "pickle", trust=True).predict(frame.head(5))
            == model.predict(frame.head(5))).all()
