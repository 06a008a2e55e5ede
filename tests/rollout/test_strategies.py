"""The rollout strategies are listed once (config.ROLLOUT_STRATEGIES); the controller and the gateway
follow that list."""

from __future__ import annotations

import pytest

from shipyard.config import ROLLOUT_STRATEGIES, DeploySection
from shipyard.errors import InputError, UsageError
from shipyard.rollout.controller import phases
from shipyard.serving.routing import STRATEGIES, single_table, strategy_for


@pytest.mark.parametrize("name", ROLLOUT_STRATEGIES)
def test_every_rollout_strategy_has_phases_and_a_gateway_strategy(name: str) -> None:
    steps = phases(name, DeploySection())
    assert steps[-1]["weight"] == 100.0  # every strategy ends with the promotion
    table = {**single_table("m", 1), "strategy": name, "candidate": 2, "weight": 10.0}
    assert strategy_for(table).name == name


def test_the_gateway_knows_only_the_rollout_strategies_and_single() -> None:
    assert set(STRATEGIES) == {"single", *ROLLOUT_STRATEGIES}


def test_unknown_strategies_are_refused_with_the_known_ones() -> None:
    with pytest.raises(UsageError, match="canary, bluegreen, shadow, ab"):
        phases("linear", DeploySection())
    with pytest.raises(InputError, match="unknown routing strategy 'linear'"):
        strategy_for({"model": "m", "strategy": "linear"})
