"""The monitor: one ``cycle`` judges every new window of every served model, then the triggers.

A cycle, per model: read the request log after the cursor (the end of the last stored window), cut
closed tumbling windows, compute each window's metrics against the served version's training
profile, and in one transaction per window store the window, update each rule's streak, decide
the rules whose condition held (``policy.FIRE_POLICY``) and store every decision with its audit
event. Retrain requests from rules, new data (a dataset version or a watched path's content hash)
and schedules (``every`` or ``cron``) all go through ``propose_retrain`` (``policy.RETRAIN_POLICY``:
one in flight, debounced, no loop after a failure). After commit come the side effects: alerts
through ``shipyard.notify`` (never blocking), rollbacks, and retrains (``retrain.Retrainer``) on a
worker thread. Rolled-out retrains are followed until the gateway promotes or rolls them back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from shipyard import audit
from shipyard.conditions import eval_when
from shipyard.config import ShipyardConfig
from shipyard.cron import cron_next
from shipyard.durations import parse_duration
from shipyard.errors import NotFound, UsageError
from shipyard.monitoring import metrics as window_metrics
from shipyard.monitoring import policy
from shipyard.monitoring.windows import (
    count_windows,
    logged_models,
    read_feedback,
    read_log,
    time_windows,
)
from shipyard.project import resolve_inside
from shipyard.serving.logstore import LogFolder, log_location
from shipyard.store import monitoring as repo

if TYPE_CHECKING:
    from collections.abc import Callable

    from shipyard.config import Notifier
    from shipyard.data.profile import Profile
    from shipyard.store import Store

log = logging.getLogger("shipyard.monitoring")
WATCH_KEY = "monitor.retrain.watch path"


class TriggerRunner(Protocol):
    """What the monitor needs from a retrain runner (``retrain.Retrainer``)."""

    def run(self, trigger_id: int) -> str:
        """Run a pending trigger's retrain; returns the trigger's state."""
        ...

    def deploy(self, trigger_id: int) -> str:
        """Start the rollout of a trigger's gated version; returns the trigger's state."""
        ...


@dataclass
class CycleReport:
    """What one cycle did (printed by ``shipyard monitor``)."""

    windows: list[dict[str, Any]] = field(default_factory=list)
    firings: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)
    followed: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"windows": self.windows, "firings": self.firings, "triggers": self.triggers, "followed": self.followed}


class Monitor:
    """The monitor of one project (store, request log, config)."""

    def __init__(self, store: Store, config: ShipyardConfig, *, root: Path, requests_root: Path | LogFolder,
                 feedback_root: Path | LogFolder,
                 notifiers: list[Notifier] | None = None, retrainer: TriggerRunner | None = None,
                 run_retrains: bool = True,
                 references: Callable[[str, int], Profile | None] | None = None) -> None:
        self.store = store
        self.config = config
        self.root = Path(root)
        self.requests_root = log_location(requests_root)  # a folder, or an fsspec URL such as s3://...
        self.feedback_root = log_location(feedback_root)
        self.notifiers = list(notifiers if notifiers is not None else config.notify)
        self.settings = config.monitor
        for rel in self.settings.retrain.watch:  # a watched path outside the project: refuse to start
            resolve_inside(self.root, rel, WATCH_KEY)
        self.retrainer = retrainer
        self.run_retrains = run_retrains
        self._profiles: dict[tuple[str, int], Profile | None] = {}
        self._references = references  # (model, version) -> Profile | None; default: the registry
        self._threads: list[threading.Thread] = []
        self.sent: list[dict[str, Any]] = []
        self._skew_check: Any = None  # shipyard.features.skew.SkewCheck, opened on first use
        self._skew_at: tuple[float, dict[str, Any]] | None = None  # (cycle's now, its skew): one check per cycle

    # -- helpers ------------------------------------------------------------------------------------
    def _skew(self, now: float) -> dict[str, Any]:
        """Training/serving skew of the served features (``feature_skew``, ``feature.<name>.skew``)
        when shipyard.yaml has ``features.serve``; a failing check is reported, never fatal. It is
        the project's, not a window's: checked once per cycle (``now``) and shared by its windows."""
        features = self.config.features
        if features is None or features.serve is None:
            return {}
        if self._skew_at is not None and self._skew_at[0] == now:
            return self._skew_at[1]
        from shipyard.errors import ShipyardError

        try:
            if self._skew_check is None:
                from shipyard.features.skew import SkewCheck

                self._skew_check = SkewCheck(self.root, features.repo, features.serve)
            skew = self._skew_check.metrics()
        except ShipyardError as exc:
            skew = {"skew_error": exc.message}
        self._skew_at = (now, skew)
        return skew

    def models(self) -> list[str]:
        if self.settings.models:
            return list(self.settings.models)
        names = set(logged_models(self.requests_root))
        if self.config.model is not None:
            names.add(self.config.model.name)
        return sorted(names)

    def alert(self, event: dict[str, Any]) -> None:
        """Send one event to the configured notifiers (queued; never blocks)."""
        event = {"at": datetime.now(UTC).isoformat(), **event}
        self.sent.append(event)
        if self.notifiers:
            from shipyard import notify

            notify.send(event, self.notifiers, store=self.store)

    def _reference(self, model: str, version: int | None) -> Profile | None:
        if version is None:
            return None
        key = (model, version)
        if key not in self._profiles:
            profile = None
            if self._references is not None:
                self._profiles[key] = self._references(model, version)
                return self._profiles[key]
            try:
                from shipyard import registry

                with self.store.read() as session:
                    profile = registry.resolve(session, f"{model}@{version}").reference_profile()
            except Exception as exc:  # no registry entry or no profile: traffic metrics only
                log.info("no reference profile for %s@%s: %s", model, version, exc)
            self._profiles[key] = profile
        return self._profiles[key]

    def _expected_features(self, model: str, reference: Any) -> list[str] | None:
        if reference is None:
            return None
        target = self._target(model)
        cfg = self.config.model
        if cfg is not None and cfg.name == model and cfg.features:
            return [f for f in cfg.features if f != target]
        return [c for c in reference.columns if c != target]

    def _target(self, model: str) -> str | None:
        cfg = self.config.model
        return cfg.target if cfg is not None and cfg.name == model else None

    # -- windows and rules --------------------------------------------------------------------------
    def judge(self, model: str, now: float) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[int]]:
        """Cut and judge the new windows of one model; returns windows, firings and new trigger ids."""
        s = self.settings
        with self.store.read() as session:
            last = repo.last_window(session, model)
            cursor = last.end if last is not None else None
        frame = read_log(self.requests_root, model, since=cursor)
        if s.window_rows:
            windows = count_windows(frame, rows=s.window_rows, cursor=cursor)
        else:
            windows = time_windows(frame, size_s=s.window_s, cursor=cursor, now=now, min_rows=s.min_rows)
        if not windows:
            return [], [], []
        labels = read_feedback(self.feedback_root, since=cursor)  # a label comes after its request
        out_windows, out_firings, new_triggers = [], [], []
        for win in windows:
            version = _served_version(win.frame)
            reference = self._reference(model, version)
            verdict, values = window_metrics.window_metrics(
                win.frame, reference, min_rows=s.min_rows, thresholds=s.thresholds, drift_share=s.drift_share,
                expected=self._expected_features(model, reference), target=self._target(model), labels=labels,
                drift_rows=s.drift_rows)
            if verdict != "empty":
                values.update(self._skew(now))
            firings, triggers, actions = self._commit_window(model, version, win, verdict, values, now)
            out_windows.append({"model": model, "version": version, "start": win.start, "end": win.end,
                                "rows": win.frame.height, "verdict": verdict,
                                "drift_share": values.get("drift_share"), "error_rate": values.get("error_rate")})
            out_firings.extend(firings)
            new_triggers.extend(triggers)
            self._side_effects(model, version, actions)
        return out_windows, out_firings, new_triggers

    def _commit_window(self, model: str, version: int | None, win: Any, verdict: str, values: dict[str, Any],
                       now: float) -> tuple[list[dict[str, Any]], list[int], list[dict[str, Any]]]:
        firings: list[dict[str, Any]] = []
        triggers: list[int] = []
        actions: list[dict[str, Any]] = []
        with self.store.write() as session:
            window = repo.add_window(session, model=model, version=version, kind=win.kind, start=win.start, end=win.end,
                                     rows=win.frame.height, verdict=verdict, metrics=values)
            for rule in self.settings.rules:
                state = repo.rule_state(session, model, rule.label)
                holds = None if verdict == "empty" else eval_when(rule.tree, values)
                if holds is None:
                    continue  # no verdict: the streak neither grows nor breaks
                state.streak = state.streak + 1 if holds else 0
                state.last_window_id = window.id
                if not holds:
                    continue
                ctx = policy.decide(policy.Context(
                    "fire", model, now, rule=rule.label, for_windows=rule.for_windows, streak=state.streak,
                    cooldown_s=rule.cooldown_s, last_fired_at=state.last_fired_at, actions=list(rule.actions),
                    metrics=_used(rule.tree, values)))
                firing = repo.add_firing(session, model=model, rule=rule.label, window_id=window.id, at=now,
                                         status=ctx.status, severity=rule.severity, actions=list(rule.actions),
                                         reason=ctx.reason, fired=ctx.fired, metrics=ctx.metrics)
                audit.record(session, "monitor.rule", f"{model}/{rule.label}",
                             {"window": window.id, "status": ctx.status, "reason": ctx.reason, "fired": ctx.fired,
                              "metrics": ctx.metrics, "actions": list(rule.actions)})
                firings.append(firing.to_dict())
                if ctx.status != policy.ACCEPT:
                    continue
                state.last_fired_at = now
                detail = ", ".join(f"{k} {v}" for k, v in ctx.metrics.items())
                event = {"kind": "monitor.alert", "model": model, "version": version, "rule": rule.label,
                         "severity": rule.severity, "firing": firing.id, "window_start": win.start,
                         "window_end": win.end, "reason": f"{rule.when} held for {state.streak} window(s) ({detail})",
                         "metrics": ctx.metrics, "actions": list(rule.actions)}
                if "alert" in rule.actions:
                    actions.append({"do": "alert", "event": event})
                if "rollback" in rule.actions:
                    actions.append({"do": "rollback", "event": event})
                if "retrain" in rule.actions:
                    trigger = self._propose(session, model, "rule", f"rule {rule.label} (firing #{firing.id})", now)
                    if trigger.state == "pending":
                        triggers.append(trigger.id)
            session.flush()
        return firings, triggers, actions

    def _side_effects(self, model: str, version: int | None, actions: list[dict[str, Any]]) -> None:
        for action in actions:
            if action["do"] == "alert":
                self.alert(action["event"])
            elif action["do"] == "rollback":
                self._rollback(model, action["event"])

    def _rollback(self, model: str, event: dict[str, Any]) -> None:
        import subprocess

        from shipyard.monitoring.retrain import shipyard_command

        proc = subprocess.run([*shipyard_command(), "rollback", model, "--json"], cwd=self.root, capture_output=True,
                              text=True, check=False, timeout=120)
        ok = proc.returncode == 0
        with self.store.write() as session:
            audit.record(session, "monitor.rollback", model, {"ok": ok, "rule": event.get("rule"),
                                                               "output": (proc.stdout or proc.stderr)[-500:]})
        self.alert({"kind": "monitor.rollback" if ok else "monitor.rollback_failed", "model": model,
                    "severity": "critical", "rule": event.get("rule"),
                    "reason": "rolled back to the previous champion" if ok else (proc.stderr or proc.stdout)[-300:]})

    # -- triggers -------------------------------------------------------------------------------------
    def _propose(self, session: Any, model: str, kind: str, source: str, now: float) -> repo.Trigger:
        """Decide a retrain request (the one debounced, one-in-flight path) and store it either way."""
        retrain = self.settings.retrain
        in_flight = [t.id for t in repo.active_triggers(session, model)]
        last_started = repo.last_trigger(session, model, ("running", "rolling_out", "awaiting_approval", "promoted",
                                                          "rolled_back", "failed", "gated_out", "unchanged"))
        last_done = repo.last_trigger(session, model, ("failed", "gated_out", "unchanged", "promoted", "rolled_back",
                                                       "rolling_out"))
        # a failed retrain, or one that rebuilt the champion, is only worth repeating on new data
        last_failed = last_done is not None and last_done.state in ("failed", "unchanged")
        new_data = False
        if last_failed and last_done is not None:
            new_data = self._data_fingerprint(session, model) != last_done.result_dict.get("data")
        ctx = policy.decide(policy.Context(
            "retrain", model, now, kind=kind, source=source, in_flight=in_flight,
            min_interval_s=parse_duration(retrain.min_interval),
            last_started_at=(last_started.started_at or last_started.created_at) if last_started else None,
            last_failed=last_failed, new_data_since_failure=new_data, over_budget=self._over_budget(session, kind)))
        state = "pending" if ctx.status == policy.ACCEPT else "rejected"
        trigger = repo.add_trigger(session, model=model, kind=kind, source=source, state=state, reason=ctx.reason,
                                   fired=ctx.fired, result={"data": self._data_fingerprint(session, model),
                                                            "requested_at": now})
        if state == "rejected":
            trigger.finished_at = now
        audit.record(session, f"monitor.trigger.{state}", f"{model}/trigger/{trigger.id}",
                     {"kind": kind, "source": source, "reason": ctx.reason, "fired": ctx.fired})
        return trigger

    def _over_budget(self, session: Any, kind: str) -> str:
        """Why the project's budget forbids an automatic retrain ("" when it does not, or for a person)."""
        if kind == "manual" or self.config.budget is None:
            return ""
        from shipyard.tracking.budget import spent_budget

        return spent_budget(session, self.config) or ""

    def approve(self, trigger_id: int, source: str = "shipyard triggers approve") -> dict[str, Any]:
        """A person approves a trigger's gated version: decided by ``policy.APPROVE_POLICY``, stored
        with its audit event either way; an accepted approval then starts the rollout."""
        with self.store.write() as session:
            trigger = session.get(repo.Trigger, trigger_id, with_for_update=True)
            if trigger is None:
                raise NotFound(f"no trigger #{trigger_id}", hint="see 'shipyard triggers history'")
            ctx = policy.decide(policy.Context("approve", trigger.model, time.time(), source=source,
                                               trigger_id=trigger_id, trigger_state=trigger.state))
            accepted = ctx.status == policy.ACCEPT
            audit.record(session, "monitor.retrain.approved" if accepted else "monitor.retrain.approval_refused",
                         f"trigger/{trigger_id}", {"model": trigger.model, "reason": ctx.reason, "fired": ctx.fired})
        if not accepted:
            raise UsageError(ctx.reason, hint="see 'shipyard triggers history' for the triggers awaiting approval")
        if self.retrainer is None:
            raise UsageError("this monitor has no retrain runner to start the rollout")
        self.retrainer.deploy(trigger_id)
        with self.store.read() as session:
            return session.get(repo.Trigger, trigger_id).to_dict()  # type: ignore[union-attr]

    def request_retrain(self, model: str, kind: str = "manual", source: str = "shipyard triggers run") -> dict[str, Any]:
        with self.store.write() as session:
            trigger = self._propose(session, model, kind, source, time.time())
            result = trigger.to_dict()
        if result["state"] == "pending":
            self._start(result["id"])
        return result

    def _data_fingerprint(self, session: Any, model: str) -> str:
        """What the training data looks like now (watched paths' hashes, newest dataset versions)."""
        return ";".join(f"{key}={value}" for key, value in sorted(self._current_watch().items()))

    def _current_watch(self) -> dict[str, str]:
        from shipyard.hashing import hash_file

        values: dict[str, str] = {}
        for rel in self.settings.retrain.watch:
            # refused, not skipped (DESIGN invariant 5): a link may have been pointed out since start
            path = resolve_inside(self.root, rel, WATCH_KEY)
            if path.is_file():
                values[f"path:{rel}"] = hash_file(path)
            elif path.is_dir():
                from shipyard.hashing import hash_bytes

                listing = sorted(f"{p.relative_to(path)}:{hash_file(p)}" for p in path.rglob("*") if p.is_file())
                values[f"path:{rel}"] = hash_bytes("\n".join(listing).encode())
            else:
                values[f"path:{rel}"] = "missing"
        if self.settings.retrain.on_new_data:
            try:
                from shipyard.store import datasets

                with self.store.read() as session:
                    newest = {}
                    for v in datasets.list_versions(session):
                        newest[v.name] = max(newest.get(v.name, 0), int(getattr(v, "version", 0) or 0))
                values["datasets"] = ",".join(f"{k}@{v}" for k, v in sorted(newest.items()))
            except Exception as exc:
                log.info("dataset versions unavailable: %s", exc)
        return values

    def check_triggers(self, model: str, now: float) -> list[int]:
        """New data and schedules: each change or due time proposes one retrain."""
        current = self._current_watch()
        started: list[int] = []
        with self.store.write() as session:
            changed = []
            for key, value in current.items():
                before = repo.get_watch(session, model, key)
                if before is not None and before != value:
                    changed.append(key)
                repo.set_watch(session, model, key, value)
            if changed:
                trigger = self._propose(session, model, "new_data", "changed: " + ", ".join(changed), now)
                if trigger.state == "pending":
                    started.append(trigger.id)
            due = self._schedule_due(session, model, now)
            if due:
                trigger = self._propose(session, model, "schedule", due, now)
                if trigger.state == "pending":
                    started.append(trigger.id)
        return started

    def _schedule_due(self, session: Any, model: str, now: float) -> str | None:
        retrain = self.settings.retrain
        if retrain.every is None and retrain.cron is None:
            return None
        last_text = repo.get_watch(session, model, "schedule")
        repo.set_watch(session, model, "schedule", repr(now))
        if last_text is None:
            return None  # the first cycle starts the clock
        last = float(last_text)
        if retrain.every is not None:
            every = parse_duration(retrain.every)
            if every > 0 and now - last >= every:
                return f"every {retrain.every}"
            repo.set_watch(session, model, "schedule", last_text)
            return None
        # due when the schedule named a time since the last check, however long ago that was
        if cron_next(retrain.cron or "", last, retrain.timezone) <= now:
            zone = "" if retrain.timezone == "UTC" else f" ({retrain.timezone})"
            return f"cron {retrain.cron}{zone}"
        return None

    def _start(self, trigger_id: int) -> None:
        if not self.run_retrains or self.retrainer is None:
            return
        thread = threading.Thread(target=self._run_trigger, args=(trigger_id,), name=f"retrain-{trigger_id}", daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_trigger(self, trigger_id: int) -> None:
        try:
            self.retrainer.run(trigger_id)
        except Exception as exc:  # a crash in the retrain path is a failed retrain, never a loop
            log.exception("retrain %s crashed", trigger_id)
            with self.store.write() as session:
                trigger = repo.update_trigger(session, trigger_id, state="failed", reason=f"crashed: {exc}",
                                              finished_at=time.time())
                audit.record(session, "monitor.retrain.failed", f"trigger/{trigger_id}", {"reason": str(exc)})
                model = trigger.model
            self.alert({"kind": "retrain.failed", "model": model, "trigger": trigger_id, "severity": "critical",
                        "reason": f"retrain crashed: {exc}"})

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the retrains this monitor started (``--once``, tests)."""
        for thread in list(self._threads):
            thread.join(timeout)
        self._threads = [t for t in self._threads if t.is_alive()]

    def follow(self) -> list[dict[str, Any]]:
        """Move rolled-out triggers to ``promoted`` or ``rolled_back`` once the gateway decided."""
        from shipyard.store import serving

        out = []
        with self.store.write() as session:
            rolling = [t for t in repo.triggers(session, limit=200) if t.state == "rolling_out"]
            deployments = serving.get_deployments(session, [int(t.result_dict.get("deployment") or 0) for t in rolling])
            for trigger in rolling:
                dep = deployments.get(int(trigger.result_dict.get("deployment") or 0))
                if dep is None or dep.state not in ("promoted", "rolled_back", "aborted"):
                    continue
                state = "promoted" if dep.state == "promoted" else "rolled_back"
                result = {**trigger.result_dict, "rollout_state": dep.state, "rollout_finished_at": dep.updated_at}
                repo.update_trigger(session, trigger.id, state=state, result=result, finished_at=dep.updated_at,
                                    reason=f"{trigger.model}@{dep.candidate} {dep.state}" + (f": {dep.reason}" if dep.reason else ""))
                audit.record(session, f"monitor.retrain.{state}", f"trigger/{trigger.id}",
                             {"model": trigger.model, "deployment": dep.id, "version": dep.candidate})
                out.append({"trigger": trigger.id, "model": trigger.model, "state": state, "version": dep.candidate})
        for item in out:
            self.alert({"kind": f"retrain.{item['state']}", "model": item["model"], "version": item["version"],
                        "trigger": item["trigger"], "severity": "info" if item["state"] == "promoted" else "warning",
                        "reason": f"{item['model']}@{item['version']} {item['state'].replace('_', ' ')}"})
        return out

    # -- one cycle --------------------------------------------------------------------------------------
    def cycle(self, now: float | None = None) -> CycleReport:
        now = time.time() if now is None else now
        report = CycleReport()
        report.followed = self.follow()
        if self.run_retrains and self.retrainer is not None:
            with self.store.read() as session:
                waiting = [(t.id, t.model) for t in repo.triggers(session, limit=200) if t.state == "pending"]
            for trigger_id, model in waiting:  # left by a --no-retrain run or a monitor that stopped
                self._start(trigger_id)
                report.triggers.append({"model": model, "trigger": trigger_id, "resumed": True})
        for model in self.models():
            windows, firings, triggers = self.judge(model, now)
            report.windows.extend(windows)
            report.firings.extend(firings)
            triggers += self.check_triggers(model, now)
            for trigger_id in triggers:
                self._start(trigger_id)
            report.triggers.extend({"model": model, "trigger": t} for t in triggers)
        if self.notifiers:
            from shipyard import notify

            notify.redeliver(self.store, self.notifiers, limit=20)
        return report


def _served_version(frame: Any) -> int | None:
    """The version that answered most of the window's non-shadow requests (the champion, normally)."""
    if frame.height == 0 or "version" not in frame.columns:
        return None
    rows = frame
    if "route" in frame.columns:
        import polars as pl

        primary = frame.filter(pl.col("route") == "primary")
        rows = primary if primary.height else frame.filter(pl.col("route") != "shadow")
    if rows.height == 0:
        return None
    counts = Counter(rows["version"].to_list())
    return int(counts.most_common(1)[0][0])


def _used(tree: Any, values: dict[str, Any]) -> dict[str, Any]:
    from shipyard.conditions import when_metrics

    return {m: values.get(m) for m in when_metrics(tree)}
