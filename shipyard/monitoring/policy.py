"""The monitor's decisions as small ordered rules over proposed transitions (STYLE F1).

Three proposals exist. ``fire``: a monitor rule's condition held on a window; may it fire now?
``retrain``: something (a rule, new data, a schedule, a person) asks to retrain a model; may a
retrain start now? ``approve``: a person approves a retrained, gated version; may its rollout
start (``shipyard triggers approve``)? Each policy lists its rules in priority order, run by the one rule engine
(``shipyard.rules``): a rule that governs the proposal may wait or reject it with a reason, and the
first one that does ends the decision. The context records which rules fired and their reasons. A
rule that raises aborts the decision with the error as the reason.
The rules are pure: the monitor writes the decision, its audit event and any trigger in one
transaction, and runs side effects (webhooks, the retrain itself) after commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from shipyard import rules
from shipyard.rules import ABORT, ACCEPT, REJECT, WAIT, Decision

__all__ = ["ABORT", "ACCEPT", "APPROVE_POLICY", "FIRE_POLICY", "REJECT", "RETRAIN_POLICY", "WAIT", "Context", "Rule",
           "decide"]


@dataclass
class Context(Decision):
    """A proposal and everything the rules may look at (the verdict and its reasons: ``Decision``)."""

    proposal: str  # "fire", "retrain" or "approve"
    model: str
    now: float
    # fire
    rule: str = ""
    for_windows: int = 1
    streak: int = 0
    cooldown_s: float = 0.0
    last_fired_at: float | None = None
    actions: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    # retrain
    kind: str = "rule"  # rule, new_data, schedule, manual
    source: str = ""
    in_flight: list[int] = field(default_factory=list)
    min_interval_s: float = 0.0
    last_started_at: float | None = None
    last_failed: bool = False
    new_data_since_failure: bool = False
    over_budget: str = ""  # why the project's daily or monthly budget is spent ("" when it is not)
    # approve
    trigger_id: int | None = None
    trigger_state: str = ""


class Rule(rules.Rule):
    """A monitor rule governs the proposals named in ``PROPOSALS``."""

    PROPOSALS: ClassVar[tuple[str, ...]] = ()

    def governs(self, ctx: Context) -> bool:  # type: ignore[override]
        return ctx.proposal in self.PROPOSALS


class DebounceWindows(Rule):
    """Fire only when the condition held in ``for`` consecutive windows (one noisy window pages no one)."""

    PROPOSALS = ("fire",)

    def before(self, ctx: Context) -> None:
        if ctx.streak < ctx.for_windows:
            ctx.wait(self.name, f"{ctx.rule}: held in {ctx.streak} of {ctx.for_windows} consecutive windows")


class Cooldown(Rule):
    """After a firing, the same rule stays quiet for its cooldown."""

    PROPOSALS = ("fire",)

    def before(self, ctx: Context) -> None:
        if ctx.last_fired_at is not None and ctx.now - ctx.last_fired_at < ctx.cooldown_s:
            left = ctx.cooldown_s - (ctx.now - ctx.last_fired_at)
            ctx.reject(self.name, f"{ctx.rule}: in cooldown for {left:.0f} s more (fired {ctx.now - ctx.last_fired_at:.0f} s ago)")


class OneRetrainInFlight(Rule):
    """At most one retrain per model at a time."""

    PROPOSALS = ("retrain",)

    def before(self, ctx: Context) -> None:
        if ctx.in_flight:
            ctx.reject(self.name, f"retrain #{ctx.in_flight[0]} of {ctx.model} is still in flight")


class DebounceRetrain(Rule):
    """Every trigger source goes through one debounce: no new retrain within ``min_interval``."""

    PROPOSALS = ("retrain",)

    def before(self, ctx: Context) -> None:
        if (ctx.kind != "manual" and ctx.min_interval_s > 0 and ctx.last_started_at is not None
                and ctx.now - ctx.last_started_at < ctx.min_interval_s):
            ctx.reject(self.name, f"the last retrain of {ctx.model} started {ctx.now - ctx.last_started_at:.0f} s ago "
                                    f"(min_interval {ctx.min_interval_s:.0f} s)")


class NoLoopAfterFailure(Rule):
    """A failed retrain is not retried on the same data by a rule or schedule: only new data or a person."""

    PROPOSALS = ("retrain",)

    def before(self, ctx: Context) -> None:
        if ctx.last_failed and ctx.kind in ("rule", "schedule") and not ctx.new_data_since_failure:
            ctx.reject(self.name, f"the last retrain of {ctx.model} failed and no new data arrived since; "
                                    "fix it and run 'shipyard triggers run' (or wait for new data)")


class WithinBudget(Rule):
    """A rule, new data or a schedule starts no retrain once a daily or monthly budget is spent; a
    person still may (``shipyard triggers run``)."""

    PROPOSALS = ("retrain",)

    def before(self, ctx: Context) -> None:
        if ctx.over_budget and ctx.kind != "manual":
            ctx.reject(self.name, f"over budget: {ctx.over_budget}")


class TriggerRetrain(Rule):
    """Accept: a retrain trigger is created (pending) and started after commit."""

    PROPOSALS = ("retrain",)

    def before(self, ctx: Context) -> None:
        ctx.accept(self.name, f"retrain {ctx.model} ({ctx.kind}: {ctx.source})")


class RequireAwaitingApproval(Rule):
    """Only a trigger that passed its gate and waits for a person can be approved."""

    PROPOSALS = ("approve",)

    def before(self, ctx: Context) -> None:
        if ctx.trigger_state != "awaiting_approval":
            ctx.reject(self.name, f"trigger #{ctx.trigger_id} is {ctx.trigger_state}, not awaiting approval")


class StartApprovedRollout(Rule):
    """Accept: the approval is recorded and the version's rollout starts after commit."""

    PROPOSALS = ("approve",)

    def before(self, ctx: Context) -> None:
        ctx.accept(self.name, f"trigger #{ctx.trigger_id} of {ctx.model} approved ({ctx.source})")


FIRE_POLICY: tuple[type[Rule], ...] = (DebounceWindows, Cooldown)
RETRAIN_POLICY: tuple[type[Rule], ...] = (OneRetrainInFlight, DebounceRetrain, NoLoopAfterFailure, WithinBudget,
                                           TriggerRetrain)
APPROVE_POLICY: tuple[type[Rule], ...] = (RequireAwaitingApproval, StartApprovedRollout)
POLICIES = {"fire": FIRE_POLICY, "retrain": RETRAIN_POLICY, "approve": APPROVE_POLICY}


def decide(ctx: Context, policy: tuple[type[Rule], ...] | None = None) -> Context:
    """Run the policy's rules in order over the proposal; the first wait or reject ends it."""
    chosen = policy if policy is not None else POLICIES[ctx.proposal]
    rules.decide(ctx, chosen, stop_on=rules.STOP_AT_NO)
    if not ctx.reasons:
        ctx.reasons.append(f"{ctx.rule} fired" if ctx.proposal == "fire" else "accepted")
    return ctx
