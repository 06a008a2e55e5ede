"""Rule conditions: parsed without eval, unknown metrics refused at config load with their line."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shipyard.conditions import eval_when, parse_when, when_metrics
from shipyard.config import MonitorRule, load_config
from shipyard.cron import cron_next, parse_cron
from shipyard.errors import ConfigError


def config_error(tmp_path: Path, text: str) -> str:
    """The message of the ConfigError that loading ``text`` as shipyard.yaml raises."""
    path = tmp_path / "shipyard.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(info.value)


class TestParse:
    def test_comparison(self) -> None:
        assert parse_when("drift_share > 0.3") == ("cmp", "drift_share", ">", 0.3)

    def test_feature_metric_and_boolean_structure(self) -> None:
        tree = parse_when("feature.bill_length_mm.psi > 0.2 and (accuracy < 0.85 or not error_rate >= 0.05)")
        assert when_metrics(tree) == ["feature.bill_length_mm.psi", "accuracy", "error_rate"]
        assert tree[0] == "and" and tree[2][0] == "or"

    @pytest.mark.parametrize("text", ["__import__('os').system('x') > 1", "drift_share >", "drift_share 0.3",
                                      "(drift_share > 0.3", "drift_share > 0.3 extra", "", "drift_share > abc"])
    def test_refuses_anything_else(self, text: str) -> None:
        with pytest.raises(ValueError):
            parse_when(text)


class TestEval:
    def test_holds_and_does_not_hold(self) -> None:
        tree = parse_when("drift_share > 0.3 and accuracy < 0.85")
        assert eval_when(tree, {"drift_share": 0.5, "accuracy": 0.8}) is True
        assert eval_when(tree, {"drift_share": 0.1, "accuracy": 0.8}) is False

    def test_missing_metric_is_no_verdict(self) -> None:
        tree = parse_when("accuracy < 0.85")
        assert eval_when(tree, {"rows": 10}) is None
        # but a known False side decides an 'and'
        assert eval_when(parse_when("drift_share > 0.3 and accuracy < 0.85"), {"drift_share": 0.1}) is False


class TestRuleConfig:
    def test_defaults_and_alias(self) -> None:
        rule = MonitorRule.model_validate({"when": "drift_share > 0.3", "for": 2, "actions": ["alert", "retrain"]})
        assert rule.for_windows == 2 and rule.cooldown_s == 3600 and rule.label == "drift_share > 0.3"

    @pytest.mark.parametrize("metric", ["feature.bill_length_mm.psi", "feature.island.unseen_share", "estimated_accuracy"])
    def test_known_metrics(self, metric: str) -> None:
        rule = MonitorRule(when=f"{metric} > 0.1")
        assert when_metrics(rule.tree) == [metric]  # the feature metric is kept whole, not split at dots
        assert eval_when(rule.tree, {metric: 0.2}) is True and eval_when(rule.tree, {metric: 0.05}) is False
        assert eval_when(rule.tree, {"drift_share": 0.9}) is None  # another metric says nothing

    def test_unknown_feature_stat(self) -> None:
        with pytest.raises(ValueError, match="stat one of"):
            MonitorRule(when="feature.bill_length_mm.pzi > 0.2")

    def test_unknown_metric_is_a_config_error_naming_the_line(self, tmp_path: Path) -> None:
        message = config_error(tmp_path, "monitor:\n  rules:\n    - when: drift_share > 0.3\n"
                                         "    - when: acuracy < 0.85\n      for: 2\n")
        assert "shipyard.yaml:4:" in message and "monitor.rules.1.when" in message
        assert "unknown metric 'acuracy'" in message and "accuracy" in message

    def test_unknown_action_is_refused(self, tmp_path: Path) -> None:
        path = tmp_path / "shipyard.yaml"
        path.write_text("monitor:\n  rules:\n    - when: drift_share > 0.3\n      actions: [page]\n")
        with pytest.raises(ConfigError, match=r"shipyard\.yaml:4:"):
            load_config(path)


class TestSchedules:
    def test_cron_fields(self) -> None:
        assert parse_cron(" */15  3 * * 1-5") == "*/15 3 * * 1-5"
        monday_2am = datetime(2026, 11, 30, 2, 50, tzinfo=UTC).timestamp()
        times = [monday_2am]
        for _ in range(5):
            times.append(cron_next("*/15 3 * * 1-5", times[-1]))
        assert [datetime.fromtimestamp(t, UTC).strftime("%a %H:%M") for t in times[1:]] == [
            "Mon 03:00", "Mon 03:15", "Mon 03:30", "Mon 03:45", "Tue 03:00"]

    def test_day_of_month_or_day_of_week_when_both_are_restricted(self) -> None:
        """cron: "0 0 13 * 5" is every 13th AND every Friday, not only Friday the 13th."""
        friday_4th = datetime(2026, 12, 4, 12, 0, tzinfo=UTC).timestamp()
        first = datetime.fromtimestamp(cron_next("0 0 13 * 5", friday_4th), UTC)
        second = datetime.fromtimestamp(cron_next("0 0 13 * 5", first.timestamp()), UTC)
        assert (first.date().isoformat(), second.date().isoformat()) == ("2026-12-11", "2026-12-13")

    def test_time_zone_moves_the_wall_clock_with_daylight_saving(self) -> None:
        winter = datetime(2026, 1, 10, tzinfo=UTC).timestamp()
        summer = datetime(2026, 7, 10, tzinfo=UTC).timestamp()
        assert datetime.fromtimestamp(cron_next("0 3 * * *", winter, "Europe/Paris"), UTC).hour == 2
        assert datetime.fromtimestamp(cron_next("0 3 * * *", summer, "Europe/Paris"), UTC).hour == 1
        assert datetime.fromtimestamp(cron_next("0 3 * * *", summer), UTC).hour == 3  # default UTC

    def test_unknown_time_zone_is_a_config_error_naming_file_line_and_key(self, tmp_path: Path) -> None:
        message = config_error(tmp_path, "monitor:\n  retrain:\n    cron: 0 3 * * *\n    timezone: Europe/Pariss\n")
        assert "shipyard.yaml:4:" in message and "monitor.retrain.timezone" in message
        assert "Europe/Pariss" in message and "IANA" in message

    @pytest.mark.parametrize("bad", ["* * *", "61 * * * *", "a * * * *", "*/0 * * * *"])
    def test_bad_cron(self, bad: str) -> None:
        with pytest.raises(ValueError):
            parse_cron(bad)
