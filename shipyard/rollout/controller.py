"""The rollout controller: a persisted state machine driven through the policy.

``start`` proposes ``none -> <strategy>[0]``; ``tick`` analyses each running rollout whose interval
has passed and proposes the next step (the last step, 100 %, is ``promoted``: the ``champion``
alias moves); ``act`` carries out ``pause``, ``resume``, ``promote`` and ``abort``; ``rollback``
flips a model back to its previous champion at once. Every proposal goes through
``policy.decide``; the decision, the new deployment state, the routing table and the audit event
are written in one transaction, and notifications go out after it commits. All state is in the
store, so a restarted gateway picks up where it was; a lease makes sure only one replica ticks.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard import audit
from shipyard.config import ROLLOUT_STRATEGIES, DeploySection
from shipyard.data.requestlog import RequestReader
from shipyard.errors import CheckFailed, NotFound, UsageError
from shipyard.rollout import analysis, policy
from shipyard.rollout.policy import ABORT, ACCEPT, REJECT, WAIT, Context, Settings
from shipyard.rollout.ports import Notifier, NullNotifier, RegistryPort
from shipyard.serving.logstore import LogFolder, log_location
from shipyard.serving.routing import single_table
from shipyard.store import serving as repo

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from shipyard.store import Store

log = logging.getLogger("shipyard.rollout")
# Called with (model, version) before a rollout starts; raises when the version cannot be served.
LoadCheck = Callable[[str, int], object]
LEASE = "rollout-controller"


@dataclass(frozen=True)
class Outcome:
    """What happened to one proposal."""

    deployment_id: int | None
    model: str
    from_state: str
    to_state: str
    status: str
    reason: str
    fired: tuple[str, ...]
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"deployment": self.deployment_id, "model": self.model, "from": self.from_state, "to": self.to_state,
                "status": self.status, "reason": self.reason, "fired": list(self.fired), "metrics": self.metrics}


def phases(strategy: str, settings: DeploySection) -> list[dict[str, Any]]:
    """Routing of each step; the last step is the promotion (all traffic to the candidate)."""
    if strategy == "canary":
        return [{"weight": float(w), "shadow_percent": 0.0} for w in settings.steps]
    if strategy == "bluegreen":
        return [{"weight": 0.0, "shadow_percent": settings.shadow_percent}, {"weight": 100.0, "shadow_percent": 0.0}]
    if strategy == "shadow":
        return [{"weight": 0.0, "shadow_percent": settings.shadow_percent}, {"weight": 100.0, "shadow_percent": 0.0}]
    if strategy == "ab":
        return [{"weight": settings.ab_split, "shadow_percent": 0.0}, {"weight": 100.0, "shadow_percent": 0.0}]
    raise UsageError(f"unknown strategy {strategy!r}", hint="use one of " + ", ".join(ROLLOUT_STRATEGIES))


def state_of(d: repo.Deployment) -> str:
    return f"{d.strategy}[{d.step}]" if d.state == "running" else d.state


def routing_for(d: repo.Deployment, settings: DeploySection) -> dict[str, Any]:
    phase = phases(d.strategy, settings)[d.step]
    return {"model": d.model, "strategy": d.strategy, "champion": d.champion, "candidate": d.candidate,
            "weight": phase["weight"], "shadow_percent": phase["shadow_percent"],
            "sticky": {"header": settings.sticky.header, "key": settings.sticky.key},
            "warm": sorted({d.champion, d.candidate} - {None}), "deployment": d.id,
            "candidate_timeout_ms": settings.candidate_timeout_ms}


def policy_settings(settings: DeploySection, *, require_gate: bool = True) -> Settings:
    return Settings(min_samples=settings.min_samples, consecutive_successes=settings.consecutive_successes,
                    failure_limit=settings.failure_limit, thresholds=settings.thresholds(),
                    require_gate=require_gate)


def _view(d: repo.Deployment) -> dict[str, Any]:
    return {"id": d.id, "model": d.model, "candidate": d.candidate, "champion": d.champion,
            "strategy": d.strategy, "state": state_of(d), "step": d.step}


class Controller:
    """Proposes rollout transitions through the policy and stores each decision. Its seams: the
    store, the registry (``RegistryPort``), the notifier (``Notifier``) and the clock."""

    def __init__(self, store: Store, registry: RegistryPort, *, requests_root: Path | LogFolder,
                 feedback_root: Path | LogFolder,
                 notify: Notifier | None = None, clock: Callable[[], float] = time.time,
                 owner: str | None = None) -> None:
        self.store = store
        self.registry = registry
        self.requests_root = log_location(requests_root)  # a folder, or an fsspec URL such as s3://...
        self.feedback_root = log_location(feedback_root)
        self.notify = notify or NullNotifier()
        self.clock = clock
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.readers: dict[str, RequestReader] = {}

    # -- start -----------------------------------------------------------------------------------
    def start(self, model: str, version: int, settings: DeploySection, strategy: str | None = None, *,
              force: bool = False, reason: str | None = None, check_load: LoadCheck | None = None) -> Outcome:
        """Propose a rollout of ``model@version``; refuses (CheckFailed) if the policy aborts it."""
        strategy = strategy or settings.strategy
        phases(strategy, settings)  # validates the name
        if force and not (reason and reason.strip()):
            raise UsageError("--force needs --reason \"...\" (kept in the audit log)")
        with self.store.read() as session:
            self.registry.version(session, model, version)  # NotFound names the version
        if check_load is not None:
            try:
                check_load(model, version)
            except Exception as exc:
                with self.store.write() as session:
                    audit.record(session, "rollout.refused", f"{model}@{version}",
                                 {"reason": f"failed to load: {exc}"})
                raise CheckFailed(f"{model}@{version} failed to load, so the rollout was not started: {exc}",
                                  hint="the champion keeps serving; fix the model and register a new version") from exc
        now = self.clock()
        with self.store.write() as session:
            info = self.registry.version(session, model, version)
            champion = self.registry.champion(session, model)
            others = [_view(d) for d in repo.active_deployments(session, model)]
            if champion == version:
                raise UsageError(f"{model}@{version} is already the champion", hint="deploy another version")
            first = champion is None
            ctx = policy.decide(Context(
                from_state="none", to_state="promoted" if first else f"{strategy}[0]", cause="start",
                settings=policy_settings(settings, require_gate=not force), deployment={"candidate": version},
                others=others, gate_passed=info.passed_gate))
            if ctx.status == ABORT:
                audit.record(session, "rollout.refused", f"{model}@{version}",
                             {"reason": ctx.reason, "fired": ctx.fired, "strategy": strategy})
            else:
                d = repo.create_deployment(session, model=model, candidate=version, champion=champion,
                                           strategy=strategy, state="promoted" if first else "running", step=0,
                                           settings=settings.model_dump(mode="json"), now=now)
                d.reason = reason if force else None
                if first:
                    self.registry.set_champion(session, model, version, force=force,
                                               reason=reason or f"first deployment of {model}")
                    repo.put_routing(session, {model: single_table(model, version)})
                else:
                    repo.put_routing(session, {model: routing_for(d, settings)})
                outcome = self._record(session, d, "none", ctx, {}, now, kind="rollout.start")
        if ctx.status == ABORT:
            raise CheckFailed(f"rollout of {model}@{version} refused: {ctx.reason}",
                              hint="the champion keeps serving")
        self._notify(outcome)
        return outcome

    # -- analysis ---------------------------------------------------------------------------------
    def tick(self, now: float | None = None, *, force: bool = False) -> list[Outcome]:
        """Analyse every running rollout whose interval has passed (all of them with ``force``)."""
        now = self.clock() if now is None else now
        with self.store.write() as session:
            if not repo.acquire_lease(session, LEASE, self.owner, ttl=30.0, now=now):
                return []
            due = [(d.id, d.model, d.candidate, d.champion, d.window_started_at, d.settings_dict)
                   for d in repo.active_deployments(session) if d.state == "running"]
        outcomes = []
        for dep_id, model, candidate, champion, since, raw in due:
            settings = DeploySection.model_validate(raw)
            if not force and now - since < settings.interval_s:
                continue
            # one reader per model keeps the parts it read: the window grows, its old parts stay
            reader = self.readers.setdefault(model, RequestReader(self.requests_root, cache=True))
            requests, feedback = analysis.read_window(reader, self.feedback_root, model, since, now)
            metrics = analysis.analyse(requests, feedback, candidate, champion)
            outcome = self._analysed(dep_id, settings, metrics, now)
            if outcome is not None:
                outcomes.append(outcome)
        return outcomes

    def _analysed(self, dep_id: int, settings: DeploySection, metrics: dict[str, Any], now: float) -> Outcome | None:
        with self.store.write() as session:
            d = repo.lock_deployment(session, dep_id)
            if d is None or d.state != "running":
                return None
            last = len(phases(d.strategy, settings)) - 1
            to_state = "promoted" if d.step + 1 >= last else f"{d.strategy}[{d.step + 1}]"
            from_state = state_of(d)
            ctx = policy.decide(Context(from_state=from_state, to_state=to_state, cause="analysis",
                                        settings=policy_settings(settings), metrics=metrics, deployment=_view(d),
                                        failures=d.failures, successes=d.successes))
            d.failures, d.successes = ctx.failures, ctx.successes
            if ctx.status == WAIT:
                if policy.RequireMinSamples.name not in ctx.fired:
                    d.window_started_at = now  # a conclusive analysis starts a fresh window
                kind = "rollout.wait"
            elif ctx.status == REJECT:
                self._roll_back(session, d, settings, f"analysis: {ctx.reason}")
                kind = "rollout.rollback"
            elif ctx.status == ACCEPT:
                self._advance(session, d, settings, ctx.to_state, now, reason="analysis passed")
                kind = "rollout.promote" if ctx.to_state == "promoted" else "rollout.advance"
            else:
                kind = "rollout.abort"
            outcome = self._record(session, d, from_state, ctx, metrics, now, kind=kind)
        if ctx.status != WAIT:
            self._notify(outcome)
        return outcome

    # -- effects (inside the caller's transaction) ---------------------------------------------------
    def _advance(self, session: Session, d: repo.Deployment, settings: DeploySection, to_state: str, now: float,
                 reason: str) -> None:
        d.failures = d.successes = 0
        d.window_started_at = now
        d.updated_at = now
        if to_state == "promoted":
            d.state = "promoted"
            d.step = len(phases(d.strategy, settings)) - 1
            self.registry.set_champion(session, d.model, d.candidate, force=bool(d.reason),
                                       reason=d.reason or f"rollout #{d.id} promoted: {reason}")
            warm = [d.champion] if d.champion is not None else []
            repo.put_routing(session, {d.model: single_table(d.model, d.candidate, warm)})
        else:
            d.step = policy.step_of(to_state) or 0
            repo.put_routing(session, {d.model: routing_for(d, settings)})

    def _roll_back(self, session: Session, d: repo.Deployment, settings: DeploySection, reason: str) -> None:
        d.state = "rolled_back"
        d.reason = reason
        d.updated_at = self.clock()
        if d.champion is not None:
            repo.put_routing(session, {d.model: single_table(d.model, d.champion)})

    def _record(self, session: Session, d: repo.Deployment, from_state: str, ctx: Context, metrics: dict[str, Any],
                now: float, kind: str) -> Outcome:
        to_state = ctx.to_state if ctx.status != WAIT else from_state
        if ctx.status == REJECT and d.state == "rolled_back":
            to_state = "rolled_back"
        repo.add_decisions(session, [{"deployment_id": d.id, "at": now, "from_state": from_state,
                                      "to_state": ctx.to_state, "status": ctx.status, "reason": ctx.reason,
                                      "fired": ctx.fired, "metrics": metrics, "cause": ctx.cause}])
        audit.record(session, kind, f"{d.model}@{d.candidate}",
                     {"deployment": d.id, "from": from_state, "to": to_state, "status": ctx.status,
                      "reason": ctx.reason, "fired": ctx.fired, "metrics": metrics})
        return Outcome(d.id, d.model, from_state, to_state, ctx.status, ctx.reason, tuple(ctx.fired), metrics)

    def _notify(self, outcome: Outcome) -> None:
        event = {"kind": f"rollout.{outcome.to_state.split('[')[0]}", **outcome.to_dict()}
        try:
            self.notify(event)
        except Exception as exc:  # a webhook outage never undoes a committed transition
            log.warning("notification for rollout #%s failed: %s", outcome.deployment_id, exc)

    # -- manual commands --------------------------------------------------------------------------
    def _active(self, session: Session, model: str) -> repo.Deployment:
        active = repo.active_deployments(session, model)
        if not active:
            latest = repo.latest_deployments(session, model, limit=1)
            what = f"; the last one (#{latest[0].id}) is {latest[0].state}" if latest else ""
            raise NotFound(f"model {model!r} has no running or paused rollout{what}",
                           hint=f"start one with 'shipyard deploy {model}@VERSION --strategy canary'")
        return repo.lock_deployment(session, active[0].id)  # type: ignore[return-value]

    def act(self, model: str, action: str) -> Outcome:
        """``pause``, ``resume``, ``promote`` or ``abort`` the model's active rollout."""
        if action not in ("pause", "resume", "promote", "abort"):
            raise UsageError(f"unknown rollout action {action!r}", hint="use pause, resume, promote or abort")
        now = self.clock()
        with self.store.write() as session:
            d = self._active(session, model)
            settings = DeploySection.model_validate(d.settings_dict)
            from_state = state_of(d)
            to_state = {"pause": "paused", "resume": f"{d.strategy}[{d.step}]", "promote": "promoted",
                        "abort": "aborted"}[action]
            ctx = policy.decide(Context(from_state=from_state, to_state=to_state, cause="manual",
                                        settings=policy_settings(settings), deployment=_view(d)))
            if ctx.status == ABORT:
                raise CheckFailed(f"cannot {action} rollout #{d.id}: {ctx.reason}")
            if action == "pause":
                d.state = "paused"
            elif action == "resume":
                d.state = "running"
                d.window_started_at = now
            elif action == "promote":
                d.state = "running"
                self._advance(session, d, settings, "promoted", now, reason="promoted by hand")
            else:
                d.state = "aborted"
                d.reason = "aborted by hand"
                if d.champion is not None:
                    repo.put_routing(session, {d.model: single_table(d.model, d.champion)})
            d.updated_at = now
            outcome = self._record(session, d, from_state, ctx, {}, now, kind=f"rollout.{action}")
        self._notify(outcome)
        return outcome

    def rollback(self, model: str) -> Outcome:
        """Instant: abort the active rollout, or undo the last promotion (the old champion is warm)."""
        now = self.clock()
        with self.store.write() as session:
            active = repo.active_deployments(session, model)
            if active:
                d = repo.lock_deployment(session, active[0].id)
                assert d is not None
                from_state = state_of(d)
                d.state, d.reason, d.updated_at = "rolled_back", "rolled back by hand", now
                if d.champion is not None:
                    repo.put_routing(session, {model: single_table(model, d.champion)})
            else:
                promoted = [x for x in repo.latest_deployments(session, model, limit=50) if x.state == "promoted"]
                if not promoted or promoted[0].champion is None:
                    raise NotFound(f"model {model!r} has no rollout to roll back",
                                   hint="'shipyard rollout status' lists rollouts")
                d = promoted[0]
                from_state = "promoted"
                current = self.registry.champion(session, model)
                if current != d.candidate:
                    raise CheckFailed(f"the champion of {model!r} is version {current}, not {d.candidate} which "
                                      f"rollout #{d.id} promoted; refusing to guess what to roll back to")
                self.registry.set_champion(session, model, d.champion, force=True,
                                           reason=f"rollback of rollout #{d.id} ({model}@{d.candidate})")
                repo.put_routing(session, {model: single_table(model, d.champion, [d.candidate])})
                d.state, d.reason, d.updated_at = "rolled_back", "rolled back by hand after promotion", now
            ctx = Context(from_state=from_state, to_state="rolled_back", cause="manual", settings=Settings(),
                          deployment=_view(d))
            ctx.note("Rollback", f"rolled back by hand to version {d.champion}")
            outcome = self._record(session, d, from_state, ctx, {}, now, kind="rollout.rollback")
        self._notify(outcome)
        return outcome

    # -- reading -----------------------------------------------------------------------------------
    def status(self, model: str | None = None, limit: int = 10) -> list[dict[str, Any]]:
        with self.store.read() as session:
            rows = repo.latest_deployments(session, model, limit=limit)
            found = repo.decisions(session, [d.id for d in rows], limit=50 * max(1, len(rows)))
            tables = repo.routing_tables(session, {d.model for d in rows})
        by_dep: dict[int, list[Any]] = {}
        for dec in found:
            by_dep.setdefault(dec.deployment_id, []).append(dec)
        out = []
        for d in rows:
            decs = by_dep.get(d.id, [])
            out.append({**_view(d), "state": state_of(d), "created_at": d.created_at, "updated_at": d.updated_at,
                        "failures": d.failures, "successes": d.successes, "reason": d.reason,
                        "routing": tables.get(d.model),
                        "decisions": [{"at": x.at, "from": x.from_state, "to": x.to_state, "status": x.status,
                                       "reason": x.reason, "cause": x.cause, "fired": x.fired}
                                      for x in decs[-10:]]})
        return out


class ControllerLoop:
    """Runs ``Controller.tick`` every ``period`` seconds in a thread (inside the gateway)."""

    def __init__(self, controller: Controller, period: float = 1.0) -> None:
        self.controller = controller
        self.period = period
        self.errors = 0
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="shipyard-rollout", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.controller.tick()
            except Exception as exc:  # the store may be away for a while; try again next period
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("rollout controller tick failed: %s", self.last_error)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def build_controller(ws: Any, cfg: Any | None) -> Controller:
    """The rollout controller of a workspace, as every interface builds it: the project's store,
    the registry, the request log where ``deploy.request_log`` puts it, and the configured notifiers
    (``cfg`` is the project's ShipyardConfig, or None when it has no shipyard.yaml)."""
    from shipyard.rollout.ports import RegistryAdapter, notifier_for
    from shipyard.serving.requestlog import feedback_root, requests_root

    state, root = ws.project.state_dir, ws.project.root
    where = cfg.deploy.request_log if cfg is not None else None
    return Controller(ws.store, RegistryAdapter(), requests_root=requests_root(state, where, root),
                      feedback_root=feedback_root(state, where, root),
                      notify=notifier_for(list(cfg.notify) if cfg is not None else []))
