"""The one rule engine (shipyard.rules) that rollout and monitoring decisions run on."""

from __future__ import annotations

from dataclasses import dataclass

from shipyard import rules
from shipyard.monitoring import policy as monitor_policy
from shipyard.rollout import policy as rollout_policy
from shipyard.rules import ABORT, ACCEPT, REJECT, WAIT, Decision, Rule, decide


@dataclass
class Proposal(Decision):
    amount: int


class TooBig(Rule):
    def governs(self, ctx: Proposal) -> bool:  # type: ignore[override]
        return ctx.amount > 10

    def before(self, ctx: Proposal) -> None:  # type: ignore[override]
        ctx.reject(self.name, f"{ctx.amount} > 10")


class Counted(Rule):
    def before(self, ctx: Proposal) -> None:  # type: ignore[override]
        ctx.note(self.name, "counted")


class Broken(Rule):
    def before(self, ctx: Proposal) -> None:  # type: ignore[override]
        raise KeyError("limit")


def test_rules_run_in_order_and_every_reason_is_kept() -> None:
    ctx = decide(Proposal(amount=20), (TooBig, Counted), stop_on=rules.STOP_AT_WAIT)
    assert ctx.status == REJECT and ctx.fired == ["TooBig", "Counted"]
    assert ctx.reasons == ["20 > 10", "counted"] and ctx.reason == "20 > 10; counted"


def test_the_first_no_ends_a_policy_that_stops_there() -> None:
    ctx = decide(Proposal(amount=20), (TooBig, Counted), stop_on=rules.STOP_AT_NO)
    assert ctx.status == REJECT and ctx.fired == ["TooBig"]


def test_a_rule_that_does_not_govern_says_nothing() -> None:
    ctx = decide(Proposal(amount=5), (TooBig,))
    assert ctx.status == ACCEPT and ctx.fired == [] and ctx.reasons == []


def test_a_rule_that_raises_aborts_and_later_rules_do_not_run() -> None:
    ctx = decide(Proposal(amount=5), (Broken, Counted))
    assert ctx.status == ABORT and ctx.fired == ["Broken"] and "rule Broken failed: KeyError" in ctx.reason


def test_wait_is_a_verdict_too() -> None:
    ctx = Proposal(amount=1)
    ctx.wait("Later", "not yet")
    assert (ctx.status, ctx.fired, ctx.reason) == (WAIT, ["Later"], "not yet")


def test_rollout_and_monitoring_decide_on_this_engine() -> None:
    assert issubclass(rollout_policy.Rule, Rule) and issubclass(monitor_policy.Rule, Rule)
    assert issubclass(rollout_policy.Context, Decision) and issubclass(monitor_policy.Context, Decision)
    assert all(issubclass(r, Rule) for r in (*rollout_policy.POLICY, *monitor_policy.FIRE_POLICY,
                                             *monitor_policy.RETRAIN_POLICY))
    assert rollout_policy.RollBackOnThreshold.name == "RollBackOnThreshold"
