"""Train on the point-in-time features Shipyard retrieved (data/train.parquet: every labelled row,
null features where no statistic existed yet) and save the model in the skops format."""

from pathlib import Path

import pandas as pd
import skops.io as sio
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from sklearn.pipeline import Pipeline

import shipyard

FEATURES = ["conv_rate", "acc_rate", "avg_daily_trips", "trips_today", "rating", "cancel_rate", "online_hours",
            "avg_fare", "avg_distance_km", "complaints_7d"]

train = pd.read_parquet("data/train.parquet")
X = train[FEATURES].astype("float64")
model = Pipeline([("impute", SimpleImputer(strategy="mean")), ("classifier", LogisticRegression(max_iter=1000))])
model.fit(X, train["label"])
accuracy = float(accuracy_score(train["label"], model.predict(X)))
shipyard.log_metric("train_accuracy", accuracy)
Path("model").mkdir(exist_ok=True)
sio.dump(model, "model/model.skops")
print(f"trained on {len(train)} rows ({int(train['conv_rate'].isna().sum())} without features), accuracy {accuracy:.3f}")
