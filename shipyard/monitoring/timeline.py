"""The story of one retrain trigger, from detection to promotion, with timings.

Composed from what is stored: the firing that asked for it (detected), the delivered alert of that
firing (alerted), the trigger's steps (retrained, registered, gated, canaried) and the rollout's end
(promoted or rolled back). Nothing here is recorded twice.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy.orm import Session

from shipyard.store import monitoring as repo

_FIRING = re.compile(r"firing #(\d+)")
_STEP_EVENT = {"pipeline": "retrained", "register": "registered", "gate": "gated", "deploy": "canaried"}


def timeline(session: Session, trigger: repo.Trigger) -> list[dict[str, Any]]:
    """Events ``{"event", "at", "after_s", "detail"}`` in order; ``after_s`` counts from the first."""
    events: list[dict[str, Any]] = []
    match = _FIRING.search(trigger.source)
    firing = session.get(repo.Firing, int(match.group(1))) if match else None
    if firing is not None:
        events.append({"event": "detected", "at": firing.at, "detail": f"{firing.rule}: {firing.reason}"})
        for delivery in repo.deliveries(session, limit=1000):
            try:
                body = json.loads(delivery.event)
            except ValueError:
                continue
            if body.get("firing") == firing.id and delivery.status == "delivered" and delivery.finished_at:
                events.append({"event": "alerted", "at": delivery.finished_at,
                               "detail": f"{delivery.format} webhook {delivery.target}"})
                break
    else:
        events.append({"event": "detected", "at": trigger.created_at, "detail": f"{trigger.kind}: {trigger.source}"})
    result = trigger.result_dict
    if trigger.started_at:
        events.append({"event": "retrain started", "at": trigger.started_at, "detail": trigger.kind})
    for step in result.get("steps", []):
        name = _STEP_EVENT.get(step.get("step"), step.get("step"))
        ok = step.get("exit_code") == 0
        if step.get("step") == "gate":
            detail = "gate passed" if ok else "gate failed: the champion stays"
        elif step.get("step") == "register" and ok:
            detail = f"version {result.get('version')}"
        elif step.get("step") == "deploy" and ok:
            detail = f"{result.get('strategy', 'canary')} started"
        else:
            detail = "ok" if ok else f"failed (exit {step.get('exit_code')})"
        events.append({"event": name if ok or step.get("step") == "gate" else f"{name} FAILED",
                       "at": step.get("finished_at"), "detail": detail})
    if trigger.state in ("promoted", "rolled_back") and trigger.finished_at:
        events.append({"event": trigger.state.replace("_", " "), "at": trigger.finished_at, "detail": trigger.reason})
    elif trigger.state in ("failed", "gated_out", "unchanged", "rejected", "awaiting_approval"):
        events.append({"event": trigger.state.replace("_", " "), "at": trigger.finished_at or trigger.created_at,
                       "detail": trigger.reason})
    events = [e for e in events if e.get("at") is not None]
    events.sort(key=lambda e: e["at"])
    start = events[0]["at"] if events else 0.0
    for e in events:
        e["after_s"] = round(e["at"] - start, 2)
    return events


def render(trigger: dict[str, Any], events: list[dict[str, Any]]) -> list[str]:
    """Plain lines: ``+  12.3 s  promoted   penguins@2 promoted``."""
    lines = [f"trigger #{trigger['id']} {trigger['model']} ({trigger['kind']}): {trigger['state']}"]
    for e in events:
        lines.append(f"  +{e['after_s']:8.2f} s  {e['event']:<18} {e['detail']}")
    return lines
