"""Each rule of the rollout policy alone, over the transitions it governs and those it does not."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.rollout import policy
from shipyard.rollout.policy import ABORT, ACCEPT, REJECT, WAIT, Context, Settings

THRESHOLDS = {"error_rate": (">", 0.01), "prediction_psi": (">", 0.2), "accuracy": ("<", 0.8)}


def make_context(from_: str, to: str, cause: str = "analysis", metrics: dict[str, Any] | None = None,
                 **kwargs: Any) -> Context:
    settings = kwargs.pop("settings", Settings(min_samples=100, consecutive_successes=2, failure_limit=1,
                                               thresholds=THRESHOLDS))
    return Context(from_state=from_, to_state=to, cause=cause, settings=settings, metrics=metrics or {},
                   deployment={"id": 7, "candidate": 3}, **kwargs)


def run_rule(rule: type[policy.Rule], ctx: Context) -> Context:
    return policy.decide(ctx, rules=(rule,))


GOOD = {"candidate_n": 500, "error_rate": 0.0, "prediction_psi": 0.01, "accuracy": 0.95}


class TestOneActiveRolloutPerModel:
    def test_aborts_a_second_rollout(self) -> None:
        other = {"id": 4, "model": "iris", "candidate": 2, "state": "canary[1]"}
        ctx = run_rule(policy.OneActiveRolloutPerModel, make_context("none", "canary[0]", "start", others=[other]))
        assert ctx.status == ABORT
        assert "rollout #4" in ctx.reason and "shipyard rollout abort iris" in ctx.reason
        assert ctx.fired == ["OneActiveRolloutPerModel"]

    def test_does_not_fire_without_another_rollout(self) -> None:
        ctx = run_rule(policy.OneActiveRolloutPerModel, make_context("none", "canary[0]", "start"))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_govern_analysis(self) -> None:
        other = {"id": 4, "model": "iris", "candidate": 2, "state": "canary[1]"}
        ctx = run_rule(policy.OneActiveRolloutPerModel, make_context("canary[0]", "canary[1]", others=[other]))
        assert ctx.status == ACCEPT and ctx.fired == []


class TestRequireGateVerdict:
    @pytest.mark.parametrize(("passed", "words"), [(None, "no gate verdict"), (False, "failed its gates")])
    def test_aborts_without_a_passing_verdict(self, passed: bool | None, words: str) -> None:
        ctx = run_rule(policy.RequireGateVerdict, make_context("none", "canary[0]", "start", gate_passed=passed))
        assert ctx.status == ABORT and words in ctx.reason

    def test_does_not_fire_with_a_passing_verdict(self) -> None:
        ctx = run_rule(policy.RequireGateVerdict, make_context("none", "canary[0]", "start", gate_passed=True))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_fire_when_forced(self) -> None:
        ctx = run_rule(policy.RequireGateVerdict, make_context("none", "canary[0]", "start", gate_passed=None,
                                                               settings=Settings(require_gate=False)))
        assert ctx.status == ACCEPT and ctx.fired == []


class TestRequireActive:
    @pytest.mark.parametrize("state", ["promoted", "rolled_back", "aborted"])
    def test_aborts_on_finished_rollouts(self, state: str) -> None:
        ctx = run_rule(policy.RequireActive, make_context(state, "paused", "manual"))
        assert ctx.status == ABORT and f"already {state}" in ctx.reason

    def test_resume_needs_a_paused_rollout(self) -> None:
        ctx = run_rule(policy.RequireActive, make_context("canary[1]", "canary[1]", "manual"))
        assert ctx.status == ABORT and "not paused" in ctx.reason

    def test_does_not_fire_on_pause_of_a_running_rollout(self) -> None:
        ctx = run_rule(policy.RequireActive, make_context("canary[1]", "paused", "manual"))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_govern_analysis(self) -> None:
        ctx = run_rule(policy.RequireActive, make_context("promoted", "paused", "analysis"))
        assert ctx.fired == []


class TestRequireMinSamples:
    def test_too_few_samples_is_inconclusive(self) -> None:
        ctx = run_rule(policy.RequireMinSamples, make_context("canary[0]", "canary[1]", metrics={"candidate_n": 37}))
        assert ctx.status == WAIT
        assert ctx.reason == "inconclusive: 37 of 100 candidate samples so far"

    def test_does_not_fire_with_enough_samples(self) -> None:
        ctx = run_rule(policy.RequireMinSamples, make_context("canary[0]", "canary[1]", metrics=GOOD))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_does_not_govern_manual_promotion(self) -> None:
        ctx = run_rule(policy.RequireMinSamples, make_context("canary[0]", "promoted", "manual",
                                                              metrics={"candidate_n": 0}))
        assert ctx.fired == []


class TestRollBackOnThreshold:
    @pytest.mark.parametrize(("metric", "value", "text"), [
        ("error_rate", 0.05, "error_rate 0.05 > 0.01"),
        ("prediction_psi", 0.9, "prediction_psi 0.9 > 0.2"),
        ("accuracy", 0.5, "accuracy 0.5 < 0.8"),
    ])
    def test_breach_rejects_to_rolling_back(self, metric: str, value: float, text: str) -> None:
        ctx = run_rule(policy.RollBackOnThreshold, make_context("canary[1]", "canary[2]",
                                                                metrics={**GOOD, metric: value}))
        assert ctx.status == REJECT and ctx.to_state == "rolling_back"
        assert ctx.reason == text

    def test_does_not_fire_within_thresholds(self) -> None:
        ctx = run_rule(policy.RollBackOnThreshold, make_context("canary[1]", "canary[2]", metrics=GOOD))
        assert ctx.status == ACCEPT and ctx.fired == []

    def test_missing_metric_is_not_a_breach(self) -> None:
        ctx = run_rule(policy.RollBackOnThreshold, make_context("canary[1]", "canary[2]",
                                                                metrics={"candidate_n": 500}))
        assert ctx.status == ACCEPT

    def test_does_not_govern_start(self) -> None:
        ctx = run_rule(policy.RollBackOnThreshold, make_context("none", "canary[0]", "start",
                                                                metrics={"error_rate": 1.0}))
        assert ctx.fired == []


class TestFailureLimit:
    def _rejected(self, failures: int) -> Context:
        ctx = make_context("canary[1]", "canary[2]", metrics={**GOOD, "error_rate": 0.5}, failures=failures)
        return policy.decide(ctx, rules=(policy.RollBackOnThreshold, policy.FailureLimit))

    def test_first_failure_within_the_limit_waits(self) -> None:
        ctx = self._rejected(0)
        assert ctx.status == WAIT and ctx.to_state == "canary[1]" and ctx.failures == 1
        assert "failure 1 of 1 tolerated" in ctx.reason

    def test_failure_beyond_the_limit_rolls_back(self) -> None:
        ctx = self._rejected(1)
        assert ctx.status == REJECT and ctx.to_state == "rolling_back" and ctx.failures == 2
        assert ctx.fired == ["RollBackOnThreshold", "FailureLimit"]

    def test_does_not_fire_on_an_advance(self) -> None:
        ctx = run_rule(policy.FailureLimit, make_context("canary[1]", "canary[2]", metrics=GOOD))
        assert ctx.status == ACCEPT and ctx.fired == [] and ctx.failures == 0


class TestConsecutiveSuccess:
    def test_first_success_waits_for_the_second(self) -> None:
        ctx = run_rule(policy.ConsecutiveSuccess, make_context("canary[0]", "canary[1]", metrics=GOOD))
        assert ctx.status == WAIT and ctx.successes == 1
        assert ctx.reason == "1 of 2 consecutive successful analyses"

    def test_does_not_fire_once_enough_successes(self) -> None:
        ctx = run_rule(policy.ConsecutiveSuccess, make_context("canary[0]", "canary[1]", metrics=GOOD, successes=1))
        assert ctx.status == ACCEPT and ctx.successes == 2
        assert ctx.fired == []

    def test_does_not_govern_a_rejected_transition(self) -> None:
        ctx = make_context("canary[0]", "canary[1]", metrics=GOOD)
        ctx.status = REJECT
        ctx.to_state = "rolling_back"
        assert policy.ConsecutiveSuccess().governs(ctx) is False


class TestPolicy:
    def test_rule_order(self) -> None:
        assert [r.name for r in policy.POLICY] == [
            "OneActiveRolloutPerModel", "RequireGateVerdict", "RequireActive", "RequireMinSamples",
            "RollBackOnThreshold", "FailureLimit", "ConsecutiveSuccess"]

    def test_inconclusive_wins_over_a_breach(self) -> None:
        ctx = policy.decide(make_context("canary[0]", "canary[1]", metrics={"candidate_n": 5, "error_rate": 1.0}))
        assert ctx.status == WAIT and ctx.fired == ["RequireMinSamples"]

    def test_full_policy_advances_after_two_successes(self) -> None:
        ctx = policy.decide(make_context("canary[2]", "promoted", metrics=GOOD, successes=1))
        assert ctx.status == ACCEPT and ctx.to_state == "promoted"

    def test_a_rule_that_raises_aborts_with_its_error(self) -> None:
        class Broken(policy.Rule):
            name = "Broken"

            def governs(self, ctx: Context) -> bool:
                return True

            def before(self, ctx: Context) -> None:
                raise ValueError("bad metric")

        ctx = policy.decide(make_context("canary[0]", "canary[1]"), rules=(Broken,))
        assert ctx.status == ABORT and "rule Broken failed: ValueError: bad metric" in ctx.reason

    @pytest.mark.parametrize(("a", "b", "adv"), [("canary[0]", "canary[1]", True), ("canary[2]", "promoted", True),
                                                  ("canary[1]", "canary[1]", False), ("paused", "promoted", False)])
    def test_is_advance(self, a: str, b: str, adv: bool) -> None:
        assert policy.is_advance(a, b) is adv
