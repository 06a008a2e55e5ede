"""Train a species classifier on the prepared data and save it in the skops format."""

from pathlib import Path

import pandas as pd
import skops.io as sio
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

CATEGORICAL = {"island", "sex"}

params = yaml.safe_load(Path("params.yaml").read_text())["train"]
train = pd.read_parquet("data/prepared/train.parquet")
features = params["features"]
categorical = [f for f in features if f in CATEGORICAL]
numeric = [f for f in features if f not in CATEGORICAL]

if params["model"] == "logistic_regression":
    estimator = LogisticRegression(C=params["C"], max_iter=1000, random_state=params["seed"])
else:
    estimator = RandomForestClassifier(
        n_estimators=params["n_estimators"], max_depth=params["max_depth"], random_state=params["seed"]
    )
model = Pipeline([
    ("features", ColumnTransformer([
        ("numeric", StandardScaler(), numeric),
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
    ])),
    ("classifier", estimator),
])
model.fit(train[features], train["species"])

out = Path("model")
out.mkdir(exist_ok=True)
sio.dump(model, out / "model.skops")
print(f"trained {params['model']} on {len(train)} rows, {len(features)} features")
