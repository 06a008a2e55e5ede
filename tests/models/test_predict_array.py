"""LoadedModel.predict_array: the gateway's matrix fast path agrees with the DataFrame path, and
falls back to it (with its errors) whenever a matrix would skip a check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from shipyard.errors import InputError
from shipyard.models import load_model, package_model, save_model
from shipyard.models.flavors.sklearn import array_estimator
from tests.models.conftest import NUMERIC


def packaged(tmp_path: Path, objects, model, sample):  # type: ignore[no-untyped-def]
    save_model(model, tmp_path / "model", "sklearn")
    done = package_model(objects, tmp_path / "model", "sklearn", sample=sample)
    return load_model(objects, done.model_oid, "sklearn")


def test_plain_estimator_predicts_from_a_matrix_like_from_a_frame(tmp_path: Path, objects, penguin_frame) -> None:
    from sklearn.linear_model import LogisticRegression

    x = penguin_frame[NUMERIC]
    loaded = packaged(tmp_path, objects, LogisticRegression(max_iter=5000).fit(x, penguin_frame["species"]), x)
    matrix = x.to_numpy(dtype=np.float64)
    assert loaded._matrix_native(matrix) is loaded.native  # the fast path is really taken
    assert (loaded.predict_array(matrix) == loaded.predict(x)).all()
    assert np.allclose(loaded.predict_proba_array(matrix), loaded.predict_proba(x))


def test_pipeline_picking_columns_by_name_keeps_the_frame_path(tmp_path: Path, objects, sk_model,
                                                                penguin_frame) -> None:
    model, features = sk_model
    assert array_estimator(model, features) is None
    numeric = penguin_frame[NUMERIC]
    from sklearn.linear_model import LogisticRegression

    plain = LogisticRegression(max_iter=2000).fit(numeric, penguin_frame["species"])
    assert array_estimator(plain, list(reversed(NUMERIC))) is None  # other order: names disagree
    assert array_estimator(plain, NUMERIC) is plain


def test_missing_value_in_a_required_column_is_still_refused_by_name(tmp_path: Path, objects,
                                                                      penguin_frame) -> None:
    from sklearn.linear_model import LinearRegression

    x = penguin_frame[NUMERIC[:3]]
    loaded = packaged(tmp_path, objects, LinearRegression().fit(x, penguin_frame["body_mass_g"]), x)
    # inferred signatures allow nulls; a hand-written one may not
    loaded.signature = replace(loaded.signature, inputs=tuple(replace(c, nullable=False) for c in loaded.signature.inputs))
    matrix = x.head(3).to_numpy(dtype=np.float64, copy=True)
    assert loaded.predict_array(matrix).shape == (3,)
    matrix[1, 2] = np.nan
    with pytest.raises(InputError, match=NUMERIC[2]):
        loaded.predict_array(matrix)


def test_a_pipeline_of_column_blind_steps_takes_the_matrix_and_one_that_can_pick_columns_does_not(
        tmp_path: Path, objects, penguin_frame) -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    x, y = penguin_frame[NUMERIC], penguin_frame["species"]
    blind = make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression(max_iter=2000)).fit(x, y)
    assert array_estimator(blind, NUMERIC) is blind
    assert array_estimator(blind, list(reversed(NUMERIC))) is None
    picking = make_pipeline(FunctionTransformer(lambda df: df[NUMERIC]), LogisticRegression(max_iter=2000)).fit(x, y)
    assert array_estimator(picking, NUMERIC) is None
    loaded = packaged(tmp_path, objects, blind, x)
    matrix = x.to_numpy(dtype=np.float64)
    assert loaded._matrix_native(matrix) is loaded.native
    assert (loaded.predict_array(matrix) == loaded.predict(x)).all()


def test_long_and_boolean_inputs_take_the_matrix_only_with_whole_numbers(tmp_path: Path, objects) -> None:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(5)
    x = pd.DataFrame({"trips": rng.integers(0, 40, 120), "active": rng.integers(0, 2, 120).astype(bool),
                      "rate": rng.random(120)})
    loaded = packaged(tmp_path, objects, LogisticRegression().fit(x, x["trips"] > 20), x)
    matrix = x.to_numpy(dtype=np.float64)
    assert loaded._matrix_native(matrix) is loaded.native
    assert (loaded.predict_array(matrix) == loaded.predict(x)).all()
    for column, bad in ((0, 2.5), (1, 2.0)):  # a fraction in a long column, a 2 in a boolean one
        wrong = matrix.copy()
        wrong[0, column] = bad
        assert loaded._matrix_native(wrong) is None
        with pytest.raises(InputError, match=list(x.columns)[column]):
            loaded.predict_array(wrong)
