"""Features (issue #18): gateway enrichment overhead and historical retrieval against Feast.

Command (one line; ``--n``: requests of each kind, ``BENCH_FEATURE_ROWS=0`` skips the retrieval part)::

    nice -n 10 .venv/bin/python -m bench features --n 2000

1. In-process enrichment, µs per call: the example's 10 features of one entity read from Redis by
   ``Enricher.enrich`` (Shipyard's reader: Feast's online store ``online_read`` with everything
   resolved at start-up) against Feast's own ``FeatureStore.get_online_features`` of the same
   refs (what the reader called before), batches of the two interleaved; the median of the
   per-batch means, so a load spike costs both sides alike.
2. Gateway enrichment: the example project (examples/feast-features, 10 features of one view)
   trained, its online store on the Redis server of this machine, served by ``shipyard serve``;
   sequential requests over one keep-alive connection per server, each round timing a keyed
   request (the gateway reads Redis and merges), the same model with the 10 features in the
   request, and Feast's own ``feast serve`` (/get-online-features) followed by the gateway call
   with the features, in an order that rotates from round to round. Overhead = the difference of
   the per-request medians and of the p99s; throughput of sequential requests = 1 / mean latency.
   The load average is printed before and after.
3. Historical retrieval of 200,000 and N entity rows (default 1,000,000; ``BENCH_FEATURE_ROWS``)
   over 336,000 source rows (2,000 drivers x a week of hours): Shipyard's guarded point-in-time join
   against Feast's ``get_historical_features``, each in its own process after its imports (wall
   time, peak RSS, rows returned). Feast is not run above ``BENCH_FEAST_MAX_ROWS`` (250,000): at
   1M rows its key-only join grew to 19.5 GB and the kernel's OOM killer ended it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench.harness import REPO, WORK

EXAMPLE = REPO / "examples" / "feast-features"
PY = sys.executable
SHIPYARD = str(Path(sys.executable).with_name("shipyard"))
FEAST = str(Path(sys.executable).with_name("feast"))
REFS = ["driver_stats:conv_rate", "driver_stats:acc_rate", "driver_stats:avg_daily_trips"]  # retrieval
MICRO_BATCH = 50


def load() -> str:
    """The 1, 5 and 15 minute load averages, as printed next to every figure."""
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def serve_refs(root: Path) -> list[str]:
    """The refs the example's gateway enriches with (features.serve.refs: 10 of one view)."""
    from shipyard.config import load_config

    config = load_config(root / "shipyard.yaml")
    assert config.features is not None and config.features.serve is not None
    return list(config.features.serve.refs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sh(cmd: list[str], cwd: Path) -> str:
    # the stage's `python` is this venv's (pandas, sklearn, skops)
    env = {**os.environ, "CI": "true", "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout


def prepare(project: str) -> Path:
    """The example, trained, its online store on Redis (a project name of its own), champion set."""
    root = WORK / "features"
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns(".shipyard", "data", "model"))
    store_yaml = root / "feature_repo" / "feature_store.yaml"
    text = store_yaml.read_text().replace("project: driver_features", f"project: {project}")
    text = text.replace("  type: sqlite\n  path: data/online.db", "  type: redis\n  connection_string: 127.0.0.1:6379")
    store_yaml.write_text(text)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    _sh([PY, "make_data.py"], root)
    _sh([SHIPYARD, "run"], root)
    _sh([SHIPYARD, "features", "materialize"], root)
    _sh([SHIPYARD, "gate", "driver-conversion@1"], root)
    _sh([SHIPYARD, "models", "alias", "driver-conversion", "champion", "1"], root)
    return root


def _start(cmd: list[str], cwd: Path, port: int, path: str) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, "CI": "true"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"{cmd[0]} did not start on port {port}")


def _stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _post(conn: http.client.HTTPConnection, path: str, body: Any) -> tuple[int, bytes]:
    data = json.dumps(body)
    for attempt in (1, 2):
        try:
            conn.request("POST", path, data, {"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
            # the server closed an idle keep-alive connection (uvicorn: 5 s; a loaded machine can
            # leave one idle that long): reconnect once, as any HTTP client does
            conn.close()
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def enrichment(root: Path, n: int) -> dict[str, dict[str, float]]:
    """Latencies (ms) of keyed, carried and feast-serve-then-gateway requests, interleaved: each
    round times the three kinds once, in an order that rotates from round to round (no kind always
    follows the same one)."""
    gw_port, feast_port = _free_port(), _free_port()
    gateway = _start([SHIPYARD, "serve", "--port", str(gw_port)], root, gw_port, "/health")
    feast = _start([FEAST, "-c", "feature_repo", "serve", "--port", str(feast_port), "--no-access-log"], root,
                   feast_port, "/health")
    try:
        gw = http.client.HTTPConnection("127.0.0.1", gw_port)
        fs = http.client.HTTPConnection("127.0.0.1", feast_port)
        refs = serve_refs(root)
        carried_rows: dict[int, dict[str, Any]] = {}  # the features as feast serve returns them

        def keyed(driver: int) -> None:
            status, body = _post(gw, "/invocations", {"dataframe_records": [{"driver_id": driver}]})
            assert status == 200, body

        def feast_then_gateway(driver: int) -> None:
            status, body = _post(fs, "/get-online-features", {"features": refs, "entities": {"driver_id": [driver]}})
            assert status == 200, body
            doc = json.loads(body)
            carried_rows[driver] = {name: result["values"][0] for name, result in
                                    zip(doc["metadata"]["feature_names"], doc["results"], strict=True)
                                    if name != "driver_id"}
            status, body = _post(gw, "/invocations", {"dataframe_records": [carried_rows[driver]]})
            assert status == 200, body

        def carried(driver: int) -> None:
            status, body = _post(gw, "/invocations", {"dataframe_records": [carried_rows[driver]]})
            assert status == 200, body

        kinds = [("keyed", keyed), ("feast+gateway", feast_then_gateway), ("carried", carried)]
        times: dict[str, list[float]] = {name: [] for name, _ in kinds}
        for driver in range(1001, 1201):  # warm-up, not kept: every driver's features fetched once
            feast_then_gateway(driver)
            keyed(driver)
        for i in range(n):
            driver = 1001 + i % 200
            for name, fn in kinds[i % 3:] + kinds[:i % 3]:
                t0 = time.perf_counter()
                fn(driver)
                times[name].append((time.perf_counter() - t0) * 1000)
    finally:
        _stop(gateway)
        _stop(feast)
    return {k: {"p50": statistics.median(v), "p99": _pct(v, 0.99), "rps": 1000 / statistics.mean(v)}
            for k, v in times.items()}


def micro(root: Path, calls: int) -> dict[str, float]:
    """µs per call of Shipyard's in-process enrichment and of Feast's get_online_features (the
    reader's previous path), one entity and the example's 10 features, batches interleaved."""
    from feast import FeatureStore

    from shipyard.config import load_config
    from shipyard.serving.codec import Inputs
    from shipyard.serving.features import enricher_for

    config = load_config(root / "shipyard.yaml")
    assert config.features is not None and config.features.serve is not None
    enricher = enricher_for(root, config.features.repo, config.features.serve)
    assert enricher is not None
    store = FeatureStore(repo_path=str(root / config.features.repo))
    refs = list(config.features.serve.refs)
    drivers = [1001 + i % 200 for i in range(MICRO_BATCH)]

    def ours() -> None:
        for d in drivers:
            got = enricher.enrich(Inputs(["driver_id"], {"driver_id": [d]}, None, 1))
            assert got.values is not None and len(got.values) == 1 + len(refs)

    def feast() -> None:
        for d in drivers:
            store.get_online_features(features=refs, entity_rows=[{"driver_id": d}]).to_dict(
                include_event_timestamps=True)

    per: dict[str, list[float]] = {"shipyard": [], "feast": []}
    for i in range(max(4, calls // MICRO_BATCH) + 2):  # the first two rounds warm up
        for name, fn in (("shipyard", ours), ("feast", feast)):
            t0 = time.perf_counter()
            fn()
            if i >= 2:
                per[name].append((time.perf_counter() - t0) / MICRO_BATCH * 1e6)
    return {name: statistics.median(v) for name, v in per.items()}


_RETRIEVE = """
import json, resource, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
import pandas as pd
side, folder, refs = sys.argv[1], Path(sys.argv[2]), {refs!r}
entities = pd.read_parquet(folder / "entities.parquet")
if side == "shipyard":
    from shipyard.features.repo import definitions
    from shipyard.features.retrieval import point_in_time, check_complete
    defs = definitions(folder / "repo")  # imports Feast (not timed, like Feast's own import below)
    start = time.perf_counter()
    out = point_in_time(entities, defs.resolve(refs))
    check_complete(entities, out, ["driver_id"])
else:
    from shipyard.features.repo import open_store
    store = open_store(folder / "repo")
    start = time.perf_counter()
    out = store.get_historical_features(entity_df=entities, features=refs).to_df()
wall = time.perf_counter() - start
print(json.dumps({{"wall": wall, "rows": len(out), "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def retrieval(rows: int) -> dict[str, dict[str, float]]:
    """Shipyard's and Feast's historical retrieval of ``rows`` entity rows (separate processes)."""
    sys.path.insert(0, str(REPO))
    from tests.features.feast_repo import entities, write_repo

    folder = WORK / "features-retrieval"
    shutil.rmtree(folder, ignore_errors=True)
    write_repo(folder / "repo", drivers=2000, hours=24 * 7)
    table = entities(2000, 24 * 7, rows)  # ``rows`` plus its few duplicated rows
    table.to_parquet(folder / "entities.parquet", index=False)
    script = _RETRIEVE.format(repo=str(REPO), refs=REFS)
    out = {}
    feast_max = int(os.environ.get("BENCH_FEAST_MAX_ROWS", "250000"))
    for side in ("shipyard", "feast"):
        if side == "feast" and rows > feast_max:  # Feast joins on the key alone first: ~20 GB at 1M rows
            out[side] = {"wall": float("nan"), "rows": 0, "peak_mb": float("nan"),
                         "failed": f"not run above BENCH_FEAST_MAX_ROWS={feast_max:,}: OOM-killed at 19.5 GB at 1M"}
            continue
        started = time.perf_counter()
        done = subprocess.run([PY, "-c", script, side, str(folder)], capture_output=True, text=True)
        if done.returncode != 0:  # e.g. killed for memory: report it as the row's result
            out[side] = {"wall": time.perf_counter() - started, "rows": 0, "peak_mb": float("nan"),
                         "failed": f"exit {done.returncode}: {done.stderr.strip()[-300:]}"}
            continue
        out[side] = json.loads(done.stdout.strip().splitlines()[-1])
    out["asked"] = {"rows": len(table)}
    return out


def run(n: int) -> None:
    requests = max(n, 200)
    before = load()
    root = prepare(f"bench_{uuid.uuid4().hex[:8]}")
    try:
        us = micro(root, requests)
        lat = enrichment(root, requests)
    finally:  # the run's keys leave the shared Redis
        from shipyard.features.repo import open_store

        open_store(root / "feature_repo").teardown()
    k, c, f = lat["keyed"], lat["carried"], lat["feast+gateway"]
    print(f"| in-process enrichment, 1 entity, 10 features from Redis, {requests} calls of each, interleaved "
          f"| {us['shipyard']:.0f} µs/call (Enricher.enrich) | {us['feast']:.0f} µs/call (feast get_online_features) "
          f"| **{us['feast'] / us['shipyard']:.1f}x** |")
    print(f"| gateway, 1 entity, 10 features from Redis (enriched) vs in the request, {requests} sequential requests "
          f"| p50 {k['p50']:.2f} / p99 {k['p99']:.2f} ms | p50 {c['p50']:.2f} / p99 {c['p99']:.2f} ms (features sent) "
          f"| overhead p50 **{k['p50'] - c['p50']:+.2f} ms**, p99 **{k['p99'] - c['p99']:+.2f} ms** |")
    print(f"| enriched call vs feast serve then the gateway, 10 features | p50 {k['p50']:.2f} / p99 {k['p99']:.2f} ms, "
          f"{k['rps']:.0f} req/s | p50 {f['p50']:.2f} / p99 {f['p99']:.2f} ms, {f['rps']:.0f} req/s (feast serve + gateway) "
          f"| **{k['rps'] / f['rps']:.1f}x** throughput (medians {f['p50'] / k['p50']:.1f}x) |")
    print(f"\nload average (1 / 5 / 15 min): {before} before, {load()} after the enrichment rows", flush=True)
    rows = int(os.environ.get("BENCH_FEATURE_ROWS", "1000000"))
    for size in sorted({min(rows, 200_000), rows} - {0}):
        report_retrieval(size)


def report_retrieval(rows: int) -> None:
    """One Markdown row: both sides' historical retrieval of ``rows`` entity rows (Feast skipped
    above BENCH_FEAST_MAX_ROWS, where it runs out of memory)."""
    got = retrieval(rows)
    s, fe = got["shipyard"], got["feast"]
    ours = f"{s['wall']:.2f} s, {s['peak_mb']:.0f} MB, {s['rows']:,} rows"
    if "failed" in fe:
        print(f"| historical retrieval, {got['asked']['rows']:,} entity rows, 3 features | {ours} "
              f"| feast get_historical_features: {fe['failed']} | - |")
        return
    print(f"| historical retrieval, {got['asked']['rows']:,} entity rows, 3 features | {ours} | {fe['wall']:.2f} s, "
          f"{fe['peak_mb']:.0f} MB, {fe['rows']:,} rows (feast get_historical_features) "
          f"| **{fe['wall'] / s['wall']:.1f}x**, {got['asked']['rows'] - fe['rows']:,} rows lost by Feast |")
