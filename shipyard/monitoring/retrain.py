"""One retrain: run the pipeline on the newest data, register, gate against the champion, roll out.

Each step runs the real ``shipyard`` command in the project (a subprocess, so a crashing stage
cannot take the monitor down, and each step is exactly what a person would type): ``shipyard run``
(or ``monitor.retrain.command``), ``shipyard models register NAME --json``, ``shipyard gate
NAME@V --json``, then ``shipyard deploy NAME@V --strategy S --json`` which hands the canary to the
gateway's rollout controller. The trigger row records every step with its timing; its state moves
``pending -> running -> rolling_out`` (then ``promoted`` or ``rolled_back``, followed by the
monitor), or ends in ``failed`` (the pipeline or registration broke: alert, no rollout),
``gated_out`` (the gate said no: alert, the champion stays) or ``awaiting_approval``
(``monitor.retrain.approval: required``; ``shipyard triggers approve ID`` deploys it).
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shipyard import audit
from shipyard.config import ShipyardConfig
from shipyard.durations import parse_duration
from shipyard.registry.core import CHAMPION
from shipyard.store import monitoring as repo

if TYPE_CHECKING:
    from shipyard.store import Store

log = logging.getLogger("shipyard.monitoring")
Alert = Callable[[dict[str, Any]], Any]


def shipyard_command() -> list[str]:
    """How to run the installed ``shipyard`` (the script next to this Python, else ``python -c``)."""
    script = Path(sys.executable).with_name("shipyard")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from shipyard.cli.main import run; run()"]


@dataclass(frozen=True)
class RetrainPlan:
    """What a retrain needs from the config, as values: the pipeline command, its time limit, the
    rollout strategy and whether a person approves before the rollout starts."""

    command: str | tuple[str, ...] = "shipyard run"
    timeout_s: float = 3600.0
    strategy: str = "canary"
    approval_required: bool = False

    @classmethod
    def from_config(cls, config: ShipyardConfig) -> RetrainPlan:
        """``monitor.retrain`` over ``deploy`` (strategy; approval required by either)."""
        retrain, deploy = config.monitor.retrain, config.deploy
        command = retrain.command if isinstance(retrain.command, str) else tuple(retrain.command)
        return cls(command, parse_duration(retrain.timeout), retrain.strategy or deploy.strategy,
                   "required" in (retrain.approval, deploy.approval))


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


class Retrainer:
    """Runs triggers of one project; ``alert`` receives the events worth a notification."""

    def __init__(self, store: Store, root: Path, plan: RetrainPlan, alert: Alert,
                 env: dict[str, str] | None = None) -> None:
        self.store = store
        self.root = Path(root)
        self.plan = plan
        self.alert = alert
        self.env = {**os.environ, **(env or {}), "CI": "true"}
        # stages that call `shipyard` get the same installation as the monitor
        bindir = str(Path(sys.executable).parent)
        self.env["PATH"] = bindir + os.pathsep + self.env.get("PATH", "")
        self.timeout = plan.timeout_s

    # -- steps ------------------------------------------------------------------------------------
    def _cmd(self, args: list[str]) -> tuple[int, str, str, float]:
        start = time.time()
        try:
            proc = subprocess.run(args, cwd=self.root, env=self.env, capture_output=True, text=True,
                                  timeout=self.timeout, check=False)
        except subprocess.TimeoutExpired as exc:
            return 124, "", f"timed out after {self.timeout:.0f} s: {exc}", start
        except OSError as exc:
            return 127, "", f"cannot start {args[0]}: {exc}", start
        return proc.returncode, proc.stdout, proc.stderr, start

    def _pipeline_args(self) -> list[str]:
        command = self.plan.command
        args = shlex.split(command) if isinstance(command, str) else list(command)
        if args and args[0] == "shipyard":
            args = shipyard_command() + args[1:]
        return args

    def _step(self, trigger_id: int, steps: list[dict[str, Any]], name: str, args: list[str]) -> tuple[bool, str, int]:
        code, out, err, start = self._cmd(args)
        steps.append({"step": name, "started_at": start, "finished_at": time.time(), "exit_code": code,
                      "command": " ".join(shlex.quote(a) for a in args[-6:]),
                      "output": _tail(err if code else out, 20)})
        with self.store.write() as session:
            repo.update_trigger(session, trigger_id, result={**self._result(session, trigger_id), "steps": steps})
        return code == 0, out, code

    def _result(self, session: Any, trigger_id: int) -> dict[str, Any]:
        row = session.get(repo.Trigger, trigger_id)
        return row.result_dict if row is not None else {}

    def _finish(self, trigger_id: int, state: str, reason: str, **extra: Any) -> dict[str, Any]:
        with self.store.write() as session:
            trigger = session.get(repo.Trigger, trigger_id)
            result = {**(trigger.result_dict if trigger else {}), **extra}
            repo.update_trigger(session, trigger_id, state=state, reason=reason, result=result,
                                finished_at=time.time() if state not in ("rolling_out", "awaiting_approval") else None)
            audit.record(session, f"monitor.retrain.{state}", f"trigger/{trigger_id}",
                         {"model": trigger.model if trigger else None, "reason": reason, **extra})
            model = trigger.model if trigger else ""
        return {"kind": f"retrain.{state}", "model": model, "trigger": trigger_id, "reason": reason,
                "severity": "critical" if state == "failed" else "warning" if state == "gated_out" else "info",
                **{k: v for k, v in extra.items() if not isinstance(v, dict | list)}}

    # -- the whole run ----------------------------------------------------------------------------
    def run(self, trigger_id: int) -> str:
        """Run trigger ``trigger_id`` to its next resting state and return that state."""
        with self.store.write() as session:
            claimed = session.get(repo.Trigger, trigger_id, with_for_update=True)
            if claimed is None or claimed.state != "pending":
                return claimed.state if claimed is not None else "missing"  # another monitor took it
            trigger = repo.update_trigger(session, trigger_id, state="running", started_at=time.time())
            model = trigger.model
            audit.record(session, "monitor.retrain.running", f"trigger/{trigger_id}",
                         {"model": model, "kind": trigger.kind, "source": trigger.source})
        steps: list[dict[str, Any]] = []
        ok, _, code = self._step(trigger_id, steps, "pipeline", self._pipeline_args())
        if not ok:
            event = self._finish(trigger_id, "failed", f"the pipeline failed (exit {code}); no rollout, the champion stays",
                                 failed_step="pipeline")
            self.alert({**event, "output": steps[-1]["output"][-500:]})
            return "failed"
        ok, out, code = self._step(trigger_id, steps, "register", [*shipyard_command(), "models", "register", model, "--json"])
        registered = _json(out) if ok else {}
        version = registered.get("version")
        if not ok or version is None:
            event = self._finish(trigger_id, "failed", f"registering the new model failed (exit {code}); no rollout",
                                 failed_step="register")
            self.alert({**event, "output": steps[-1]["output"][-500:]})
            return "failed"
        if registered.get("created") is False and CHAMPION in registered.get("aliases", []):
            # same data, same params: the pipeline rebuilt the champion byte for byte; a rollout of it
            # would be refused, and retrying before the data changes would only repeat this
            self.alert(self._finish(trigger_id, "unchanged", f"the retrained model is the champion's own ({model}@{version}); "
                                    "nothing to roll out until the training data changes", version=version))
            return "unchanged"
        ok, out, code = self._step(trigger_id, steps, "gate", [*shipyard_command(), "gate", f"{model}@{version}", "--json"])
        verdict = _json(out)
        if not ok:
            failed = [c.get("name") for c in verdict.get("checks", []) if c.get("passed") is False]
            reason = (f"{model}@{version} failed the gate ({', '.join(str(f) for f in failed) or f'exit {code}'}); "
                      "the champion stays")
            self.alert(self._finish(trigger_id, "gated_out", reason, version=version, failed_checks=failed))
            return "gated_out"
        with self.store.write() as session:
            repo.update_trigger(session, trigger_id, result={**self._result(session, trigger_id), "version": version,
                                                             "gate": "passed"})
        if self.plan.approval_required:
            self.alert(self._finish(trigger_id, "awaiting_approval",
                                    f"{model}@{version} passed the gate; waiting for 'shipyard triggers approve {trigger_id}'",
                                    version=version))
            return "awaiting_approval"
        return self.deploy(trigger_id)

    def deploy(self, trigger_id: int) -> str:
        """Start the rollout of the trigger's gated version (after approval, or straight away)."""
        with self.store.read() as session:
            trigger = session.get(repo.Trigger, trigger_id)
            model, result = trigger.model, trigger.result_dict  # type: ignore[union-attr]
        version = result.get("version")
        steps = list(result.get("steps", []))
        strategy = self.plan.strategy
        ok, out, code = self._step(trigger_id, steps, "deploy", [*shipyard_command(), "deploy", f"{model}@{version}",
                                                                 "--strategy", strategy, "--json"])
        if not ok:
            self.alert(self._finish(trigger_id, "failed", f"starting the {strategy} of {model}@{version} failed (exit {code})",
                                    failed_step="deploy", version=version))
            return "failed"
        decision = _json(out)
        deployment = decision.get("deployment")
        to_state = str(decision.get("to", ""))
        if to_state == "promoted":
            self.alert(self._finish(trigger_id, "promoted", f"{model}@{version} promoted", version=version,
                                    deployment=deployment, strategy=strategy))
            return "promoted"
        self.alert(self._finish(trigger_id, "rolling_out", f"{strategy} of {model}@{version} started", version=version,
                                deployment=deployment, strategy=strategy))
        return "rolling_out"


def _json(text: str) -> dict[str, Any]:
    text = text.strip()
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        start = text.find("{")
        try:
            value = json.loads(text[start:]) if start >= 0 else {}
        except json.JSONDecodeError:
            return {}
    return value if isinstance(value, dict) else {}
