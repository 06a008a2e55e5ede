"""The rollout policy: small rules, in order, over a proposed transition (STYLE F1).

The controller never writes a deployment's state directly. It proposes ``(from, to)`` with a cause
(``start``, ``analysis`` or ``manual``) and the analysis of the live window; ``decide`` runs the
rules of ``POLICY`` in order on the one rule engine (``shipyard.rules``). Each rule governs some transitions and may accept (do nothing), wait
(stay where we are: *inconclusive*), reject to another state (``rolling_back``) or abort, always
with a reason. The result names every rule that fired. Rules are pure: they read values and
return a verdict; the controller stores it with its audit event in one transaction.

States: ``<strategy>[i]`` (running at step i), ``paused``, ``promoted``, ``rolling_back``,
``rolled_back``, ``aborted``; ``none`` before a rollout exists.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from shipyard import rules as engine
from shipyard.rules import ABORT, ACCEPT, REJECT, WAIT, Decision

__all__ = ["ABORT", "ACCEPT", "POLICY", "REJECT", "WAIT", "Context", "Rule", "Settings", "decide"]
TERMINAL = ("promoted", "rolled_back", "aborted")
_STEP = re.compile(r"^[a-z]+\[(\d+)\]$")


def step_of(state: str) -> int | None:
    """``canary[2]`` -> 2; anything else -> None."""
    match = _STEP.match(state)
    return int(match.group(1)) if match else None


def is_advance(from_state: str, to_state: str) -> bool:
    """A move forward: to a later step, or to ``promoted``."""
    here, there = step_of(from_state), step_of(to_state)
    if to_state == "promoted":
        return here is not None
    return here is not None and there is not None and there > here


@dataclass(frozen=True)
class Settings:
    """What the rules need from ``deploy:`` (plain values)."""

    min_samples: int = 200
    consecutive_successes: int = 1
    failure_limit: int = 0
    thresholds: dict[str, tuple[str, float]] = field(default_factory=dict)
    require_gate: bool = True


@dataclass
class Context(Decision):
    """One proposed transition and what the rules decided about it (verdict and reasons: ``Decision``)."""

    from_state: str
    to_state: str
    cause: str
    settings: Settings
    metrics: dict[str, Any] = field(default_factory=dict)
    deployment: dict[str, Any] = field(default_factory=dict)
    others: list[dict[str, Any]] = field(default_factory=list)
    failures: int = 0
    successes: int = 0
    gate_passed: bool | None = None

    @property
    def proposed(self) -> str:
        return self.to_state

    def reject_to(self, rule: str, to_state: str, reason: str) -> None:
        """Reject the proposal in favour of ``to_state`` (e.g. ``rolling_back``)."""
        self.to_state = to_state
        self.reject(rule, reason)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) or "accepted"


class Rule(engine.Rule):
    """Base: ``governs`` picks the transitions a rule looks at; ``before`` decides."""

    def governs(self, ctx: Context) -> bool:  # type: ignore[override]
        raise TypeError(f"{type(self).__name__} does not define governs()")

    def before(self, ctx: Context) -> None:  # type: ignore[override]
        raise TypeError(f"{type(self).__name__} does not define before()")


class OneActiveRolloutPerModel(Rule):
    """A model has at most one running or paused rollout."""

    def governs(self, ctx: Context) -> bool:
        return ctx.cause == "start"

    def before(self, ctx: Context) -> None:
        if ctx.others:
            other = ctx.others[0]
            ctx.abort(self.name, f"model {other['model']!r} already has rollout #{other['id']} of version "
                      f"{other['candidate']} ({other['state']}); finish it or run "
                      f"'shipyard rollout abort {other['model']}' first")


class RequireGateVerdict(Rule):
    """A candidate without a passing gate verdict does not start (unless forced)."""

    def governs(self, ctx: Context) -> bool:
        return ctx.cause == "start" and ctx.settings.require_gate

    def before(self, ctx: Context) -> None:
        if ctx.gate_passed is not True:
            why = "has no gate verdict" if ctx.gate_passed is None else "failed its gates"
            ctx.abort(self.name, f"version {ctx.deployment.get('candidate')} {why}; run 'shipyard gate' first "
                      "or deploy with --force --reason \"...\"")


class RequireActive(Rule):
    """Manual commands act on running or paused rollouts only, and only where they make sense."""

    def governs(self, ctx: Context) -> bool:
        return ctx.cause == "manual"

    def before(self, ctx: Context) -> None:
        state = ctx.from_state
        if state in TERMINAL:
            ctx.abort(self.name, f"rollout #{ctx.deployment.get('id')} is already {state}")
        elif ctx.to_state == "paused" and state == "paused":
            ctx.abort(self.name, f"rollout #{ctx.deployment.get('id')} is already paused")
        elif ctx.to_state != "paused" and step_of(ctx.to_state) is not None and state != "paused":
            ctx.abort(self.name, f"rollout #{ctx.deployment.get('id')} is not paused ({state})")


class RequireMinSamples(Rule):
    """Too little traffic is inconclusive, not failed: wait for ``min_samples`` candidate answers."""

    def governs(self, ctx: Context) -> bool:
        return ctx.cause == "analysis" and is_advance(ctx.from_state, ctx.to_state)

    def before(self, ctx: Context) -> None:
        n = int(ctx.metrics.get("candidate_n") or 0)
        if n < ctx.settings.min_samples:
            ctx.wait(self.name, f"inconclusive: {n} of {ctx.settings.min_samples} candidate samples so far")


def breached(op: str, value: float, limit: float) -> bool:
    return {">": value > limit, ">=": value >= limit, "<": value < limit, "<=": value <= limit}[op]


class RollBackOnThreshold(Rule):
    """Any configured metric beyond its threshold rejects the advance to ``rolling_back``."""

    def governs(self, ctx: Context) -> bool:
        return ctx.cause == "analysis" and is_advance(ctx.from_state, ctx.to_state)

    def before(self, ctx: Context) -> None:
        found = []
        for metric, (op, limit) in ctx.settings.thresholds.items():
            value = ctx.metrics.get(metric)
            if value is None:
                continue
            if breached(op, float(value), limit):
                found.append(f"{metric} {float(value):.4g} {op} {limit:g}")
        if found:
            ctx.reject_to(self.name, "rolling_back", ", ".join(found))


class FailureLimit(Rule):
    """Tolerate up to ``failure_limit`` failed analyses (each restarts the window) before rolling back."""

    def governs(self, ctx: Context) -> bool:
        return ctx.cause == "analysis" and ctx.to_state == "rolling_back"

    def before(self, ctx: Context) -> None:
        ctx.failures += 1
        ctx.successes = 0
        if ctx.failures <= ctx.settings.failure_limit:
            ctx.status = WAIT
            ctx.to_state = ctx.from_state
            ctx.note(self.name, f"failure {ctx.failures} of {ctx.settings.failure_limit} tolerated; "
                     f"staying at {ctx.from_state}")
        else:
            ctx.note(self.name, f"failure {ctx.failures} exceeds the limit of {ctx.settings.failure_limit}")


class ConsecutiveSuccess(Rule):
    """Advance only after ``consecutive_successes`` passing analyses in a row."""

    def governs(self, ctx: Context) -> bool:
        return ctx.cause == "analysis" and is_advance(ctx.from_state, ctx.to_state) and ctx.status == ACCEPT

    def before(self, ctx: Context) -> None:
        ctx.successes += 1
        if ctx.successes < ctx.settings.consecutive_successes:
            ctx.wait(self.name, f"{ctx.successes} of {ctx.settings.consecutive_successes} consecutive "
                     "successful analyses")


POLICY: tuple[type[Rule], ...] = (
    OneActiveRolloutPerModel,
    RequireGateVerdict,
    RequireActive,
    RequireMinSamples,
    RollBackOnThreshold,
    FailureLimit,
    ConsecutiveSuccess,
)


def decide(ctx: Context, rules: tuple[type[Rule], ...] = POLICY) -> Context:
    """Run the rules in order; a WAIT or ABORT ends the evaluation (a REJECT runs on, so that
    ``FailureLimit`` can look at it). A rule that raises aborts."""
    engine.decide(ctx, rules, stop_on=engine.STOP_AT_WAIT)
    if ctx.status == ACCEPT and not ctx.fired:
        ctx.reasons.append(f"{ctx.from_state} -> {ctx.to_state}")
    return ctx
