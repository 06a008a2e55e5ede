"""XGBoost (.ubj/.json) and LightGBM (.txt) in their own native formats."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shipyard.errors import require_extra
from shipyard.models.flavors.base import Flavor


class XGBoostFlavor(Flavor):
    name = "xgboost"
    safe = True
    extensions = (".ubj", ".json")
    format_name = "XGBoost"
    extra = "boosters"

    def _load(self, data: bytes, what: str, meta: dict[str, Any], trust: bool) -> Any:
        require_extra("xgboost", "boosters")
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        attrs = json.loads(booster.attr("scikit_learn") or "{}")
        kind = attrs.get("_estimator_type")
        if kind == "classifier":
            model = xgb.XGBClassifier()
        elif kind == "regressor":
            model = xgb.XGBRegressor()
        else:
            return booster
        model.load_model(bytearray(data))
        return model

    def _save(self, model: Any, folder: Path) -> Path:
        path = folder / "model.ubj"
        model.save_model(path)
        return path

    def _predict(self, loaded: Any, frame: Any) -> Any:
        import numpy as np

        native = loaded.native
        if hasattr(native, "predict_proba") or hasattr(native, "get_booster"):
            out = native.predict(frame)
        else:
            import xgboost as xgb

            out = native.predict(xgb.DMatrix(frame))
        classes = loaded.meta.get("classes")
        if classes is not None and hasattr(native, "predict_proba"):
            return np.asarray(classes, dtype=object)[np.asarray(out, dtype=int)]
        return out

    def _classes(self, loaded: Any) -> Any:
        if loaded.meta.get("classes") is not None:
            return loaded.meta["classes"]
        return getattr(loaded.native, "classes_", None)


class LightGBMFlavor(Flavor):
    name = "lightgbm"
    safe = True
    extensions = (".txt", ".lgb")
    format_name = "LightGBM text model"
    extra = "boosters"

    def _load(self, data: bytes, what: str, meta: dict[str, Any], trust: bool) -> Any:
        require_extra("lightgbm", "boosters")
        import lightgbm as lgb

        return lgb.Booster(model_str=data.decode("utf-8"))

    def _save(self, model: Any, folder: Path) -> Path:
        path = folder / "model.txt"
        booster = getattr(model, "booster_", model)
        booster.save_model(str(path))
        return path

    @staticmethod
    def _objective(loaded: Any) -> str:
        return str(loaded.native.dump_model(num_iteration=0).get("objective", "")).split(" ")[0]

    def _raw(self, loaded: Any, frame: Any) -> Any:
        return loaded.native.predict(frame)

    def _predict(self, loaded: Any, frame: Any) -> Any:
        import numpy as np

        raw = np.asarray(self._raw(loaded, frame))
        objective = self._objective(loaded)
        if objective in ("multiclass", "multiclassova", "softmax"):
            index = raw.argmax(axis=1)
        elif objective in ("binary", "cross_entropy"):
            index = (raw >= 0.5).astype(int)
        else:
            return raw
        classes = loaded.meta.get("classes")
        return np.asarray(classes, dtype=object)[index] if classes is not None else index

    def _predict_proba(self, loaded: Any, frame: Any) -> Any:
        import numpy as np

        objective = self._objective(loaded)
        raw = np.asarray(self._raw(loaded, frame))
        if objective in ("multiclass", "multiclassova", "softmax"):
            return raw
        if objective in ("binary", "cross_entropy"):
            return np.column_stack([1 - raw, raw])
        return None

    def _classes(self, loaded: Any) -> Any:
        return loaded.meta.get("classes")
