"""The web UI vs MLflow's UI (3.17.2), on the same data, in headless Chromium.

One store is seeded THROUGH THE MLFLOW CLIENT (``MlflowClient.log_batch``) into both ``mlflow
server`` (SQLite backend) and ``shipyard server --no-auth`` (SQLite, the embedded store): RUNS runs
in one experiment with PARAMS params and METRICS metric keys each, LONG of them with STEPS-step
histories of 5 metrics, and one run with WIDE metric keys in an experiment of its own. Then, in
Chromium (a fresh browser context per sample, so nothing is cached), for each UI:

- runs table: navigation -> the first rows of the runs table are on screen;
- one run: navigation -> its metrics are on screen;
- compare 10 runs with the long histories: ours, /compare with its charts drawn (canvas pixels);
  MLflow, its compare page's table and then its metric page for one long metric over the 10 runs
  (the chart's lines drawn);
- the run with WIDE metric keys: navigation -> its page is on screen.

Per page: wall time to usable (median of n), bytes transferred (response bodies and headers, cold
cache), and server time: the sum over the page's HTML and data requests (document, xhr, fetch) of
request sent -> first response byte, as Chromium's resource timing records it.

Scale (environment or ``python -m bench.bench_ui --runs ...``): BENCH_UI_RUNS (10000),
BENCH_UI_PARAMS (50), BENCH_UI_METRICS (200), BENCH_UI_LONG (20), BENCH_UI_STEPS (100000),
BENCH_UI_WIDE (12000). Seeded stores are kept in bench/.work/ui/<scale> and reused by the next run
of the same scale (seeding at full scale takes long); BENCH_UI_RESEED=1 seeds again.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass
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
THREADS = 4


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


def seed(uri: str, scale: Scale, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Seed one server; return the ids the measurements open (experiment, runs, long runs, wide run)."""
    client = _client(uri)
    experiment_id = client.create_experiment(EXPERIMENT)
    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        run_ids = list(pool.map(lambda i: _seed_run(uri, experiment_id, i, scale), range(scale.runs)))
        say(f"  {uri}: {scale.runs} runs in {time.perf_counter() - started:.0f} s")
        long_ids = run_ids[: scale.long]
        jobs = [(rid, key, n) for n, rid in enumerate(long_ids) for key in LONG_METRICS]
        list(pool.map(lambda job: _seed_history(uri, job[0], job[1], scale.steps, job[2]), jobs))
    say(f"  {uri}: + {scale.long} x {len(LONG_METRICS)} histories of {scale.steps} steps, "
        f"{time.perf_counter() - started:.0f} s in all")
    wide_id = _seed_wide(uri, scale)
    return {"experiment": experiment_id, "first": run_ids[0], "long": long_ids, "wide": wide_id,
            "seconds": round(time.perf_counter() - started, 1)}


def _quiet_mlflow() -> None:
    # MLflow's client prints two "View run ..." lines per run; 10,000 runs of them drown the table
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@contextmanager
def seeded(scale: Scale, say: Callable[[str], None] = print) -> Iterator[tuple[Servers, dict[str, Any]]]:
    """Both servers up on stores holding ``scale``'s data (seeded now, or kept from an earlier run)."""
    _quiet_mlflow()
    root = WORK / "ui" / scale.tag
    stamp = root / "ids.json"
    fresh = os.environ.get("BENCH_UI_RESEED") == "1" or not stamp.exists()
    if fresh:
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
    with Servers(root) as servers:
        if fresh:
            say(f"seeding {scale} through MLflow's client (both servers in turn)")
            ids = {"scale": asdict(scale), "ours": seed(servers.ours, scale, say),
                   "mlflow": seed(servers.peer, scale, say)}
            stamp.write_text(json.dumps(ids, indent=1))
        yield servers, json.loads(stamp.read_text())


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


def _wide_experiment(uri: str, ids: dict[str, Any]) -> dict[str, Any]:
    return {**ids, "wide_experiment": _client(uri).get_run(ids["wide"]).info.experiment_id}


def _median(loads: list[Load]) -> Load:
    return Load(statistics.median(x.seconds for x in loads), int(statistics.median(x.bytes for x in loads)),
                statistics.median(x.server_ms for x in loads), int(statistics.median(x.requests for x in loads)))


def _cell(x: Load) -> str:
    return f"{x.seconds * 1000:.0f} ms · {x.bytes / 1024:.0f} KiB · {x.server_ms:.0f} ms ({x.requests} req)"


def measure(servers: Servers, ids: dict[str, Any], n: int, compare_n: int = 10) -> list[dict[str, Any]]:
    """Each page of each side, alternately, n times (after one warm-up load); the medians."""
    from playwright.sync_api import sync_playwright

    sides = {"ours": pages("ours", servers.ours, ids["ours"], compare_n),
             "mlflow": pages("mlflow", servers.peer, _wide_experiment(servers.peer, ids["mlflow"]), compare_n)}
    results: dict[tuple[str, str], list[Load]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for i in range(n + 1):
                for side, wanted in sides.items():
                    for name, url, ready in wanted:
                        sample = load(browser, url, ready)
                        if i:  # the first round warms both servers' caches
                            results.setdefault((side, name), []).append(sample)
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


def run(n: int, scale: Scale | None = None) -> None:
    """Seed (or reuse) both stores, then measure each page n times per side; print the table."""
    scale = scale or Scale.from_env()
    with seeded(scale) as (servers, ids):
        rows = measure(servers, ids, n)
    print(f"\nscale: {scale} (seeding took {ids['ours']['seconds']:.0f} s ours, "
          f"{ids['mlflow']['seconds']:.0f} s MLflow)\n")
    print(table(rows), flush=True)
    (WORK / "ui" / scale.tag / "results.json").write_text(json.dumps(rows, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_ui", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Scale.from_env()
    for name, value in asdict(defaults).items():
        parser.add_argument(f"--{name}", type=int, default=value)
    parser.add_argument("--n", type=int, default=3, help="loads of each page per side (default 3)")
    args = parser.parse_args()
    run(args.n, Scale(**{name: getattr(args, name) for name in asdict(defaults)}))
    sys.exit(0)


if __name__ == "__main__":
    main()
