"""``shipyard monitor`` and ``shipyard triggers``: the closed loop from the command line."""

from __future__ import annotations

import time
from typing import Any

import typer

from shipyard.cli.output import echo, print_json, show_rows, table
from shipyard.errors import UsageError
from shipyard.monitoring.listing import fmt_time

app = typer.Typer(add_completion=False, help="Judge windows of the request log; alert and retrain by rule.")
triggers_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="List, inspect, run and approve retrain triggers.")


def _setup() -> tuple[Any, Any]:
    from shipyard.config import load_config
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    return ws, load_config(ws.project.config_path)


def monitor(
    once: bool = typer.Option(False, "--once", help="One cycle, wait for the retrains it started, then exit."),
    every: str = typer.Option(None, "--every", help="Cycle period, e.g. 30s or 5m (default: monitor.every)."),
    cycles: int = typer.Option(0, "--cycles", min=0, help="Stop after this many cycles (0: run until stopped)."),
    no_retrain: bool = typer.Option(False, "--no-retrain", help="Judge and alert, but start no retrain."),
    json_out: bool = typer.Option(False, "--json", help="Print each cycle's report as JSON."),
) -> None:
    """Cut the request log into windows, compute drift, quality, traffic and accuracy per window,
    judge the monitor rules, alert, and retrain/gate/roll out when a rule or trigger says so.

    Example: shipyard monitor --every 5m
    """
    from shipyard import notify
    from shipyard.durations import parse_duration
    from shipyard.monitoring import build_monitor

    if once and every:
        raise UsageError("give --once or --every, not both")
    ws, config = _setup()
    try:
        period = parse_duration(every) if every else config.monitor.every_s
    except ValueError as exc:
        raise UsageError(f"--every: {exc}") from None
    mon = build_monitor(ws, config, run_retrains=not no_retrain)
    done = 0
    try:
        while True:
            report = mon.cycle()
            done += 1
            if once:
                mon.wait()
                report.followed += mon.follow()
            show_cycle(report, json_out)
            if once or (cycles and done >= cycles):
                break
            time.sleep(period)
    except KeyboardInterrupt:
        echo("stopped")
    finally:
        mon.wait(timeout=0 if not once else None)
        notify.flush(30)
        ws.close()


app.command(name="monitor")(monitor)


def show_cycle(report: Any, json_out: bool) -> None:
    """Print one monitor cycle's report (also used by ``shipyard server``'s monitor thread)."""
    if json_out:
        print_json(report.to_dict())
        return
    for w in report.windows:
        echo(f"window {w['model']}@{w['version']} {fmt_time(w['start'])}..{fmt_time(w['end'])} "
             f"rows={w['rows']} verdict={w['verdict']} drift_share={w['drift_share']} error_rate={w['error_rate']}")
    for f in report.firings:
        echo(f"rule {f['model']}/{f['rule']}: {f['status']} ({f['reason']})")
    for t in report.triggers:
        echo(f"retrain {t['model']}: trigger #{t['trigger']} started")
    for f in report.followed:
        echo(f"retrain {f['model']}: trigger #{f['trigger']} {f['state']} (version {f['version']})")
    if not (report.windows or report.firings or report.triggers or report.followed):
        echo("no closed window yet")


@triggers_app.command("list")
def list_(json_out: bool = typer.Option(False, "--json", help="Print as JSON.")) -> None:
    """Show what can start a retrain, per model: rules, watched data, schedules, and what is in flight.

    Example: shipyard triggers list
    """
    from shipyard.cli.remote import remote
    from shipyard.monitoring.listing import trigger_rows

    server = remote()
    if server is not None:
        rows = server.get("/api/v1/triggers", "list triggers")["triggers"]
    else:
        ws, config = _setup()
        try:
            rows = trigger_rows(ws, config)
        finally:
            ws.close()
    show_rows(rows, json_out, ["model", "trigger", "what", "state"],
              lambda r: (r["model"], r["trigger"], r["what"], r["state"]),
              empty="no triggers: add monitor.rules with 'actions: \\[retrain]', monitor.retrain.watch or "
                    "monitor.retrain.every")


@triggers_app.command("history")
def history(
    model: str = typer.Argument(None, help="Only this model."),
    limit: int = typer.Option(20, min=1, help="How many of the newest triggers."),
    timeline: bool = typer.Option(False, "--timeline", help="Print each trigger's timeline with timings."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON (with timelines)."),
) -> None:
    """Show past retrain triggers: what asked, what the policy said, and how each retrain ended.

    Example: shipyard triggers history penguins --timeline
    """
    from shipyard.monitoring.timeline import render
    from shipyard.monitoring.timeline import timeline as build
    from shipyard.store import monitoring as repo
    from shipyard.workspace import Workspace

    ws = Workspace.discover()
    try:
        with ws.store.read() as session:
            rows = [(t.to_dict(), build(session, t)) for t in repo.triggers(session, model, limit)]
    finally:
        ws.close()
    if json_out:
        print_json([{**t, "timeline": events} for t, events in rows])
        return
    if not rows:
        echo("no retrain triggers yet")
        return
    if timeline:
        for t, events in rows:
            for line in render(t, events):
                echo(line)
        return
    table(["id", "model", "kind", "state", "created", "reason"],
          [(t["id"], t["model"], t["kind"], t["state"], fmt_time(t["created_at"]), t["reason"]) for t, _ in rows])


@triggers_app.command("run")
def run(
    model: str = typer.Argument(None, help="Model to retrain (default: model.name)."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the retrain reaches its rollout."),
    json_out: bool = typer.Option(False, "--json", help="Print the trigger as JSON."),
) -> None:
    """Ask for a retrain now; it goes through the same one-in-flight path as every other trigger.

    Example: shipyard triggers run penguins
    """
    from shipyard import notify
    from shipyard.monitoring import build_monitor
    from shipyard.store import monitoring as repo

    ws, config = _setup()
    model = model or (config.model.name if config.model else None)
    if not model:
        raise UsageError("give a MODEL, or a model: section in shipyard.yaml")
    mon = build_monitor(ws, config)
    try:
        trigger = mon.request_retrain(model)
        if wait:
            mon.wait()
            with ws.store.read() as session:
                trigger = session.get(repo.Trigger, trigger["id"]).to_dict()  # type: ignore[union-attr]
        notify.flush(30)
    finally:
        ws.close()
    if json_out:
        print_json(trigger)
    else:
        echo(f"trigger #{trigger['id']} {trigger['model']}: {trigger['state']} ({trigger['reason']})")


@triggers_app.command("approve")
def approve(
    trigger_id: int = typer.Argument(..., help="The trigger waiting for approval."),
    json_out: bool = typer.Option(False, "--json", help="Print the trigger as JSON."),
) -> None:
    """Approve a retrained, gated version that waits for a person, and start its rollout.

    Example: shipyard triggers approve 7
    """
    from shipyard import notify
    from shipyard.cli.remote import remote
    from shipyard.monitoring import build_monitor

    server = remote()
    if server is not None:
        out = server.call("POST", f"/api/v1/triggers/{trigger_id}/approve", f"approve trigger #{trigger_id}")
    else:
        ws, config = _setup()
        mon = build_monitor(ws, config)
        try:
            out = mon.approve(trigger_id)  # the monitoring policy decides; this only translates
            notify.flush(30)
        finally:
            ws.close()
    if json_out:
        print_json(out)
    else:
        echo(f"trigger #{trigger_id} {out['model']}: {out['state']} ({out['reason']})")
