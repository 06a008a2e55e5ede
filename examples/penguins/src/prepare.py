"""Clean the raw penguins table and split it into train and test Parquet files."""

from pathlib import Path

import pandas as pd
import yaml
from sklearn.model_selection import train_test_split

params = yaml.safe_load(Path("params.yaml").read_text())["prepare"]
raw = pd.read_csv("data/raw.csv")
clean = raw.dropna(subset=["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex"])
clean = clean.reset_index(drop=True)
train, test = train_test_split(
    clean, test_size=params["test_size"], random_state=params["seed"], stratify=clean["species"]
)
out = Path("data/prepared")
out.mkdir(parents=True, exist_ok=True)
train.to_parquet(out / "train.parquet", index=False)
test.to_parquet(out / "test.parquet", index=False)
print(f"prepared {len(clean)} of {len(raw)} rows: {len(train)} train, {len(test)} test")
