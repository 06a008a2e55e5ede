"""What can start a retrain, per model: the rows of ``shipyard triggers list`` (CLI and server alike)."""

from __future__ import annotations

import time
from typing import Any


def fmt_time(t: float | None) -> str:
    """A UTC time as the monitoring commands print it ("" for none)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) if t is not None else ""


def trigger_rows(ws: Any, config: Any) -> list[dict[str, str]]:
    """Rules with a retrain action, watched data, schedules and the triggers in flight, per served model."""
    from shipyard.monitoring import build_monitor
    from shipyard.store import monitoring as repo

    mon = build_monitor(ws, config, run_retrains=False)
    retrain = config.monitor.retrain
    rows: list[dict[str, str]] = []
    with ws.store.read() as session:
        for model in mon.models():
            for rule in config.monitor.rules:
                if "retrain" in rule.actions:
                    state = session.get(repo.RuleState, (model, rule.label))
                    rows.append({"model": model, "trigger": "rule", "what": f"{rule.when} for {rule.for_windows}",
                                 "state": f"streak {state.streak if state else 0}"})
            for rel in retrain.watch:
                rows.append({"model": model, "trigger": "new_data", "what": f"path {rel}",
                             "state": (repo.get_watch(session, model, f"path:{rel}") or "not seen yet")[:24]})
            if retrain.on_new_data:
                rows.append({"model": model, "trigger": "new_data", "what": "dataset versions",
                             "state": repo.get_watch(session, model, "datasets") or "not seen yet"})
            if retrain.every or retrain.cron:
                last = repo.get_watch(session, model, "schedule")
                rows.append({"model": model, "trigger": "schedule",
                             "what": f"every {retrain.every}" if retrain.every else f"cron {retrain.cron}",
                             "state": f"last check {fmt_time(float(last))}" if last else "not started"})
            for t in repo.active_triggers(session, model):
                rows.append({"model": model, "trigger": f"#{t.id} {t.kind}", "what": t.source, "state": t.state})
    return rows
