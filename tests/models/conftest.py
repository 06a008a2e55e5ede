"""Small real models trained on the penguins example data."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import EXAMPLE

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


@pytest.fixture(scope="session")
def penguin_frame():  # type: ignore[no-untyped-def]
    import pandas as pd

    raw = pd.read_csv(EXAMPLE / "data" / "raw.csv")
    return raw.dropna(subset=[*NUMERIC, "sex"]).reset_index(drop=True)


@pytest.fixture(scope="session")
def sk_model(penguin_frame):  # type: ignore[no-untyped-def]
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    features = [*NUMERIC, "island", "sex"]
    model = Pipeline([
        ("features", ColumnTransformer([("n", StandardScaler(), NUMERIC),
                                        ("c", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"])])),
        ("clf", RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0)),
    ])
    model.fit(penguin_frame[features], penguin_frame["species"])
    return model, features


@pytest.fixture
def objects(tmp_path: Path):  # type: ignore[no-untyped-def]
    from shipyard.objects import ObjectStore

    return ObjectStore.open(tmp_path / "objects")
