"""scikit-learn via skops: no pickle; only types on an explicit trusted list are rebuilt."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from shipyard.errors import UnsafeModel, require_extra
from shipyard.models.flavors.base import Flavor
from shipyard.supply.allowlist import untrusted_skops_types

# Types outside skops' own default list that we accept: one list, shared with ``shipyard scan``.
untrusted = untrusted_skops_types


def _allowed(types: list[str], trust: bool) -> list[str]:
    """The types skops may rebuild: all of ``types`` with trust, else those on our trusted list."""
    return list(types) if trust else [t for t in types if not untrusted([t])]


class UntrustedTypes(UnsafeModel):
    """A skops file holds types outside the trusted list. Unlike a pickle's denied globals this is
    not proof of harm, so a client that cannot say ``--trust`` may still store it untrusted."""

    deferrable = True


class SklearnFlavor(Flavor):
    name = "sklearn"
    safe = True
    extensions = (".skops",)
    format_name = "skops"
    checks_while_loading = True   # skops audits the types while it loads (see _load)

    def _check(self, data: bytes, what: str, trust: bool) -> dict[str, Any]:
        require_extra("skops", "sklearn")
        import skops.io as sio

        try:
            found = sio.get_untrusted_types(data=data)
        except Exception:
            return {}  # not a skops file at all: _load says so with the library's reason
        refused = untrusted(found)
        if refused and not trust:
            raise UntrustedTypes(f"{what} contains types outside the trusted list: {', '.join(refused)}",
                              hint="if you wrote these classes yourself, pass --trust; otherwise do not load this file")
        return {"skops_types": found}

    def _load(self, data: bytes, what: str, meta: dict[str, Any], trust: bool) -> Any:
        """One parse of the file in the usual case: the package recorded the file's types beyond
        skops' own list (``skops_types``), so skops can audit while it loads, allowing those on
        our trusted list (all of them with ``trust``). A type the package did not record makes
        skops refuse; then the file's own types are read and judged as at registration."""
        import skops.io as sio
        from skops.io.exceptions import UntrustedTypesFoundException

        try:
            return sio.loads(data, trusted=_allowed(meta.get("skops_types", []), trust))
        except UntrustedTypesFoundException:
            found = self._check(data, what, trust).get("skops_types", [])   # refuses untrusted types
            return sio.loads(data, trusted=_allowed(found, trust))

    def _save(self, model: Any, folder: Path) -> Path:
        import skops.io as sio

        path = folder / "model.skops"
        sio.dump(model, path)
        return path

    def _array_native(self, loaded: Any) -> Any:
        return array_estimator(loaded.native, loaded.signature.columns)


def array_estimator(estimator: Any, columns: list[str]) -> Any | None:
    """``estimator`` when it can predict straight from a float matrix whose columns are ``columns``
    in that order, else None. The names are checked here, once, instead of on a DataFrame per call
    (scikit-learn's per-call DataFrame checks cost several times the prediction of a small model).
    Column transformers, feature unions and function transformers may pick columns by name, and a
    transformer from outside scikit-learn may too, so a model holding one keeps the DataFrame path;
    a pipeline of scikit-learn's own column-blind steps (an imputer, a scaler, then a classifier)
    takes the matrix."""
    from sklearn.base import BaseEstimator
    from sklearn.pipeline import Pipeline

    if not isinstance(estimator, BaseEstimator) or not _column_blind(estimator):
        return None
    names = getattr(estimator, "feature_names_in_", None)
    if names is None and isinstance(estimator, Pipeline):
        names = getattr(estimator.steps[0][1], "feature_names_in_", None)
    if names is not None and [str(n) for n in names] != list(columns):
        return None
    if names is None and getattr(estimator, "n_features_in_", None) != len(columns):
        return None
    # The matrix has no names by design (checked above): scikit-learn's reminder is noise here.
    warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
    return estimator


def _column_blind(estimator: Any) -> bool:
    """Whether ``estimator`` and every estimator inside it are scikit-learn's own and none of them
    can select columns by name (ColumnTransformer, FeatureUnion, FunctionTransformer)."""
    from sklearn.base import BaseEstimator
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import FeatureUnion
    from sklearn.preprocessing import FunctionTransformer

    by_name = (ColumnTransformer, FeatureUnion, FunctionTransformer)
    # deep parameters name every nested estimator, a pipeline's steps included
    parts = [estimator, *(v for v in estimator.get_params(deep=True).values() if isinstance(v, BaseEstimator))]
    return all(type(part).__module__.startswith("sklearn.") and not isinstance(part, by_name) for part in parts)
