"""ONNX via onnxruntime (no code runs from the file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shipyard.errors import InputError, require_extra
from shipyard.models.flavors.base import Flavor

_NUMPY_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(int64)": "int64",
                "tensor(int32)": "int32", "tensor(bool)": "bool", "tensor(string)": "object"}


class OnnxFlavor(Flavor):
    name = "onnx"
    safe = True
    extensions = (".onnx",)
    format_name = "ONNX"
    extra = "onnx"

    def _load(self, data: bytes, what: str, meta: dict[str, Any], trust: bool) -> Any:
        require_extra("onnxruntime", "onnx")
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])

    def _save(self, model: Any, folder: Path) -> Path:
        path = folder / "model.onnx"
        path.write_bytes(model if isinstance(model, bytes) else model.SerializeToString())
        return path

    def _feed(self, session: Any, frame: Any) -> dict[str, Any]:
        import numpy as np

        inputs = session.get_inputs()
        if len(inputs) == 1 and (len(frame.columns) != 1 or inputs[0].name not in frame.columns):
            spec = inputs[0]
            dtype = _NUMPY_TYPES.get(spec.type, "float32")
            return {spec.name: frame.to_numpy().astype(dtype)}
        feed = {}
        for spec in inputs:
            if spec.name not in frame.columns:
                raise InputError(f"input is missing column {spec.name!r}, which the ONNX graph needs")
            dtype = _NUMPY_TYPES.get(spec.type, "float32")
            column = frame[spec.name].to_numpy()
            feed[spec.name] = (column.astype(str) if dtype == "object" else column.astype(dtype)).reshape(-1, 1)
            if dtype == "object":
                feed[spec.name] = np.asarray(feed[spec.name], dtype=object)
        return feed

    def _run(self, loaded: Any, frame: Any) -> list[Any]:
        session = loaded.native
        return session.run(None, self._feed(session, frame))

    def _predict(self, loaded: Any, frame: Any) -> Any:
        return self._run(loaded, frame)[0].reshape(-1)

    def _predict_proba(self, loaded: Any, frame: Any) -> Any:
        import numpy as np

        outputs = self._run(loaded, frame)
        if len(outputs) < 2:
            return None
        probs = outputs[1]
        if isinstance(probs, list):  # ZipMap: a list of {class: probability}
            keys = self._zip_keys(probs) or []
            return np.array([[row[k] for k in keys] for row in probs], dtype=float)
        return np.asarray(probs, dtype=float)

    def _classes(self, loaded: Any) -> Any:
        if loaded.meta.get("classes") is not None:
            return loaded.meta["classes"]
        return None

    @staticmethod
    def _zip_keys(rows: list[dict]) -> list[Any] | None:
        return sorted(rows[0].keys()) if rows else None
