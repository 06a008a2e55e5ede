"""The web UI vs MLflow's UI (3.17.2), on the same data, in headless Chromium.

One data set is seeded THROUGH THE MLFLOW CLIENT (``MlflowClient.log_batch``, 1,000 metrics a call)
into both ``mlflow server`` (SQLite backend) and ``shipyard server --no-auth`` (SQLite, the embedded
store), both sides at once from BENCH_UI_PROCS (2) processes each: MLflow's by
``MlflowClient(tracking_uri="sqlite:///<the file mlflow server serves>")`` (MLflow's own store
code, no HTTP: its server took ~2 runs/s over HTTP), ours through the client's HTTP calls: RUNS runs
in one experiment with PARAMS params and METRICS metric keys each, LONG of them with STEPS-step
histories of 5 metrics, and one run with WIDE metric keys in an experiment of its own. Then, in
Chromium (a fresh browser context per sample, so nothing is cached), for each UI:

- runs table: navigation -> the first rows of the runs table are on screen;
- one run: navigation -> its metrics are on screen;
- compare 10 runs with the long histories: ours, /compare with its charts drawn (canvas pixels),
  once as the first view (the kept envelopes dropped before: each history is read whole) and then
  as later views (the envelopes kept by the first); MLflow, its compare page's table and then its
  metric page for one long metric over the 10 runs (the chart's lines drawn);
- the run with WIDE metric keys: navigation -> its page is on screen.

Per page: wall time to usable (median of n), bytes transferred (response bodies and headers, cold
cache), and server time: the sum over the page's HTML and data requests (document, xhr, fetch) of
request sent -> first response byte, as Chromium's resource timing records it.

Scale (environment or ``python -m bench.bench_ui --runs ...``): BENCH_UI_RUNS (10000),
BENCH_UI_PARAMS (50), BENCH_UI_METRICS (200), BENCH_UI_LONG (20), BENCH_UI_STEPS (100000),
BENCH_UI_WIDE (12000). Seeded stores are kept in $BENCH_UI_DATA/<scale> (default bench/.work/ui; a
folder outside the repo such as /work/bench-ui-data keeps them across checkouts) and reused by the
next run of the same scale: each side's ids are written when its seeding finished, and a side
without them is seeded afresh; BENCH_UI_RESEED=1 seeds both again. ``--seed-only`` seeds and stops;
``--sides ours`` (or ``mlflow``) seeds and measures one side only.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.bench_tracking import Servers
from bench.harness import WORK

CHROMIUM = "/usr/bin/chromium"
# without the background-networking flags Chromium keeps calling home, which a closed network punishes
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
EXPERIMENT, WIDE_EXPERIMENT = "ui-bench", "ui-bench-wide"
LONG_METRICS = ("loss", "acc", "val_loss", "val_acc", "lr")
BATCH = 1000  # MLflow's log_batch limit of metrics per call
PROCS = 2  # seeding processes a side (2 cores; SQLite has one writer)
RUN_CHUNK = 50  # runs per seeding task
SIDES = ("ours", "mlflow")


@dataclass(frozen=True)
class Scale:
    """How much data both servers are seeded with."""

    runs: int = 10_000
    params: int = 50
    metrics: int = 200
    long: int = 20
    steps: int = 100_000
    wide: int = 12_000

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Scale:
        env = dict(os.environ) if env is None else env
        defaults = cls()
        return cls(**{name: int(env.get(f"BENCH_UI_{name.upper()}", getattr(defaults, name)))
                      for name in asdict(defaults)})

    @property
    def tag(self) -> str:
        return f"r{self.runs}-p{self.params}-m{self.metrics}-l{self.long}-s{self.steps}-w{self.wide}"


# -- seeding through MLflow's client -------------------------------------------------------------
def _client(uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _seed_run(uri: str, experiment_id: str, i: int, scale: Scale) -> str:
    from mlflow.entities import Metric, Param, RunTag

    client = _client(uri)
    run = client.create_run(experiment_id, run_name=f"run-{i:05d}", tags={"team": "ab"[i % 2]})
    now = int(time.time() * 1000)
    params = [Param(f"p{k:02d}", str((i * 7 + k) % 13)) for k in range(scale.params)]
    metrics = [Metric(f"m{k:03d}", ((i * 31 + k) % 1000) / 1000, now, 0) for k in range(scale.metrics)]
    tags = [RunTag("seed", str(i))]
    client.log_batch(run.info.run_id, metrics=metrics[: BATCH - len(params)], params=params, tags=tags)
    for start in range(BATCH - len(params), len(metrics), BATCH):
        client.log_batch(run.info.run_id, metrics=metrics[start:start + BATCH])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _seed_history(uri: str, run_id: str, key: str, steps: int, phase: int) -> None:
    from mlflow.entities import Metric

    client = _client(uri)
    now = int(time.time() * 1000)
    for start in range(0, steps, BATCH):
        points = [Metric(key, 1.0 / (1 + s / 1000) + ((s * 7919 + phase) % 101) / 2000, now + s, s)
                  for s in range(start, min(steps, start + BATCH))]
        client.log_batch(run_id, metrics=points)


def _seed_wide(uri: str, scale: Scale) -> str:
    from mlflow.entities import Metric

    client = _client(uri)
    experiment_id = client.create_experiment(WIDE_EXPERIMENT)
    run = client.create_run(experiment_id, run_name="wide")
    now = int(time.time() * 1000)
    for start in range(0, scale.wide, BATCH):
        client.log_batch(run.info.run_id, metrics=[Metric(f"w{k:05d}", k / scale.wide, now, 0)
                                                   for k in range(start, min(scale.wide, start + BATCH))])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _seed_runs(uri: str, experiment_id: str, first: int, count: int, scale: Scale) -> list[str]:
    return [_seed_run(uri, experiment_id, i, scale) for i in range(first, first + count)]


def _seed_histories(uri: str, jobs: list[tuple[str, str, int]], steps: int) -> int:
    for run_id, key, phase in jobs:
        _seed_history(uri, run_id, key, steps, phase)
    return len(jobs)


def seed(uri: str, scale: Scale, procs: int = PROCS, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Seed one store through MLflow's client from ``procs`` processes (runs in chunks of RUN_CHUNK,
    then one (run, metric) history per task); return the ids the measurements open and the seconds
    each phase took."""
    experiment_id = _client(uri).create_experiment(EXPERIMENT)
    started = time.perf_counter()
    chunks = [(i, min(RUN_CHUNK, scale.runs - i)) for i in range(0, scale.runs, RUN_CHUNK)]
    with ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_seed_runs, uri, experiment_id, i, n, scale) for i, n in chunks]
        run_ids = [rid for future in futures for rid in future.result()]
        runs_s = time.perf_counter() - started
        say(f"  {uri}: {scale.runs} runs in {runs_s:.0f} s")
        long_ids = run_ids[: scale.long]
        jobs = [(rid, key, n) for n, rid in enumerate(long_ids) for key in LONG_METRICS]
        list(pool.map(_seed_histories, [uri] * len(jobs), [[job] for job in jobs], [scale.steps] * len(jobs)))
    histories_s = time.perf_counter() - started - runs_s
    say(f"  {uri}: + {scale.long} x {len(LONG_METRICS)} histories of {scale.steps} steps in {histories_s:.0f} s")
    wide_id = _seed_wide(uri, scale)
    seconds = time.perf_counter() - started
    say(f"  {uri}: + the wide run, {seconds:.0f} s in all")
    return {"experiment": experiment_id, "first": run_ids[0], "long": long_ids, "wide": wide_id,
            "seconds": round(seconds, 1), "runs_seconds": round(runs_s, 1),
            "histories_seconds": round(histories_s, 1), "procs": procs}


def _quiet_mlflow() -> None:
    # MLflow's client prints two "View run ..." lines per run; 10,000 runs of them drown the table
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


def data_root(scale: Scale) -> Path:
    """Where the seeded stores of ``scale`` live: BENCH_UI_DATA (a folder outside the repo, e.g.
    /work/bench-ui-data, reused by every later run of the same scale) or bench/.work/ui."""
    base = os.environ.get("BENCH_UI_DATA")
    return (Path(base) if base else WORK / "ui") / scale.tag


def _seed_once(stamp: Path, uri: str, scale: Scale, procs: int, say: Callable[[str], None]) -> dict[str, Any]:
    """The ids of ``uri``'s seeded data: read from ``stamp`` when an earlier run finished seeding it,
    else seeded now and written there (a store left half-seeded has no stamp, so it is seeded anew)."""
    if stamp.exists():
        return dict(json.loads(stamp.read_text()))
    ids = seed(uri, scale, procs, say)
    stamp.write_text(json.dumps(ids, indent=1))
    return ids


@contextmanager
def seeded(scale: Scale, say: Callable[[str], None] = print,
           sides: Sequence[str] = SIDES) -> Iterator[tuple[Servers, dict[str, Any]]]:
    """Both servers up on stores holding ``scale``'s data for ``sides`` (seeded now, or kept from an
    earlier run); a side left out is neither seeded nor measured (its server starts on whatever its
    folder holds).

    The sides are seeded at once through MLflow's client, BENCH_UI_PROCS processes each: MLflow's
    store by ``MlflowClient(tracking_uri="sqlite:///...")`` on the very file ``mlflow server
    --backend-store-uri`` serves (MLflow's own store code, no HTTP), ours over HTTP against
    ``shipyard server --no-auth``. A side whose seeding finished is not seeded again unless
    BENCH_UI_RESEED=1."""
    _quiet_mlflow()
    root = data_root(scale)
    if os.environ.get("BENCH_UI_RESEED") == "1":
        shutil.rmtree(root, ignore_errors=True)
    procs = int(os.environ.get("BENCH_UI_PROCS", PROCS))
    stamps = {side: root / f"{side}-ids.json" for side in sides}
    db = root / "rest-mlflow" / "mlflow-server.db"
    mlflow_uri = f"sqlite:///{db}"
    for side, stamp in stamps.items():
        if not stamp.exists():  # a half-seeded store from an interrupted run: start that side afresh
            shutil.rmtree(root / f"rest-{side}", ignore_errors=True)
    db.parent.mkdir(parents=True, exist_ok=True)
    _client(mlflow_uri).search_experiments()  # MLflow's tables exist before its server opens the file
    if not all(stamp.exists() for stamp in stamps.values()):
        say(f"seeding {scale} through MLflow's client into {root}, {procs} processes a side, {', '.join(sides)} at once")
    with Servers(root) as servers, ThreadPoolExecutor(1) as beside:
        theirs = beside.submit(_seed_once, stamps["mlflow"], mlflow_uri, scale, procs, say) if "mlflow" in sides else None
        ids: dict[str, Any] = {"scale": asdict(scale)}
        if "ours" in sides:
            ids["ours"] = _seed_once(stamps["ours"], servers.ours, scale, procs, say)
        if theirs is not None:
            ids["mlflow"] = theirs.result()
        yield servers, ids


# -- measuring in Chromium ---------------------------------------------------------------------------
@dataclass
class Load:
    """One page load: wall seconds to usable, bytes transferred, server milliseconds, requests."""

    seconds: float
    bytes: int
    server_ms: float
    requests: int


def load(browser: Any, url: str, ready: Callable[[Any], None]) -> Load:
    """Open ``url`` in a fresh context (cold cache) and wait until ``ready(page)`` returns."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(float(os.environ.get("BENCH_UI_TIMEOUT_MS", "600000")))
    page = context.new_page()
    done: list[Any] = []
    page.on("requestfinished", lambda request: done.append(request))
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    ready(page)
    seconds = time.perf_counter() - start
    finished = list(done)  # what the page needed until it was usable (later polling is not counted)
    total = server = 0.0
    for request in finished:
        sizes = request.sizes()
        total += sizes["responseBodySize"] + sizes["responseHeadersSize"]
        if request.resource_type in ("document", "xhr", "fetch"):
            timing = request.timing
            if timing["responseStart"] > 0 and timing["requestStart"] >= 0:
                server += timing["responseStart"] - timing["requestStart"]
    context.close()
    return Load(seconds, int(total), server, len(finished))


def visible(selector: str, count: int = 1) -> Callable[[Any], None]:
    """Ready when at least ``count`` elements match ``selector`` and the first is visible."""
    def wait(page: Any) -> None:
        page.locator(selector).first.wait_for(state="visible")
        if count > 1:
            page.wait_for_function("([s, n]) => document.querySelectorAll(s).length >= n",
                                   arg=[selector, count])
    return wait


def drawn(charts: int) -> Callable[[Any], None]:
    """Ready when ``charts`` of our uPlot charts have drawn (shipyard.js marks each data-drawn); the
    compare page loads a chart when it scrolls into view, as a person scrolling to it does."""
    def wait(page: Any) -> None:
        page.locator("#compare-charts").scroll_into_view_if_needed()
        page.wait_for_function("n => document.querySelectorAll('.chart[data-drawn] canvas').length >= n", arg=charts)
    return wait


def plotly_lines(lines: int) -> Callable[[Any], None]:
    """Ready when MLflow's metric chart (plotly) has drawn ``lines`` line traces."""
    def wait(page: Any) -> None:
        page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot .scatterlayer .trace').length >= n",
                               arg=lines)
    return wait


def pages(side: str, base: str, ids: dict[str, Any], compare_n: int) -> list[tuple[str, str, Callable[[Any], None]]]:
    """(row name, URL, ready) of each page measured on one side."""
    exp, first, wide = ids["experiment"], ids["first"], ids["wide"]
    chosen = ids["long"][:compare_n]
    key = LONG_METRICS[0]
    if side == "ours":
        runs = "&".join(f"runs={r}" for r in chosen)
        return [("runs table: first rows", f"{base}/runs?experiment={exp}", visible("#runs-table tr.run-row")),
                ("open one run", f"{base}/runs/{first}", visible("text=m000")),
                (f"compare {len(chosen)} runs, {key} over the long history",
                 f"{base}/compare?{runs}&metric={key}", drawn(1)),
                ("open the run with the wide metric keys", f"{base}/runs/{wide}", visible("text=w00000"))]
    quoted = json.dumps(chosen).replace(" ", "")
    return [("runs table: first rows", f"{base}/#/experiments/{exp}/runs", visible(".ag-row a[href*='/runs/']")),
            ("open one run", f"{base}/#/experiments/{exp}/runs/{first}", visible("text=m000")),
            (f"compare {len(chosen)} runs: compare page", f"{base}/#/compare-runs?runs={quoted}&experiments=[\"{exp}\"]",
             visible("text=run-00000")),
            (f"compare {len(chosen)} runs, {key} over the long history",
             f"{base}/#/metric?runs={quoted}&metric=\"{key}\"&experiments=[\"{exp}\"]&plot_metric_keys=[\"{key}\"]"
             "&plot_layout={}&x_axis=step&y_axis_scale=linear&line_smoothness=1&show_point=false"
             "&deselected_curves=[]&last_linear_y_axis_range=[]",
             plotly_lines(len(chosen))),
            ("open the run with the wide metric keys", f"{base}/#/experiments/{ids['wide_experiment']}/runs/{wide}",
             visible("text=w00000"))]


def forget_envelopes(root: Path) -> None:
    """Drop the chart envelopes our server kept (``metric_envelopes``), so the first compare view
    computes them from the histories as the first view after a run's logging does."""
    import sqlite3

    db = root / "rest-ours" / ".shipyard" / "shipyard.db"
    with sqlite3.connect(db, timeout=60) as conn:
        conn.execute("DELETE FROM metric_envelopes")


def _wide_experiment(uri: str, ids: dict[str, Any]) -> dict[str, Any]:
    return {**ids, "wide_experiment": _client(uri).get_run(ids["wide"]).info.experiment_id}


def _median(loads: list[Load]) -> Load:
    return Load(statistics.median(x.seconds for x in loads), int(statistics.median(x.bytes for x in loads)),
                statistics.median(x.server_ms for x in loads), int(statistics.median(x.requests for x in loads)))


def _cell(x: Load) -> str:
    return f"{x.seconds * 1000:.0f} ms · {x.bytes / 1024:.0f} KiB · {x.server_ms:.0f} ms ({x.requests} req)"


def measure(servers: Servers, ids: dict[str, Any], n: int, compare_n: int = 10) -> list[dict[str, Any]]:
    """Each page of each side in ``ids``, alternately, n times (after one warm-up load); the medians."""
    from playwright.sync_api import sync_playwright

    sides = {}
    if "ours" in ids:
        sides["ours"] = pages("ours", servers.ours, ids["ours"], compare_n)
    if "mlflow" in ids:
        sides["mlflow"] = pages("mlflow", servers.peer, _wide_experiment(servers.peer, ids["mlflow"]), compare_n)
    results: dict[tuple[str, str], list[Load]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for i in range(n + 1):
                for side, wanted in sides.items():
                    for name, url, ready in wanted:
                        first_compare = not i and side == "ours" and name.startswith("compare")
                        if first_compare:  # (the run page before it kept one run's envelope)
                            forget_envelopes(servers.root)
                        sample = load(browser, url, ready)
                        if i:  # the first round warms both servers' caches
                            results.setdefault((side, name), []).append(sample)
                        elif first_compare:
                            results[(side, f"{name}, first view (envelopes computed)")] = [sample]
        finally:
            browser.close()
    return [{"side": side, "page": name, **asdict(_median(loads))} for (side, name), loads in results.items()]


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table of ``measure``'s rows: each page of ours next to its MLflow counterpart."""
    out = ["| page | Shipyard: to usable · bytes · server time | MLflow UI 3.17.2: to usable · bytes · server time "
           "| ratio (MLflow / ours, to usable) |", "|---|---|---|---|"]
    loads = {(r["side"], r["page"]): Load(r["seconds"], r["bytes"], r["server_ms"], r["requests"]) for r in rows}
    for (side, page), a in loads.items():
        if side != "ours":
            continue
        b = loads.get(("mlflow", page))
        if b is None:
            out.append(f"| {page} | {_cell(a)} | | |")
        else:
            out.append(f"| {page} | {_cell(a)} | {_cell(b)} | **{b.seconds / a.seconds:.1f}x** |")
    for (side, page), b in loads.items():
        if side == "mlflow" and ("ours", page) not in loads:
            out.append(f"| {page} (MLflow only) | | {_cell(b)} | |")
    return "\n".join(out)


def run(n: int, scale: Scale | None = None, sides: Sequence[str] = SIDES) -> None:
    """Seed (or reuse) the sides' stores, then measure each page n times per side; print the table."""
    scale = scale or Scale.from_env()
    with seeded(scale, sides=sides) as (servers, ids):
        rows = measure(servers, ids, n)
    took = ", ".join(f"{side} {ids[side]['seconds']:.0f} s" for side in sides)
    print(f"\nscale: {scale} (seeding took {took})\n")
    print(table(rows), flush=True)
    (data_root(scale) / "results.json").write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_ui", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Scale.from_env()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name}", type=int, default=value)
    parser.add_argument("--n", type=int, default=3, help="loads of each page per side (default 3)")
    parser.add_argument("--seed-only", action="store_true", help="seed the stores (or find them seeded) and stop")
    parser.add_argument("--sides", default=",".join(SIDES),
                        help="ours, mlflow or both (default): the sides seeded and measured")
    args = parser.parse_args()
    scale = Scale(**{name: getattr(args, name) for name in asdict(defaults)})
    sides = [side for side in SIDES if side in args.sides.split(",")]
    if not sides or set(args.sides.split(",")) - set(SIDES):
        parser.error(f"--sides {args.sides!r}: name ours, mlflow or both (comma-separated)")
    if args.seed_only:
        with seeded(scale, sides=sides) as (_, ids):
            print(json.dumps({side: ids[side] for side in sides}, indent=1))
    else:
        run(args.n, scale, sides)
    sys.exit(0)


if __name__ == "__main__":
    main()
