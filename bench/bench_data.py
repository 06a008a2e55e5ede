"""Data suite: validation vs Great Expectations 1.x and pandera (pandas), drift vs Evidently.

Data (the research note's generator): 1M rows x 20 float columns, reference and current; in the
current, f0-f4 are shifted by 0.5 sd (real drift), f5-f9 by 0.02 sd (irrelevant), f10-f19 are a
fresh draw (no drift). Both sides read the same Parquet files.

Each measurement is one fresh process (wall time from start to exit, imports and reading included)
run under a small launcher that reports that process's own peak RSS; ours and the peer's alternate.
A second row times only the validation call inside the process (data already in memory).
Every run checks its own answer: validation must pass, drift must flag exactly f0-f4.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.harness import WORK, compare, ours_bin, peer_env

N_ROWS, N_COLS = 1_000_000, 20
DIR = WORK / "data"
EXPECTED_DRIFT = [f"f{i}" for i in range(5)]

LAUNCHER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"rc": proc.returncode, "wall": wall, "peak_mb": peak, "stdout": proc.stdout[-20000:],
                  "stderr": proc.stderr[-4000:]}))
"""

GEN = """
import numpy as np, polars as pl, sys
N, K = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
ref = rng.normal(0, 1, size=(N, K))
cur = rng.normal(0, 1, size=(N, K))
cur[:, 0:5] += 0.5     # real drift (0.5 sd)
cur[:, 5:10] += 0.02   # practically irrelevant drift (0.02 sd)
cols = [f"f{i}" for i in range(K)]
pl.DataFrame(ref, schema=cols).write_parquet(sys.argv[3] + "/ref.parquet")
pl.DataFrame(cur, schema=cols).write_parquet(sys.argv[3] + "/cur.parquet")
"""

OURS_DRIFT_CALL = """
import json, sys, time
import polars as pl
from shipyard.data.drift import compare
from shipyard.data.profile import Profile
reference = Profile.from_json(open(sys.argv[1], "rb").read())
cur = pl.read_parquet(sys.argv[2])
start = time.perf_counter()
report = compare(reference, cur)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "drifted": report.drifted}))
"""

OURS_VALIDATE_CALL = """
import json, sys, time
import polars as pl
from shipyard.data.schema import load_schema
from shipyard.data.validate import validate
df = pl.read_parquet(sys.argv[1])
schema = load_schema(sys.argv[2])  # built before the timer, as the peers' suites are
start = time.perf_counter()
report = validate(df, schema)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "passed": report.passed}))
"""

PANDERA = """
import json, sys, time
import pandas as pd
import pandera.pandas as pa
df = pd.read_parquet(sys.argv[1])
schema = pa.DataFrameSchema({c: pa.Column(float, checks=[pa.Check.in_range(-10, 10)], nullable=False)
                             for c in df.columns}, strict=True)
start = time.perf_counter()
schema.validate(df, lazy=True)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "passed": True}))
"""

GX = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
import great_expectations as gx
import great_expectations.expectations as gxe
df = pd.read_parquet(sys.argv[1])
context = gx.get_context(mode="ephemeral")
asset = context.data_sources.add_pandas("bench").add_dataframe_asset("cur")
batch_def = asset.add_batch_definition_whole_dataframe("all")
suite = context.suites.add(gx.ExpectationSuite(name="bench"))
for c in df.columns:
    suite.add_expectation(gxe.ExpectColumnValuesToBeOfType(column=c, type_="float64"))
    suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=c))
    suite.add_expectation(gxe.ExpectColumnValuesToBeBetween(column=c, min_value=-10, max_value=10))
vd = context.validation_definitions.add(gx.ValidationDefinition(name="bench", data=batch_def, suite=suite))
start = time.perf_counter()
result = vd.run(batch_parameters={"dataframe": df})
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "passed": bool(result.success)}))
"""

EVIDENTLY = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
ref = pd.read_parquet(sys.argv[1])
cur = pd.read_parquet(sys.argv[2])
start = time.perf_counter()
snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
seconds = time.perf_counter() - start
drifted = []
for metric in snapshot.dict()["metrics"]:
    name = str(metric.get("metric_name", ""))
    if name.startswith("ValueDrift(") and "column=" in name:
        column = name.split("column=")[1].split(",")[0].rstrip(")")
        value = metric["value"]
        threshold = float(name.split("threshold=")[1].split(",")[0].rstrip(")")) if "threshold=" in name else 0.1
        if value >= threshold:
            drifted.append(column)
print(json.dumps({"seconds": seconds, "drifted": sorted(drifted, key=lambda c: int(c[1:]))}))
"""

SCHEMA = "columns:\n" + "".join(f"  f{i}: {{dtype: float, nullable: false, min: -10, max: 10}}\n" for i in range(N_COLS)) \
    + "table:\n  strict: true\n"


def _script(name: str, text: str) -> Path:
    path = DIR / name
    path.write_text(text)
    return path


def _run(cmd: list[str], cwd: Path | None = None) -> dict:
    """One fresh process under the launcher: wall seconds, its own peak RSS, its stdout."""
    out = subprocess.run([sys.executable, "-c", LAUNCHER, *cmd], cwd=cwd, capture_output=True, text=True,
                         env={**os.environ, "CI": "true"})
    result = json.loads(out.stdout)
    if result["rc"] not in (0,):
        raise RuntimeError(f"{' '.join(cmd)} exited {result['rc']}:\n{result['stdout'][-2000:]}\n{result['stderr']}")
    return result


def _prepare() -> Path:
    DIR.mkdir(parents=True, exist_ok=True)
    if not (DIR / "cur.parquet").exists():
        subprocess.run([sys.executable, "-c", GEN, str(N_ROWS), str(N_COLS), str(DIR)], check=True)
    (DIR / "schema.yaml").write_text(SCHEMA)
    project = DIR / "project"
    if not (project / "shipyard.yaml").exists():
        project.mkdir(exist_ok=True)
        subprocess.run([ours_bin(), "init"], cwd=project, check=True, capture_output=True, env={**os.environ, "CI": "true"})
    for name in ("ref.parquet", "cur.parquet"):
        link = project / name
        if not link.exists():
            os.link(DIR / name, link)
    return project


def run(n: int) -> None:
    """``BENCH_DATA_PARTS=validate`` or ``=drift`` runs one half (default: both)."""
    parts = set(os.environ.get("BENCH_DATA_PARTS", "validate,drift").split(","))
    project = _prepare()
    py = {p: str(peer_env(p) / "bin" / "python") for p in ("great_expectations", "pandera", "evidently")}
    cur, ref, schema = DIR / "cur.parquet", DIR / "ref.parquet", DIR / "schema.yaml"
    shipyard = ours_bin()

    def ours_validate() -> tuple[float, float]:
        r = _run([shipyard, "data", "validate", str(cur), "--schema", str(schema), "--json"])
        assert json.loads(r["stdout"])["passed"], r["stdout"][:500]
        return r["wall"], r["peak_mb"]

    def peer_process(script: Path, *args: str, python: str) -> tuple[float, float]:
        r = _run([python, str(script), *args])
        assert json.loads(r["stdout"].strip().splitlines()[-1])["passed"], r["stdout"][-500:]
        return r["wall"], r["peak_mb"]

    def in_process(python: str, script: Path, *args: str) -> float:
        r = _run([python, str(script), *args])
        payload = json.loads(r["stdout"].strip().splitlines()[-1])
        assert payload["passed"], payload
        return payload["seconds"]

    ours_call = _script("ours_validate.py", OURS_VALIDATE_CALL)
    gx_script = _script("gx_validate.py", GX)
    pandera_script = _script("pandera_validate.py", PANDERA)
    evidently_script = _script("evidently_drift.py", EVIDENTLY)

    if "validate" in parts:
        _validate_rows(n, ours_validate, peer_process, in_process, ours_call, gx_script, pandera_script, py, cur, schema)
    if "drift" in parts:
        _drift_rows(n, shipyard, project, py, evidently_script, ref, cur)


def _validate_rows(n, ours_validate, peer_process, in_process, ours_call, gx_script, pandera_script, py, cur, schema) -> None:  # type: ignore[no-untyped-def]
    compare("validate, process", ours_validate, lambda: peer_process(pandera_script, str(cur), python=py["pandera"]),
            "pandera 0.35 pandas", n=n)
    compare("validate, in-process call", lambda: in_process(sys.executable, ours_call, str(cur), str(schema)),
            lambda: in_process(py["pandera"], pandera_script, str(cur)), "pandera 0.35 pandas", n=n)
    compare("validate, process", ours_validate, lambda: peer_process(gx_script, str(cur), python=py["great_expectations"]),
            "Great Expectations 1.24.1", n=max(2, n // 2), warmup=0)
    compare("validate, in-process call", lambda: in_process(sys.executable, ours_call, str(cur), str(schema)),
            lambda: in_process(py["great_expectations"], gx_script, str(cur)), "Great Expectations 1.24.1",
            n=max(2, n // 2), warmup=0)



def _drift_rows(n, shipyard, project, py, evidently_script, ref, cur) -> None:  # type: ignore[no-untyped-def]
    # drift: the reference profile is computed once at `data add` (timed separately, below)
    add = _run([shipyard, "data", "add", "ref.parquet", "--name", "bench", "--json"], cwd=project)
    note = "" if json.loads(add["stdout"])["created"] else " (already stored: timing of the no-op)"
    print(f"| reference profile at `data add` (once, 1M x 20, incl. hashing and storing){note} | "
          f"{add['wall']:.2f} s, peak {add['peak_mb']:.0f} MB | | |", flush=True)

    def ours_drift() -> tuple[float, float]:
        r = _run([shipyard, "data", "drift", "--reference", "bench@1", "--current", "cur.parquet", "--json"], cwd=project)
        got = json.loads(r["stdout"])["drifted_columns"]
        assert got == EXPECTED_DRIFT, f"shipyard flagged {got}"
        return r["wall"], r["peak_mb"]

    evidently_inner: list[float] = []
    ours_inner: list[float] = []
    profile_json = DIR / "reference-profile.json"
    _export_profile(project, profile_json)
    ours_call = _script("ours_drift.py", OURS_DRIFT_CALL)

    def evidently_drift() -> tuple[float, float]:
        r = _run([py["evidently"], str(evidently_script), str(ref), str(cur)])
        payload = json.loads(r["stdout"].strip().splitlines()[-1])
        assert payload["drifted"] == EXPECTED_DRIFT, f"evidently flagged {payload['drifted']}"
        evidently_inner.append(payload["seconds"])
        # our in-process compare, right after the peer's run (alternating)
        mine = json.loads(_run([sys.executable, str(ours_call), str(profile_json), str(cur)])["stdout"])
        assert mine["drifted"] == EXPECTED_DRIFT, mine
        ours_inner.append(mine["seconds"])
        return r["wall"], r["peak_mb"]

    compare("drift vs stored reference, process", ours_drift, evidently_drift, "Evidently 0.7.23 DataDriftPreset",
            n=max(2, n // 2), warmup=0)
    import statistics

    o, e = statistics.median(ours_inner), statistics.median(evidently_inner)
    print(f"| drift, in-process call (compare vs Report.run) | {min(ours_inner) * 1000:.1f} / {o * 1000:.1f} ms "
          f"| {min(evidently_inner) * 1000:.1f} / {e * 1000:.1f} ms (Evidently 0.7.23 DataDriftPreset) "
          f"| **{e / o:.1f}x** |", flush=True)


def _export_profile(project: Path, dest: Path) -> None:
    """Write the stored reference profile of bench@1 to a JSON file (for the in-process row)."""
    code = ("import sys; from shipyard.workspace import Workspace; from shipyard.store.datasets import get_version; "
            "ws = Workspace.discover(); s = ws.store.read().__enter__(); v = get_version(s, 'bench@1'); "
            "open(sys.argv[1], 'wb').write(ws.objects.get_bytes(v.profile_oid))")
    subprocess.run([sys.executable, "-c", code, str(dest)], cwd=project, check=True)
