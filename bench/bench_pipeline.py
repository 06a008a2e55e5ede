"""Pipeline benchmarks against DVC 3.67.1 (bench/peers/dvc.txt): no-op run, status, run-cache restore.

Two projects per scenario, identical but for the pipeline file (shipyard.yaml vs dvc.yaml), under
bench/.work/pipeline. Scenarios: the research note's two-stage pipeline (prepare -> train, params,
a ``cache: false`` metrics file) and a stage depending on a folder of 10k and 100k small files
(1 KiB each, 1,000 per subfolder). Each timing runs ours and DVC alternately (bench.harness.compare).
Peak memory is each process's own max RSS (from wait4), not the harness's cumulative figure.

``cold status`` deletes every local cache first, as in a fresh CI clone: for us the whole
``.shipyard/`` folder (stat/hash caches, parse cache, store), for DVC its site cache (state DB and
index) and ``.dvc/tmp``. Bytecode writing is enabled for both sides (this machine's shell sets
PYTHONDONTWRITEBYTECODE=1, which would make every start-up recompile both tools).

``dvc_example`` is DVC's own get-started project (examples/dvc-get-started: XML posts -> prepare ->
featurize -> train -> evaluate with dvclive), unchanged, 1,000 generated posts: ``shipyard run`` on
its dvc.yaml vs ``dvc repro``, no-op and the run-cache restore of train + evaluate when
``train.n_est`` flips between two values both sides have run. The stages' ``python`` is the
benchmark's interpreter for both (it has scikit-learn and dvclive).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench.harness import PEERS, WORK, compare, ours_bin, peer_bin

ROOT = WORK / "pipeline"
ENV = {"DVC_NO_ANALYTICS": "1", "CI": "true"}



def dvc_bin() -> str:
    """DVC 3.67.1: the peer venv when it is installed (or uv can install it), else this venv's own
    copy (dvc is a dev dependency of Shipyard; same version, checked)."""
    if (PEERS / "dvc" / ".installed").exists() or shutil.which("uv"):
        return peer_bin("dvc")
    own = ours_bin("dvc")
    pinned = (Path(__file__).parent / "peers" / "dvc.txt").read_text().strip().partition("==")[2]
    found = subprocess.run([own, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if found != pinned:
        raise SystemExit(f"bench: dvc {found} in this venv, {pinned} pinned in bench/peers/dvc.txt; install uv")
    return own


PREPARE = """import yaml
n = yaml.safe_load(open('params.yaml'))['prepare']['n']
open('data/prepared.txt', 'w').write(''.join(f'{i}\\n' for i in range(n)))
"""
TRAIN = """import json, yaml
k = yaml.safe_load(open('params.yaml'))['train']['k']
lines = open('data/prepared.txt').read().splitlines()
open('model.txt', 'w').write(str(sum(int(x) % k for x in lines)))
json.dump({'k': k, 'rows': len(lines)}, open('metrics.json', 'w'))
"""
COUNT = """import os
n = sum(len(files) for _, _, files in os.walk('data/many'))
open('count.txt', 'w').write(str(n))
"""

TWO_STAGE_SHIPYARD = """pipeline:
  stages:
    prepare:
      cmd: {py} prepare.py
      deps: [prepare.py]
      params: [prepare.n]
      outs: [data/prepared.txt]
    train:
      cmd: {py} train.py
      deps: [train.py, data/prepared.txt]
      params: [train.k]
      outs: [model.txt]
      metrics: [{{metrics.json: {{cache: false}}}}]
"""
TWO_STAGE_DVC = """stages:
  prepare:
    cmd: {py} prepare.py
    deps: [prepare.py]
    params: [prepare.n]
    outs: [data/prepared.txt]
  train:
    cmd: {py} train.py
    deps: [train.py, data/prepared.txt]
    params: [train.k]
    outs: [model.txt]
    metrics:
      - metrics.json:
          cache: false
"""
MANY_SHIPYARD = """pipeline:
  stages:
    count:
      cmd: {py} count.py
      deps: [count.py, data/many]
      outs: [count.txt]
"""
MANY_DVC = """stages:
  count:
    cmd: {py} count.py
    deps: [count.py, data/many]
    outs: [count.txt]
"""


def run_measured(cmd: list[str], cwd: Path, check: bool = True, extra_env: dict[str, str] | None = None
                 ) -> tuple[float, float]:
    """Wall seconds and this process's own peak RSS in MB (wait4, children it waited for included)."""
    env = {**os.environ, **ENV, **(extra_env or {})}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read() if proc.stdout else b""
    _pid, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}) in {cwd}:\n{out.decode()[-3000:]}")
    return elapsed, usage.ru_maxrss / 1024


def _params(root: Path, n: int, k: int) -> None:
    (root / "params.yaml").write_text(f"prepare:\n  n: {n}\ntrain:\n  k: {k}\n")


def _fresh(name: str) -> tuple[Path, Path]:
    ours, peer = ROOT / name / "shipyard", ROOT / name / "dvc"
    for folder in (ours, peer):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
    return ours, peer


def _dvc_init(root: Path) -> Path:
    dvc = dvc_bin()
    run_measured([dvc, "init", "--no-scm", "-q"], root)
    site = root / ".dvc-site-cache"
    run_measured([dvc, "config", "core.site_cache_dir", str(site)], root)
    return site


def _many_files(root: Path, count: int) -> None:
    rng = random.Random(count)
    base = root / "data" / "many"
    for i in range(count):
        folder = base / f"d{i // 1000:03}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"f{i % 1000:04}.bin").write_bytes(rng.randbytes(1024))


def _age(root: Path) -> None:
    """Push every mtime a few seconds into the past, as files checked out earlier would be."""
    old = time.time() - 30
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(dirpath, name), (old, old))


def two_stage(n: int) -> None:
    ours, peer = _fresh("two-stage")
    py = sys.executable
    for root in (ours, peer):
        (root / "data").mkdir()
        (root / "prepare.py").write_text(PREPARE)
        (root / "train.py").write_text(TRAIN)
        _params(root, 1000, 3)
    (ours / "shipyard.yaml").write_text(TWO_STAGE_SHIPYARD.format(py=py))
    (peer / "dvc.yaml").write_text(TWO_STAGE_DVC.format(py=py))
    _dvc_init(peer)
    shipyard, dvc = ours_bin(), dvc_bin()
    for k in (4, 3):  # two run-cache entries per side: k=3 and k=4
        for root in (ours, peer):
            _params(root, 1000, k)
        run_measured([shipyard, "run"], ours)
        run_measured([dvc, "repro", "-q"], peer)
    _age(ours)
    _age(peer)
    run_measured([shipyard, "status"], ours)
    run_measured([dvc, "status"], peer)

    compare("two stages: no-op `run` vs `dvc repro`", lambda: run_measured([shipyard, "run"], ours),
            lambda: run_measured([dvc, "repro"], peer), "dvc 3.67.1", n=n)
    compare("two stages: `status` vs `dvc status`", lambda: run_measured([shipyard, "status"], ours),
            lambda: run_measured([dvc, "status"], peer), "dvc 3.67.1", n=n)

    state = {"ours": 3, "peer": 3}

    def flip(root: Path, side: str) -> tuple[float, float]:
        state[side] = 4 if state[side] == 3 else 3
        _params(root, 1000, state[side])
        if side == "ours":
            result = run_measured([shipyard, "run"], root)
        else:
            result = run_measured([dvc, "repro"], root)
        return result

    compare("two stages: run-cache restore of `train` (k 3 <-> 4)", lambda: flip(ours, "ours"),
            lambda: flip(peer, "peer"), "dvc 3.67.1", n=n)
    check = subprocess.run([shipyard, "run"], cwd=ours, capture_output=True, text=True, env={**os.environ, **ENV})
    assert "nothing ran" in check.stdout, check.stdout  # the restores left a consistent, up-to-date lock


def many(count: int, n: int) -> None:
    label = f"{count // 1000}k"
    ours, peer = _fresh(f"many-{label}")
    py = sys.executable
    _many_files(ours, count)
    shutil.copytree(ours / "data", peer / "data")
    for root in (ours, peer):
        (root / "count.py").write_text(COUNT)
    (ours / "shipyard.yaml").write_text(MANY_SHIPYARD.format(py=py))
    (peer / "dvc.yaml").write_text(MANY_DVC.format(py=py))
    site = _dvc_init(peer)
    shipyard, dvc = ours_bin(), dvc_bin()
    _age(ours)
    _age(peer)
    t_ours = run_measured([shipyard, "run"], ours)
    t_peer = run_measured([dvc, "repro", "-q"], peer)
    print(f"| {label} files: first run (hash + run) | {t_ours[0] * 1000:.0f} ms | {t_peer[0] * 1000:.0f} ms (dvc 3.67.1) "
          f"| **{t_peer[0] / t_ours[0]:.1f}x** | {t_ours[1]:.0f} MB / {t_peer[1]:.0f} MB |", flush=True)
    _age(ours)
    _age(peer)
    run_measured([shipyard, "status"], ours)
    run_measured([dvc, "status"], peer)

    compare(f"{label} files: no-op `run` vs `dvc repro`", lambda: run_measured([shipyard, "run"], ours),
            lambda: run_measured([dvc, "repro"], peer), "dvc 3.67.1", n=n)
    compare(f"{label} files: warm `status`", lambda: run_measured([shipyard, "status"], ours),
            lambda: run_measured([dvc, "status"], peer), "dvc 3.67.1", n=n)

    def cold_ours() -> tuple[float, float]:
        shutil.rmtree(ours / ".shipyard", ignore_errors=True)
        return run_measured([shipyard, "status"], ours)

    def cold_peer() -> tuple[float, float]:
        shutil.rmtree(site, ignore_errors=True)
        shutil.rmtree(peer / ".dvc" / "tmp", ignore_errors=True)
        return run_measured([dvc, "status"], peer)

    compare(f"{label} files: cold `status` (caches deleted, as in a fresh CI clone)", cold_ours, cold_peer,
            "dvc 3.67.1", n=n)


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dvc-get-started"


def _n_est(root: Path, value: int) -> None:
    text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text("\n".join(
        f"  n_est: {value}" if line.startswith("  n_est:") else line for line in text.splitlines()) + "\n")


def dvc_example(n: int) -> None:
    ours, peer = _fresh("dvc-get-started")
    env = {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    for root in (ours, peer):
        shutil.rmtree(root)
        shutil.copytree(EXAMPLE, root)
        run_measured([sys.executable, "src/generate_data.py", "1000"], root)
    _dvc_init(peer)
    # Ours is a DVC project too (.dvc/, as the example is): without one, dvclive's Live() runs
    # `dvc init` at the enclosing git root, which here is the Shipyard checkout itself.
    _dvc_init(ours)
    shipyard, dvc = ours_bin(), dvc_bin()

    def ours_run() -> tuple[float, float]:
        return run_measured([shipyard, "run"], ours, extra_env=env)

    def peer_run() -> tuple[float, float]:
        return run_measured([dvc, "repro"], peer, extra_env=env)

    t_ours, t_peer = ours_run(), peer_run()
    print(f"| get-started: first run (4 stages) | {t_ours[0] * 1000:.0f} ms | {t_peer[0] * 1000:.0f} ms (dvc 3.67.1) "
          f"| **{t_peer[0] / t_ours[0]:.1f}x** | {t_ours[1]:.0f} MB / {t_peer[1]:.0f} MB |", flush=True)
    for root in (ours, peer):
        _n_est(root, 60)  # a second run-cache entry for train and evaluate on each side
    ours_run()
    peer_run()
    _age(ours)
    _age(peer)
    run_measured([shipyard, "status"], ours, extra_env=env)
    run_measured([dvc, "status"], peer, extra_env=env)
    compare("get-started: no-op `run` vs `dvc repro`", ours_run, peer_run, "dvc 3.67.1", n=n)
    state = {"ours": 60, "peer": 60}

    def flip(root: Path, side: str) -> tuple[float, float]:
        state[side] = 50 if state[side] == 60 else 60
        _n_est(root, state[side])
        return ours_run() if side == "ours" else peer_run()

    compare("get-started: run-cache restore of train + evaluate (n_est 50 <-> 60)", lambda: flip(ours, "ours"),
            lambda: flip(peer, "peer"), "dvc 3.67.1", n=n)
    check = subprocess.run([shipyard, "run"], cwd=ours, capture_output=True, text=True,
                           env={**os.environ, **ENV, **env})
    assert "nothing ran" in check.stdout, check.stdout  # the restores left a consistent, up-to-date lock


def run(n: int) -> None:
    two_stage(n)
    dvc_example(n)
    many(10_000, n)
    many(100_000, max(3, min(n, 5)))
