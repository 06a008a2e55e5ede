"""Train a species classifier on the prepared data and save it in the skops format."""

from pathlib import Path

import pandas as pd
import skops.io as sio
import yaml
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import shipyard  # inside `shipyard run` this logs to the stage's run; by hand it starts a run

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
shipyard.log_params({"model": params["model"], "n_estimators": params["n_estimators"],
                     "max_depth": params["max_depth"], "C": params["C"], "seed": params["seed"],
                     "features": ",".join(features)})
shipyard.log_input("prepared-train", path="data/prepared/train.parquet", context="training")
model.fit(train[features], train["species"])
shipyard.log_metric("train_accuracy", float(accuracy_score(train["species"], model.predict(train[features]))))

out = Path("model")
out.mkdir(exist_ok=True)
sio.dump(model, out / "model.skops")
shipyard.log_artifact(out / "model.skops", "model")
print(f"trained {params['model']} on {len(train)} rows, {len(features)} features")
