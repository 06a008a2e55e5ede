"""Registry and gates: the champion comparison's paired bootstrap, and model load times.

1. Gate statistic: 1,000 paired bootstrap resamples of f1_macro and of RMSE on 100k evaluation
   rows, in process. For f1_macro ours draws all resamples as one multinomial over (label,
   prediction A, prediction B) cells; for RMSE it draws each row's count per resample (one random
   byte per row, see shipyard/gates/stats.py). The comparison side is the straightforward approach:
   resampling row indices (then ``np.bincount`` confusion matrices, or a gather of squared errors).
   Target: ours under 2 s.
2. MLflow 3 models over REST: ``mlflow.sklearn.log_model`` + ``register_model`` + ``load_model`` with
   MLflow's own client against ``shipyard server`` and ``mlflow server`` side by side (the median of
   5 round trips per sample, bench/tracking_worker.py). Target: at most half of MLflow's time.
3. Model load: the penguins example's random forest (100 trees, depth 6) saved with skops and with
   pickle, loaded through ``shipyard.models.load_model`` (object store read + hash verification +
   flavor checks) and raw (``skops.io.loads`` with its trusted list / ``pickle.loads``). Report only.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.harness import REPO, compare

ROWS = 100_000
RESAMPLES = 1000


def _labels(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, ROWS)
    a = np.where(rng.random(ROWS) < 0.92, y, rng.integers(0, 3, ROWS))
    b = np.where(rng.random(ROWS) < 0.90, y, rng.integers(0, 3, ROWS))
    return y, a, b


def _f1_from_conf(conf: np.ndarray) -> float:
    tp = np.diag(conf).astype(float)
    support, predicted = conf.sum(axis=1), conf.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(predicted > 0, tp / predicted, 0)
        r = np.where(support > 0, tp / support, 0)
        f = np.where(p + r > 0, 2 * p * r / (p + r), 0)
    return float(f.mean())


def _row_resampling(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    out = np.empty(RESAMPLES)
    for i in range(RESAMPLES):
        idx = rng.integers(0, ROWS, ROWS)
        yy = y[idx]
        conf_a = np.bincount(yy * 3 + a[idx], minlength=9).reshape(3, 3)
        conf_b = np.bincount(yy * 3 + b[idx], minlength=9).reshape(3, 3)
        out[i] = _f1_from_conf(conf_a) - _f1_from_conf(conf_b)
    return out


def _row_index_rmse(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The straightforward paired bootstrap of an RMSE difference: draw row indices (80 resamples
    at a time), gather both models' squared errors, take the means (Shipyard's method until #7)."""
    rng = np.random.default_rng(0)
    sq_a, sq_b = ((a - y) ** 2).astype(np.float32), ((b - y) ** 2).astype(np.float32)
    out = np.empty(RESAMPLES)
    for start in range(0, RESAMPLES, 80):
        idx = rng.integers(0, ROWS, size=(min(80, RESAMPLES - start), ROWS), dtype=np.int32)
        out[start:start + len(idx)] = np.sqrt(sq_a[idx].mean(axis=1)) - np.sqrt(sq_b[idx].mean(axis=1))
    return out


def _timed(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run(n: int) -> None:
    from shipyard.gates.stats import paired_bootstrap

    y, a, b = _labels()
    result = compare(f"paired bootstrap f1_macro, {RESAMPLES} resamples x {ROWS:,} rows (vs row-index resampling)",
                     lambda: _timed(lambda: paired_bootstrap("f1_macro", y, a, b, resamples=RESAMPLES)),
                     lambda: _timed(lambda: _row_resampling(y, a, b)), "row resampling", n=n)
    print(f"<!-- target: under 2 s; median {result.ours.median:.3f} s: {'met' if result.ours.median < 2 else 'MISSED'} -->")
    rng = np.random.default_rng(1)
    yr = rng.random(ROWS)
    pa, pb = yr + rng.normal(0, 0.1, ROWS), yr + rng.normal(0, 0.11, ROWS)
    result = compare(f"paired bootstrap rmse, {RESAMPLES} x {ROWS:,} rows (per-row counts vs row-index resampling)",
                     lambda: _timed(lambda: paired_bootstrap("rmse", yr, pa, pb, resamples=RESAMPLES)),
                     lambda: _timed(lambda: _row_index_rmse(yr, pa, pb)), "row-index resampling", n=n)
    print(f"<!-- target: under 2 s (under 1 s quiet); median {result.ours.median:.3f} s: "
          f"{'met' if result.ours.median < 2 else 'MISSED'} -->")
    _mlflow_round_trip(n)
    _load_times(n)


def _mlflow_round_trip(n: int) -> None:
    import shutil

    from bench.bench_tracking import Servers, _worker, mlflow_env
    from bench.harness import WORK

    root = WORK / "registry-mlflow"
    shutil.rmtree(root, ignore_errors=True)
    python = mlflow_env()[0]
    with Servers(root) as servers:
        result = compare("MLflow client: sklearn log_model + register_model + load_model (median of 5)",
                         lambda: _worker(python, "client", "rest_model_round_trip", root, servers.ours),
                         lambda: _worker(python, "client", "rest_model_round_trip", root, servers.peer),
                         "mlflow server 3.17.2", n=n)
    ratio = result.ours.median / result.peer.median
    print(f"<!-- target: at most half of MLflow's; ours/MLflow = {ratio:.2f}: {'met' if ratio <= 0.5 else 'MISSED'} -->")


def _load_times(n: int) -> None:
    import pandas as pd
    import skops.io as sio
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from shipyard.models import load_model, package_model, save_model
    from shipyard.objects import ObjectStore

    raw = pd.read_csv(REPO / "examples" / "penguins" / "data" / "raw.csv").dropna().reset_index(drop=True)
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
    features = [*numeric, "island", "sex"]
    model = Pipeline([("features", ColumnTransformer([("numeric", StandardScaler(), numeric),
                                                      ("categorical", OneHotEncoder(handle_unknown="ignore"), ["island", "sex"])])),
                      ("classifier", RandomForestClassifier(n_estimators=100, max_depth=6, random_state=42))])
    model.fit(raw[features], raw["species"])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        objects = ObjectStore.open(root / "objects")
        save_model(model, root / "skops", "sklearn")
        save_model(model, root / "pickle", "pickle")
        sk = package_model(objects, root / "skops", "sklearn", sample=raw[features])
        pk = package_model(objects, root / "pickle", "pickle", trust=True, sample=raw[features])
        print(f"<!-- model files: skops {sk.size_bytes:,} bytes, pickle {pk.size_bytes:,} bytes -->")
        compare("load the penguins forest via load_model: skops vs pickle (trusted, scanned)",
                lambda: _timed(lambda: load_model(objects, sk.model_oid, "sklearn")),
                lambda: _timed(lambda: load_model(objects, pk.model_oid, "pickle", trust=True)), "pickle", n=n)
        sk_bytes = (root / "skops" / "model.skops").read_bytes()
        pk_bytes = (root / "pickle" / "model.pkl").read_bytes()
        trusted = sio.get_untrusted_types(data=sk_bytes)
        compare("raw load: skops.io.loads vs pickle.loads",
                lambda: _timed(lambda: sio.loads(sk_bytes, trusted=trusted)),
                lambda: _timed(lambda: pickle.loads(pk_bytes)), "pickle.loads", n=n)
