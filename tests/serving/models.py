"""Real scikit-learn models behind the gateway's ServableModel Protocol, plus faulty candidates.

``Fitted`` adapts a fitted estimator the way shipyard.models.LoadedModel does (signature with the
input columns, classes, predict/predict_proba on a DataFrame). The faulty ones wrap a real model
and misbehave in one precise way, so tests can check the gateway's invariant against each fault.
"""

from __future__ import annotations

import threading
import time
from functools import cache
from typing import Any

import numpy as np

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class Fitted:
    def __init__(self, estimator: Any, features: list[str]) -> None:
        self.estimator = estimator
        self._features = features

    @property
    def classes(self) -> Any:
        return getattr(self.estimator, "classes_", None)

    @property
    def signature(self) -> dict[str, Any]:
        return {"inputs": [{"name": f, "type": "double"} for f in self._features]}

    def predict(self, frame: Any) -> np.ndarray:
        return self.estimator.predict(frame)

    def predict_proba(self, frame: Any) -> np.ndarray | None:
        if hasattr(self.estimator, "predict_proba"):
            return self.estimator.predict_proba(frame)
        return None


class MatrixFitted(Fitted):
    """Also takes matrices in signature order, as LoadedModel does (``predict_array``); counts them."""

    def __init__(self, estimator: Any, features: list[str]) -> None:
        from shipyard.models.flavors.sklearn import array_estimator

        super().__init__(estimator, features)
        self.matrix = array_estimator(estimator, features)
        assert self.matrix is not None
        self.matrix_calls = 0

    def predict_array(self, array: np.ndarray) -> np.ndarray:
        self.matrix_calls += 1
        return self.matrix.predict(array)

    def predict_proba_array(self, array: np.ndarray) -> np.ndarray | None:
        self.matrix_calls += 1
        return self.matrix.predict_proba(array)


class Flaky(Fitted):
    """Raises on a fixed share of calls (deterministic: every k-th call)."""

    def __init__(self, inner: Fitted, every: int = 20) -> None:
        super().__init__(inner.estimator, inner._features)
        self.every = every
        self.calls = 0
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        with self._lock:
            self.calls += 1
            fail = self.calls % self.every == 0
        if fail:
            raise RuntimeError("candidate exploded")

    def predict(self, frame: Any) -> np.ndarray:
        self._maybe_fail()
        return super().predict(frame)

    def predict_proba(self, frame: Any) -> np.ndarray | None:
        self._maybe_fail()
        return super().predict_proba(frame)


class Shifted(Fitted):
    """A classifier that answers one class for everything (a bad model, not a crashing one)."""

    def __init__(self, inner: Fitted, label: Any) -> None:
        super().__init__(inner.estimator, inner._features)
        self.label = label

    def predict(self, frame: Any) -> np.ndarray:
        return np.asarray([self.label] * len(frame))

    def predict_proba(self, frame: Any) -> np.ndarray | None:
        classes = list(self.classes)
        proba = np.zeros((len(frame), len(classes)))
        proba[:, classes.index(self.label)] = 1.0
        return proba


class NaNs(Fitted):
    """A regressor answering NaN."""

    def predict(self, frame: Any) -> np.ndarray:
        return np.full(len(frame), np.nan)


class Slow(Fitted):
    def __init__(self, inner: Fitted, seconds: float) -> None:
        super().__init__(inner.estimator, inner._features)
        self.seconds = seconds

    def predict(self, frame: Any) -> np.ndarray:
        time.sleep(self.seconds)
        return super().predict(frame)

    def predict_proba(self, frame: Any) -> np.ndarray | None:
        time.sleep(self.seconds)
        return super().predict_proba(frame)


@cache
def iris() -> tuple[Any, Any]:
    from sklearn.datasets import load_iris

    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=dict(zip(data.feature_names, IRIS_FEATURES, strict=True)))
    names = np.asarray(data.target_names)[data.target.to_numpy()]
    return frame[IRIS_FEATURES], names


@cache
def iris_classifier(c: float = 1.0) -> Fitted:
    from sklearn.linear_model import LogisticRegression

    x, y = iris()
    return Fitted(LogisticRegression(max_iter=500, C=c).fit(x, y), IRIS_FEATURES)


@cache
def iris_regressor() -> Fitted:
    from sklearn.linear_model import LinearRegression

    x, _ = iris()
    return Fitted(LinearRegression().fit(x[IRIS_FEATURES[:3]], x["petal_width"]), IRIS_FEATURES[:3])


class DictLoader:
    """ModelLoader over a dict {(name, version): model | Exception to raise on load}."""

    def __init__(self, models: dict[tuple[str, int], Any]) -> None:
        self.models = models
        self.loads: list[tuple[str, int]] = []

    def load(self, name: str, version: int) -> Any:
        self.loads.append((name, version))
        try:
            found = self.models[(name, version)]
        except KeyError:
            from shipyard.errors import NotFound

            raise NotFound(f"model {name}@{version} is not registered") from None
        if isinstance(found, Exception):
            raise found
        return found


ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


PENGUIN_FEATURES = {"island": "string", "bill_length_mm": "double", "flipper_length_mm": "double"}


class Typed(Fitted):
    """A fitted pipeline whose signature has typed columns (a string feature among doubles)."""

    def __init__(self, estimator: Any, types: dict[str, str]) -> None:
        super().__init__(estimator, list(types))
        self.types = types

    @property
    def signature(self) -> dict[str, Any]:
        return {"inputs": [{"name": f, "type": t} for f, t in self.types.items()]}


@cache
def penguin_classifier() -> Typed:
    """A random forest on penguin-like rows (one-hot island + two measurements); takes no NaN."""
    import pandas as pd
    from sklearn.compose import make_column_transformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(7)
    n = 300
    species = rng.choice(["Adelie", "Gentoo", "Chinstrap"], n)
    frame = pd.DataFrame({
        "island": np.where(species == "Gentoo", "Biscoe", rng.choice(["Dream", "Torgersen"], n)),
        "bill_length_mm": np.where(species == "Adelie", 38.0, 48.0) + rng.normal(0, 2, n),
        "flipper_length_mm": np.where(species == "Gentoo", 217.0, 192.0) + rng.normal(0, 5, n),
    })
    encode = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["island"]), remainder="passthrough")
    model = make_pipeline(encode, RandomForestClassifier(n_estimators=10, random_state=0)).fit(frame, species)
    return Typed(model, PENGUIN_FEATURES)


PENGUIN = {"island": "Biscoe", "bill_length_mm": 47.5, "flipper_length_mm": 218.0}
