"""The monitor's policy rules, each alone over the proposals it governs (STYLE F2)."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.monitoring import policy
from shipyard.monitoring.policy import (
    ABORT,
    ACCEPT,
    REJECT,
    WAIT,
    Context,
    Cooldown,
    DebounceRetrain,
    DebounceWindows,
    NoLoopAfterFailure,
    OneRetrainInFlight,
    RequireAwaitingApproval,
    StartApprovedRollout,
    TriggerRetrain,
)

NOW = 1_700_000_000.0


def make_context(proposal: str, **values: Any) -> Context:
    return Context(proposal, "penguins", NOW, **values)


def enter(rule: type[policy.Rule], ctx: Context) -> Context:
    return policy.decide(ctx, (rule,))


class TestDebounceWindows:
    def test_waits_until_the_condition_held_for_n_windows(self) -> None:
        ctx = enter(DebounceWindows, make_context("fire", rule="drift", for_windows=2, streak=1))
        assert ctx.status == WAIT and ctx.fired == ["DebounceWindows"]
        assert "1 of 2" in ctx.reason

    def test_accepts_on_the_nth_window(self) -> None:
        ctx = enter(DebounceWindows, make_context("fire", rule="drift", for_windows=2, streak=2))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_fire_on_retrain_proposals(self) -> None:
        ctx = enter(DebounceWindows, make_context("retrain", for_windows=5, streak=0))
        assert ctx.status == ACCEPT and ctx.fired == []


class TestCooldown:
    def test_rejects_inside_the_cooldown(self) -> None:
        ctx = enter(Cooldown, make_context("fire", rule="drift", cooldown_s=3600, last_fired_at=NOW - 60))
        assert ctx.status == REJECT and "cooldown" in ctx.reason and ctx.fired == ["Cooldown"]

    def test_accepts_after_the_cooldown(self) -> None:
        ctx = enter(Cooldown, make_context("fire", rule="drift", cooldown_s=3600, last_fired_at=NOW - 3601))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_fire_when_never_fired(self) -> None:
        ctx = enter(Cooldown, make_context("fire", rule="drift", cooldown_s=3600, last_fired_at=None))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_fire_on_retrain_proposals(self) -> None:
        ctx = enter(Cooldown, make_context("retrain", cooldown_s=3600, last_fired_at=NOW))
        assert ctx.status == ACCEPT and ctx.fired == []


class TestOneRetrainInFlight:
    def test_rejects_a_second_retrain(self) -> None:
        ctx = enter(OneRetrainInFlight, make_context("retrain", in_flight=[4]))
        assert ctx.status == REJECT and "#4" in ctx.reason

    def test_does_not_fire_when_nothing_is_in_flight(self) -> None:
        ctx = enter(OneRetrainInFlight, make_context("retrain", in_flight=[]))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_fire_on_fire_proposals(self) -> None:
        ctx = enter(OneRetrainInFlight, make_context("fire", in_flight=[4], streak=1))
        assert ctx.status == ACCEPT and ctx.fired == []


class TestDebounceRetrain:
    @pytest.mark.parametrize("kind", ["rule", "new_data", "schedule"])
    def test_rejects_within_min_interval_for_every_source(self, kind: str) -> None:
        ctx = enter(DebounceRetrain, make_context("retrain", kind=kind, min_interval_s=600, last_started_at=NOW - 10))
        assert ctx.status == REJECT and "min_interval" in ctx.reason

    def test_does_not_fire_for_a_person(self) -> None:
        ctx = enter(DebounceRetrain, make_context("retrain", kind="manual", min_interval_s=600, last_started_at=NOW - 10))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_fire_after_the_interval(self) -> None:
        ctx = enter(DebounceRetrain, make_context("retrain", min_interval_s=600, last_started_at=NOW - 601))
        assert ctx.status == ACCEPT and ctx.fired == []


class TestNoLoopAfterFailure:
    @pytest.mark.parametrize("kind", ["rule", "schedule"])
    def test_rejects_a_retry_on_the_same_data(self, kind: str) -> None:
        ctx = enter(NoLoopAfterFailure, make_context("retrain", kind=kind, last_failed=True))
        assert ctx.status == REJECT and "failed" in ctx.reason

    def test_does_not_fire_when_new_data_arrived(self) -> None:
        ctx = enter(NoLoopAfterFailure, make_context("retrain", kind="rule", last_failed=True, new_data_since_failure=True))
        assert ctx.status == ACCEPT and ctx.fired == []

    @pytest.mark.parametrize("kind", ["manual", "new_data"])
    def test_does_not_fire_for_a_person_or_new_data(self, kind: str) -> None:
        ctx = enter(NoLoopAfterFailure, make_context("retrain", kind=kind, last_failed=True))
        assert ctx.status == ACCEPT and ctx.fired == []


class TestTriggerRetrain:
    def test_accepts_and_says_why(self) -> None:
        ctx = enter(TriggerRetrain, make_context("retrain", kind="new_data", source="path data/raw.csv"))
        assert ctx.status == ACCEPT and ctx.fired == ["TriggerRetrain"] and "data/raw.csv" in ctx.reason

    def test_does_not_fire_on_fire_proposals(self) -> None:
        ctx = enter(TriggerRetrain, make_context("fire", streak=1))
        assert ctx.fired == []


class TestRequireAwaitingApproval:
    @pytest.mark.parametrize("state", ["pending", "running", "rolling_out", "failed", "promoted"])
    def test_rejects_a_trigger_that_is_not_waiting(self, state: str) -> None:
        ctx = enter(RequireAwaitingApproval, make_context("approve", trigger_id=7, trigger_state=state))
        assert ctx.status == REJECT and ctx.fired == ["RequireAwaitingApproval"]
        assert ctx.reason == f"trigger #7 is {state}, not awaiting approval"

    def test_does_not_fire_on_a_waiting_trigger_or_other_proposals(self) -> None:
        assert enter(RequireAwaitingApproval, make_context("approve", trigger_id=7,
                                                           trigger_state="awaiting_approval")).fired == []
        assert enter(RequireAwaitingApproval, make_context("retrain", trigger_state="failed")).fired == []


class TestStartApprovedRollout:
    def test_accepts_and_says_who_approved(self) -> None:
        ctx = policy.decide(make_context("approve", trigger_id=7, trigger_state="awaiting_approval",
                                         source="shipyard triggers approve"))
        assert ctx.status == ACCEPT and ctx.fired == ["StartApprovedRollout"]
        assert "#7" in ctx.reason and "shipyard triggers approve" in ctx.reason

    def test_does_not_fire_on_retrain_proposals(self) -> None:
        assert enter(StartApprovedRollout, make_context("retrain")).fired == []


def test_policy_order_is_pinned() -> None:
    assert (DebounceWindows, Cooldown) == policy.FIRE_POLICY
    assert (OneRetrainInFlight, DebounceRetrain, NoLoopAfterFailure, policy.WithinBudget, TriggerRetrain) == policy.RETRAIN_POLICY
    assert (RequireAwaitingApproval, StartApprovedRollout) == policy.APPROVE_POLICY


def test_first_rule_that_says_no_wins() -> None:
    ctx = policy.decide(make_context("retrain", in_flight=[1], min_interval_s=600, last_started_at=NOW))
    assert ctx.status == REJECT and ctx.fired == ["OneRetrainInFlight"]


def test_a_rule_that_raises_aborts_the_decision() -> None:
    class Broken(policy.Rule):
        PROPOSALS = ("fire",)

        def before(self, ctx: Context) -> None:
            raise RuntimeError("boom")

    ctx = policy.decide(make_context("fire", streak=1), (Broken, DebounceWindows))
    assert ctx.status == ABORT and "boom" in ctx.reason and ctx.fired == ["Broken"]


class TestWithinBudget:
    @pytest.mark.parametrize("kind", ["rule", "schedule", "new_data"])
    def test_rejects_an_automatic_retrain_once_a_budget_is_spent(self, kind: str) -> None:
        ctx = policy.decide(make_context("retrain", kind=kind, over_budget="per_day budget: spent 5.1 of 5 USD (102%)"))
        assert ctx.status == REJECT and ctx.reason == "over budget: per_day budget: spent 5.1 of 5 USD (102%)"

    def test_a_person_may_still_retrain(self) -> None:
        ctx = policy.decide(make_context("retrain", kind="manual", over_budget="per_day budget: spent 6 of 5 USD"))
        assert ctx.status == ACCEPT

    def test_does_not_fire_within_budget(self) -> None:
        assert policy.decide(make_context("retrain", kind="schedule")).status == ACCEPT
