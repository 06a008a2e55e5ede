"""The ``mlflow_pyfunc`` flavor: an MLflow ``python_function`` model folder, scanned, loaded with trust.

The model folders are written by ``mlflow.pyfunc.save_model`` in a separate script, as a user's
training script would (its classes live in ``__main__``, so cloudpickle stores them by value).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from shipyard.errors import InputError, ObjectCorrupt, UnsafeModel
from shipyard.hashing import FileEntry, Manifest
from shipyard.models import load_model
from shipyard.models.flavors import get_flavor
from shipyard.models.flavors.pyfunc import code_module_globals, pyfunc_conf
from shipyard.objects.store import ObjectStore
from tests.models.pyfunc_models import SIZER

pytestmark = [pytest.mark.filterwarnings("ignore")]

SCRIPT = '''
import json, os, sys
import mlflow
import numpy as np
import pandas as pd
from mlflow.models import infer_signature

out, canary = sys.argv[1], sys.argv[2]
sys.path.insert(0, os.path.join(out, "src"))
import helper  # noqa: E402


''' + SIZER + '''

class ByReference(mlflow.pyfunc.PythonModel):
    def __init__(self):
        self.scaler = helper.Scaler(10.0)

    def predict(self, context, model_input, params=None):
        return self.scaler.apply(model_input["x"])


class Evil(mlflow.pyfunc.PythonModel):
    def __reduce__(self):
        return (os.system, (f"touch {canary}",))

    def predict(self, context, model_input, params=None):
        return model_input


X = pd.DataFrame({"x": [1.0, 7.0]})
with open(os.path.join(out, "labels.json"), "w") as f:
    json.dump({"high": "big", "low": "small"}, f)
mlflow.pyfunc.save_model(os.path.join(out, "sizer"), python_model=Sizer(5.0),
                         artifacts={"labels": os.path.join(out, "labels.json")},
                         signature=infer_signature(X, np.array(["small", "big"])))
mlflow.pyfunc.save_model(os.path.join(out, "byref"), python_model=ByReference(),
                         code_paths=[os.path.join(out, "src", "helper.py")])
mlflow.pyfunc.save_model(os.path.join(out, "evil"), python_model=Evil())
if os.path.exists(canary):   # MLflow itself unpickles the model while inferring its requirements
    os.remove(canary)
'''

HELPER = '''
import numpy as np


class Scaler:
    def __init__(self, k):
        self.k = k

    def apply(self, values):
        return np.asarray(values) * self.k
'''


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("pyfunc")
    (out / "src").mkdir()
    (out / "src" / "helper.py").write_text(HELPER)
    (out / "make.py").write_text(SCRIPT)
    env = {**os.environ, "GIT_PYTHON_REFRESH": "quiet", "MLFLOW_TRACKING_URI": (out / "mlruns").as_uri()}
    proc = subprocess.run([sys.executable, str(out / "make.py"), str(out), str(out / "pwned")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"sizer": out / "sizer", "byref": out / "byref", "evil": out / "evil", "canary": out / "pwned"}


@pytest.fixture
def objects(tmp_path: Path) -> ObjectStore:
    return ObjectStore.open(tmp_path / "objects")


X = pd.DataFrame({"x": [1.0, 7.0, 5.5]})


def test_the_whole_folder_is_packaged_untrusted_and_loads_only_with_trust(folders: dict[str, Path],
                                                                          objects: ObjectStore) -> None:
    flavor = get_flavor("mlflow")
    with pytest.raises(UnsafeModel, match="refusing without trust") as info:
        flavor.package(objects, folders["sizer"])
    assert "shipyard models trust" in (info.value.hint or "")
    packaged = flavor.package(objects, folders["sizer"], untrusted_ok=True)
    assert packaged.flavor == "mlflow_pyfunc" and not packaged.trusted
    paths = {e.path for e in objects.manifest(packaged.model_oid).entries}
    assert {"MLmodel", "python_model.pkl", "artifacts/labels.json", "shipyard-model.json"} <= paths
    assert "cloudpickle.cloudpickle._make_function" in packaged.meta["pickle_globals"]
    with pytest.raises(UnsafeModel, match="refusing without trust"):
        load_model(objects, packaged.model_oid, "mlflow")
    loaded = load_model(objects, packaged.model_oid, "mlflow", trust=True)
    assert [c.name for c in loaded.signature.inputs] == ["x"]
    assert list(loaded.predict(X)) == ["small", "big", "big"]
    assert loaded.predict_proba(X) is None and loaded.classes is None


def test_a_malicious_pickle_is_refused_with_the_scanners_finding_even_with_trust(folders: dict[str, Path],
                                                                                objects: ObjectStore) -> None:
    for trust, untrusted_ok in ((True, False), (False, True)):
        with pytest.raises(UnsafeModel, match=r"imports posix\.system .*trusted or not"):
            get_flavor("mlflow").package(objects, folders["evil"], trust=trust, untrusted_ok=untrusted_ok)
    assert not folders["canary"].exists()


def test_a_swapped_pickle_in_a_stored_package_is_refused(folders: dict[str, Path], objects: ObjectStore) -> None:
    good = get_flavor("mlflow").package(objects, folders["sizer"], untrusted_ok=True)
    evil_oid = objects.put_bytes((folders["evil"] / "python_model.pkl").read_bytes())
    entries = tuple(FileEntry(e.path, evil_oid, e.size) if e.path == "python_model.pkl" else e
                    for e in objects.manifest(good.model_oid).entries)
    swapped = objects.put_manifest(Manifest(entries))
    with pytest.raises(ObjectCorrupt, match="does not hash to the recorded"):
        load_model(objects, swapped, "mlflow_pyfunc", trust=True)
    assert not folders["canary"].exists()


def test_classes_from_the_models_code_folder_may_be_pickled_by_reference(folders: dict[str, Path],
                                                                         objects: ObjectStore) -> None:
    packaged = get_flavor("mlflow").package(objects, folders["byref"], trust=True)
    assert packaged.trusted and "helper.Scaler" in packaged.meta["pickle_globals"]
    loaded = load_model(objects, packaged.model_oid, "mlflow_pyfunc", trust=True)
    assert list(loaded.predict(pd.DataFrame({"x": [1.0, 2.0]}))) == [10.0, 20.0]


def test_a_code_folder_lends_trust_to_its_own_modules_only() -> None:
    paths = ["code/helper.py", "code/pkg/__init__.py", "code/pkg/sub.py", "code/os.py", "code/numpy.py",
             "code/not-a-module.py", "artifacts/x.py", "MLmodel"]
    assert code_module_globals(paths, "code") == ["helper.*", "pkg.*", "pkg.sub.*"]
    assert code_module_globals(paths, None) == []


@pytest.mark.parametrize(("conf", "words"), [
    ({"loader_module": "my_loader", "data": "d"}, "loader_module 'my_loader'"),
    ({"loader_module": "mlflow.pyfunc.model", "python_model": "model.py"}, "models-from-code"),
    ({"loader_module": "mlflow.pyfunc.model", "model_code_path": "model.py"}, "models-from-code"),
])
def test_other_python_function_loaders_are_refused_with_their_name(conf: dict[str, Any], words: str) -> None:
    with pytest.raises(InputError, match=words):
        pyfunc_conf({"flavors": {"python_function": conf}}, "m/MLmodel")


def test_registration_scans_a_pyfunc_package_with_its_flavors_allow_list(folders: dict[str, Path],
                                                                        objects: ObjectStore, tmp_path: Path) -> None:
    from shipyard.models.flavors.pyfunc import registration_settings
    from shipyard.supply.config import SupplySection
    from shipyard.supply.registration import at_registration

    packaged = get_flavor("mlflow").package(objects, folders["sizer"], untrusted_ok=True)
    refuse = SupplySection(sbom=False)
    with pytest.raises(UnsafeModel, match="cloudpickle"):   # the plain allow-list knows no cloudpickle
        at_registration(objects, packaged.model_oid, packaged.flavor, refuse, root=tmp_path, target="sizer")
    settings = registration_settings(refuse, objects, packaged)
    assert settings.scan == "record" and "cloudpickle.cloudpickle._make_function" in settings.allow_globals
    oid, facts = at_registration(objects, packaged.model_oid, packaged.flavor, settings, root=tmp_path, target="sizer")
    assert oid == packaged.model_oid and not facts["scan"]["clean"]
    assert all("calls the result of another call" in f for f in facts["scan"]["findings"])
    assert registration_settings(SupplySection(scan="off"), objects, packaged).scan == "off"


def test_models_register_a_pyfunc_folder_locally_one_version_per_folder_content(folders: dict[str, Path],
                                                                              tmp_path: Path) -> None:
    """``shipyard models register --flavor mlflow --trust`` of a harmless pyfunc folder, under the default
    ``supply.scan: refuse``; the same folder again is the same version, a changed artifact a new one."""
    import json
    import shutil

    from tests.conftest import run_cli

    root = tmp_path / "proj"
    root.mkdir()
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\nsupply: {sbom: false}\n")
    shutil.copytree(folders["sizer"], root / "sizer")

    def register() -> dict[str, Any]:
        done = run_cli("models", "register", "sizer", "--path", "sizer", "--flavor", "mlflow", "--trust", "--json",
                       cwd=root, timeout=300)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = register()
    assert (first["version"], first["flavor"], first["trusted"]) == (1, "mlflow", True)  # loads as its MLmodel says
    assert register()["version"] == 1   # the same folder: unchanged
    labels = root / "sizer" / "artifacts" / "labels.json"
    labels.write_text(labels.read_text().replace("big", "large"))
    assert register()["version"] == 2   # the pickle is the same, an artifact is not: a new version
