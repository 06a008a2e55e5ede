"""Budgets (``budget:`` in shipyard.yaml): alert at each threshold once, and refuse to start more work.

``alert`` runs after a pipeline run: for each limit (the run itself, today, the last 30 days) whose
spend reached a share in ``alert_at``, it sends one ``budget.alert`` event through ``notify:`` (the
webhooks), once per limit, window and threshold (the deliveries already stored say what was sent).
``guard`` runs before a sweep's trial or a scheduled retrain: it says why not to start when a daily
or monthly budget is spent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from shipyard.tracking.cost import BudgetCheck, PriceTable, check_budgets, crossed, run_costs

EVENT_KIND = "budget.alert"


def _window(limit: str, now_ms: int, run_id: str | None) -> str:
    day = datetime.fromtimestamp(now_ms / 1000, UTC)
    if limit == "per_run":
        return run_id or "run"
    return day.strftime("%Y-%m-%d") if limit == "per_day" else day.strftime("%Y-%m")


def _sent(session: Any, key: str) -> bool:
    from sqlalchemy import select

    from shipyard.store.monitoring import Delivery

    return session.scalar(select(Delivery.id).where(Delivery.event_kind == EVENT_KIND,
                                                    Delivery.event.contains(f'"{key}"')).limit(1)) is not None


def alert(store: Any, config: Any, run_id: str | None = None, now_ms: int | None = None) -> list[dict[str, Any]]:
    """Send a ``budget.alert`` for every threshold newly reached; returns the events sent."""
    if config.budget is None:
        return []
    from shipyard import notify

    now_ms = now_ms or int(time.time() * 1000)
    table = PriceTable.of(config.cost)
    with store.read() as session:
        run_cost = run_costs(session, [run_id], table)[run_id] if run_id else None
        checks = check_budgets(session, config.budget, table, now_ms, run_cost)
        events = []
        for check, share in crossed(checks, config.budget.alert_at):
            key = f"budget:{check.limit}:{_window(check.limit, now_ms, run_id)}:{share:g}"
            if not _sent(session, key):
                events.append(_event(check, share, key))
    for event in events:  # wait (bounded) for delivery: the command that ran the pipeline is about to exit
        notify.send(event, list(config.notify), store=store, wait=10.0)
    return events


def _event(check: BudgetCheck, share: float, key: str) -> dict[str, Any]:
    return {"kind": EVENT_KIND, "severity": "critical" if check.exceeded else "warning", "limit": check.limit,
            "threshold": share, "spent": round(check.spent, 6), "budget": check.budget, "currency": check.currency,
            "message": check.text(), "key": key}


def guard(store: Any, config: Any, now_ms: int | None = None) -> str | None:
    """Why not to start more work (a daily or monthly budget is spent), or None."""
    if config.budget is None:
        return None
    with store.read() as session:
        return spent_budget(session, config, now_ms)


def spent_budget(session: Any, config: Any, now_ms: int | None = None) -> str | None:
    """``guard`` inside a session the caller holds."""
    if config.budget is None or (config.budget.per_day is None and config.budget.per_month is None):
        return None
    checks = check_budgets(session, config.budget, PriceTable.of(config.cost), now_ms or int(time.time() * 1000))
    spent = [c for c in checks if c.limit != "per_run" and c.spent >= c.budget]
    return "; ".join(c.text() for c in spent) or None
