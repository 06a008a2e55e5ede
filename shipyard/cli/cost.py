"""``shipyard cost``: what the project costs: compute, storage, and each deployment's predictions."""

from __future__ import annotations

import time
from typing import Any

import click

from shipyard.cli.output import echo, print_json, table


@click.command("cost")
@click.option("--since", default="30d", show_default=True, metavar="DURATION",
              help="The window for compute and deployments (7d, 24h, ...).")
@click.option("--model", "models", multiple=True, metavar="NAME",
              help="Only these models' deployments (repeatable; default: every model in the request log).")
@click.option("--json", "json_out", is_flag=True, help="Print JSON.")
def app(since: str, models: tuple[str, ...], json_out: bool) -> None:
    """What the project costs under its price table (``cost:`` in shipyard.yaml).

    Compute: the pipeline runs started in the window (stages, sweeps' trials). Storage: the object
    store's size at ``storage_gb_month``. Deployments: per model version, the predictions the gateway
    served in the window and its CPU seconds per 1,000 predictions (from the request log), priced at
    ``cpu_hour``. A part without a price says "unpriced", never 0.

    Example: shipyard cost --since 7d --model iris
    """
    from shipyard.config import load_config
    from shipyard.durations import parse_duration
    from shipyard.errors import UsageError
    from shipyard.tracking.cost import PriceTable
    from shipyard.workspace import Workspace

    try:
        window_s = parse_duration(since)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"--since {since!r}: {exc}", hint="a duration such as 30d, 24h or 90m") from None
    ws = Workspace.discover()
    config = load_config(ws.project.config_path)
    prices = PriceTable.of(config.cost)
    now = time.time()
    report = {"since": since, "currency": prices.currency,
              "compute": _compute(ws, config, prices, now, window_s),
              "storage": _storage(ws, prices),
              "deployments": _deployments(ws, config, prices, models, now - window_s)}
    if json_out:
        print_json(report)
        return
    _print(report)


def _compute(ws: Any, config: Any, prices: Any, now: float, window_s: float) -> dict[str, Any]:
    from shipyard.tracking.cost import check_budgets, spent_since

    with ws.store.read() as session:
        spent = spent_since(session, int((now - window_s) * 1000), prices)
        budgets = check_budgets(session, config.budget, prices, int(now * 1000))
    return {"cost": spent.to_dict(), "budgets": [{"limit": b.limit, "budget": b.budget, "spent": b.spent,
                                                  "share": b.share, "text": b.text()} for b in budgets]}


def _storage(ws: Any, prices: Any) -> dict[str, Any]:
    from shipyard.tracking.cost import storage_cost

    stored = ws.objects.backend.total_bytes()
    return {"url": ws.objects.backend.url, "bytes": stored, "per_month": storage_cost(stored, prices).to_dict()}


def _deployments(ws: Any, config: Any, prices: Any, models: tuple[str, ...], since: float) -> list[dict[str, Any]]:
    from shipyard.data.requestlog import logged_models
    from shipyard.serving.requestlog import requests_root
    from shipyard.tracking.cost import deployment_usage

    where = requests_root(ws.project.state_dir, config.deploy.request_log, ws.project.root)
    names = list(models) or logged_models(where)
    return [usage.to_dict(prices) for name in names for usage in deployment_usage(where, name, since)]


def _print(report: dict[str, Any]) -> None:
    compute = report["compute"]
    echo(f"compute (pipeline runs since {report['since']})  {compute['cost']['text']}")
    for budget in compute["budgets"]:
        echo(f"  {budget['text']}")
    storage = report["storage"]
    echo(f"storage ({storage['url']})  {storage['bytes'] / 1e6:.1f} MB, {storage['per_month']['text']} per month")
    rows = [[d["model"], str(d["version"]), f"{d['predictions']:,}",
             "-" if d["cpu_seconds_per_1k"] is None else f"{d['cpu_seconds_per_1k']:.3g} s",
             d["cost_per_1k"]["text"], d["cost"]["text"]] for d in report["deployments"]]
    echo(f"deployments (predictions since {report['since']}; gateway CPU per 1,000 predictions)")
    if not rows:
        echo("  no predictions in the request log in this window")
        return
    table(["model", "version", "predictions", "CPU / 1k", "cost / 1k", "cost"], rows)
