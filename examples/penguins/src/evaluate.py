"""Evaluate the model on the test split: metrics.json and PNG plots."""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
import skops.io as sio
import yaml
from sklearn.metrics import ConfusionMatrixDisplay, accuracy_score, f1_score

import shipyard  # inside `shipyard run` this logs to the stage's run; by hand it starts a run

params = yaml.safe_load(Path("params.yaml").read_text())["train"]
test = pd.read_parquet("data/prepared/test.parquet")
path = Path("model/model.skops")
model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
predicted = model.predict(test[params["features"]])

metrics = {
    "accuracy": round(float(accuracy_score(test["species"], predicted)), 6),
    "f1_macro": round(float(f1_score(test["species"], predicted, average="macro")), 6),
    "test_rows": len(test),
}
Path("metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
shipyard.log_metrics({"accuracy": metrics["accuracy"], "f1_macro": metrics["f1_macro"]})
shipyard.log_input("prepared-test", path="data/prepared/test.parquet", context="eval")

plots = Path("plots")
plots.mkdir(exist_ok=True)
ConfusionMatrixDisplay.from_predictions(test["species"], predicted, cmap="Blues")
plt.title("Confusion matrix (test split)")
plt.tight_layout()
plt.savefig(plots / "confusion_matrix.png", dpi=100)
shipyard.log_artifact(plots / "confusion_matrix.png", "plots")
print(f"accuracy {metrics['accuracy']:.3f}, f1_macro {metrics['f1_macro']:.3f} on {len(test)} rows")
