"""Monitoring and the closed loop: windows over the request log, rules, alerts, retrain triggers.

``build_monitor(workspace, config)`` wires a ``Monitor`` to a project; ``Monitor.cycle()`` does one
pass (``shipyard monitor --once``). See docs/guide/monitoring.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shipyard.config import ShipyardConfig
    from shipyard.monitoring.monitor import Monitor
    from shipyard.workspace import Workspace


def build_monitor(ws: Workspace, config: ShipyardConfig, *, run_retrains: bool = True) -> Monitor:
    """A Monitor over the project's store, request log and feedback labels (a folder or an fsspec
    URL: ``deploy.request_log`` / SHIPYARD_REQUEST_LOG), with a Retrainer."""
    from shipyard.monitoring.monitor import Monitor
    from shipyard.monitoring.retrain import Retrainer, RetrainPlan
    from shipyard.serving.requestlog import feedback_root, requests_root

    state_dir, where = ws.project.state_dir, config.deploy.request_log
    monitor = Monitor(ws.store, config, root=ws.project.root,
                      requests_root=requests_root(state_dir, where, ws.project.root),
                      feedback_root=feedback_root(state_dir, where, ws.project.root), run_retrains=run_retrains)
    monitor.retrainer = Retrainer(ws.store, ws.project.root, RetrainPlan.from_config(config), monitor.alert)
    return monitor


__all__ = ["build_monitor"]
