"""Gate checks over real models trained on the penguins data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from shipyard.config import Gate
from shipyard.errors import ConfigError, InputError
from shipyard.gates import evaluate
from shipyard.gates.checks import Subject
from shipyard.models import load_model, package_model, save_model
from tests.models.conftest import NUMERIC


def _fit(frame, features, kind="forest"):  # type: ignore[no-untyped-def]
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = [f for f in features if f in ("island", "sex")]
    nums = [f for f in features if f not in cats]
    est = RandomForestClassifier(n_estimators=10, max_depth=4, random_state=0) if kind == "forest" else LogisticRegression(max_iter=500)
    model = Pipeline([("f", ColumnTransformer([("n", StandardScaler(), nums), ("c", OneHotEncoder(handle_unknown="ignore"), cats)])),
                      ("m", est)])
    return model.fit(frame[features], frame["species"])


@pytest.fixture(scope="module")
def split(penguin_frame):  # type: ignore[no-untyped-def]
    train = penguin_frame.sample(frac=0.7, random_state=1)
    return train, penguin_frame.drop(train.index).reset_index(drop=True)


@pytest.fixture
def subjects(tmp_path: Path, objects, split):  # type: ignore[no-untyped-def]
    train, _ = split
    out = {}
    for name, feats, kind in (("good", [*NUMERIC, "island", "sex"], "forest"), ("worse", ["bill_depth_mm"], "logistic")):
        save_model(_fit(train, feats, kind), tmp_path / name, "sklearn")
        packaged = package_model(objects, tmp_path / name, "sklearn", sample=train[feats])
        out[name] = Subject(f"penguins@{1 if name == 'good' else 2}", load_model(objects, packaged.model_oid, "sklearn"),
                            packaged.size_bytes, {"accuracy": 0.97 if name == "good" else 0.7})
    return out


def G(**kw) -> Gate:  # type: ignore[no-untyped-def]
    return Gate(**kw)


def test_first_model_thresholds_only_and_says_so(subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    verdict = evaluate([G(metric="accuracy", min=0.9), G(metric="f1_macro", vs="champion", max_drop=0.01),
                        G(signature="compatible")], subjects["good"], None, frame=test, target="species")
    assert verdict.passed
    assert [c.status for c in verdict.checks] == ["pass", "skipped", "skipped"]
    assert "No champion yet: compared with thresholds only." in verdict.notes
    assert "thresholds only" in verdict.to_markdown()


def test_metric_not_logged_is_an_error_naming_it(subjects) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="names metric 'acurracy', which was not logged for penguins@1") as info:
        evaluate([G(metric="acurracy", min=0.9)], subjects["good"])
    assert "accuracy" in str(info.value)


def test_threshold_failure(subjects) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate([G(metric="accuracy", min=0.9)], subjects["worse"])
    assert not verdict.passed
    assert verdict.failed[0].reason == "accuracy = 0.7 misses min 0.9"


def test_worse_candidate_fails_champion_comparison(subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    verdict = evaluate([G(metric="f1_macro", vs="champion", max_drop=0.01), G(signature="compatible")],
                       subjects["worse"], subjects["good"], frame=test, target="species")
    comparison, signature = verdict.checks
    assert comparison.passed is False
    assert "vs champion penguins@1" in comparison.reason and "95% CI" in comparison.reason
    assert comparison.details["ci_high"] < 0
    assert signature.passed  # fewer columns: callers of the champion can still call it
    md = verdict.to_markdown()
    assert "**FAILED**" in md and "f1_macro vs champion (max_drop 0.01)" in md


def test_same_model_passes_comparison_and_min_gain_fails(subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    verdict = evaluate([G(metric="accuracy", vs="champion", max_drop=0.0),
                        G(metric="accuracy", vs="champion", min_gain=0.01, name="must improve")],
                       subjects["good"], Subject("penguins@0", subjects["good"].model), frame=test, target="species")
    assert [c.passed for c in verdict.checks] == [True, False]


def test_fairness_latency_size(subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    verdict = evaluate([G(fairness="equalized_odds_difference", group="sex", max=0.5),
                        G(fairness="demographic_parity_difference", group="sex", max=0.0),
                        G(latency_p99_ms=60_000, rows=20), G(max_size_mb=0.000001)],
                       subjects["good"], frame=test, target="species")
    eod, dpd, latency, size = verdict.checks
    assert eod.passed and 0 <= eod.value <= 0.5
    assert dpd.passed is False and dpd.value > 0
    assert {g["group"] for g in eod.details["groups"]} == {"female", "male"}
    assert latency.passed and set(latency.value) == {"p50_ms", "p99_ms"}
    assert size.passed is False
    assert "### Fairness by sex" in verdict.to_markdown()


def test_fairness_unknown_group_column(subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    with pytest.raises(ConfigError, match="groups by 'gender'"):
        evaluate([G(fairness="demographic_parity_difference", group="gender", max=0.1)], subjects["good"],
                 frame=test, target="species")


def test_eval_set_required(subjects) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="needs an evaluation set"):
        evaluate([G(latency_p99_ms=10)], subjects["good"])


def test_signature_incompatible(subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    verdict = evaluate([G(signature="compatible")], subjects["good"], subjects["worse"], frame=test, target="species")
    assert verdict.checks[0].passed is False
    assert "needs column 'bill_length_mm'" in verdict.checks[0].reason


def test_behavioural_suite(tmp_path: Path, subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    (tmp_path / "behavior.yaml").write_text(
        "invariance:\n"
        "  - {name: year does not matter, column: year, values: [2007, 2009]}\n"
        "  - {name: sex decides nothing, column: sex, values: [male, female], max_changed: 0.0}\n"
        "directional:\n"
        "  - {name: longer flippers are not less Gentoo, column: flipper_length_mm, delta: 15, class: Gentoo}\n"
        "minimum:\n"
        "  - name: typical Gentoo\n"
        "    input: {bill_length_mm: 47.5, bill_depth_mm: 15.0, flipper_length_mm: 217, body_mass_g: 5000, island: Biscoe, sex: male}\n"
        "    expect: Gentoo\n"
        "  - {name: wrong on purpose, input: {bill_length_mm: 47.5, bill_depth_mm: 15.0, flipper_length_mm: 217, body_mass_g: 5000, island: Biscoe, sex: male}, expect: Adelie}\n")
    verdict = evaluate([G(behavioral="behavior.yaml")], subjects["good"], frame=test, target="species", root=tmp_path)
    check = verdict.checks[0]
    results = {r["name"]: r["passed"] for r in check.details["tests"]}
    assert results["year does not matter"] and results["typical Gentoo"]
    assert not results["wrong on purpose"]
    assert check.passed is False and "wrong on purpose (predicted 'Gentoo', expected 'Adelie')" in check.reason


def test_behavioural_file_errors_have_lines(tmp_path: Path, subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    (tmp_path / "b.yaml").write_text("invariance:\n  - {name: x, column: year, valuez: [1]}\n")
    with pytest.raises(ConfigError, match=r"b.yaml:2:\d+: invariance.0.valuez: unknown key"):
        evaluate([G(behavioral="b.yaml")], subjects["good"], frame=test, target="species", root=tmp_path)
    with pytest.raises(ConfigError, match="does not exist"):
        evaluate([G(behavioral="missing.yaml")], subjects["good"], frame=test, target="species", root=tmp_path)


def _request_log(folder: Path, frame: pd.DataFrame, predictions) -> Path:  # type: ignore[no-untyped-def]
    part = folder / "requests" / "model=penguins" / "date=2026-11-24" / "hour=10"
    part.mkdir(parents=True)
    n = len(frame)
    table = pl.DataFrame({
        "request_id": [f"r{i}" for i in range(n)], "model": ["penguins"] * n, "version": [1] * n,
        "route": ["primary"] * n, "status": ["ok"] * (n - 1) + ["error"], "latency_ms": [1.0] * n,
        **{f"feature.{c}": frame[c].tolist() for c in [*NUMERIC, "island", "sex"]},
        "prediction": [str(p) for p in predictions],
    })
    table.write_parquet(part / "part-0.parquet")
    return folder / "requests" / "model=penguins"


def test_replay_against_champion_and_recorded_predictions(tmp_path: Path, subjects, split) -> None:  # type: ignore[no-untyped-def]
    _, test = split
    recorded = subjects["good"].model.predict(test)
    _request_log(tmp_path, test, recorded)
    rel = "requests/model=penguins"
    first = evaluate([G(replay=rel, max_disagreement=0.0)], subjects["good"], frame=test, target="species", root=tmp_path)
    assert first.checks[0].passed and "recorded in the log" in first.checks[0].reason
    assert first.checks[0].details["requests"] == len(test) - 1  # the error row is left out
    worse = evaluate([G(replay=rel, max_disagreement=0.05)], subjects["worse"], subjects["good"], frame=test,
                     target="species", root=tmp_path)
    assert worse.checks[0].passed is False and "champion penguins@1" in worse.checks[0].reason
    assert worse.checks[0].value > 0.05


def test_replay_bad_inputs(tmp_path: Path, subjects) -> None:  # type: ignore[no-untyped-def]
    pl.DataFrame({"x": [1]}).write_parquet(tmp_path / "plain.parquet")
    with pytest.raises(InputError, match=r"no feature\.<name> columns"):
        evaluate([G(replay="plain.parquet", max_disagreement=0.1)], subjects["good"], root=tmp_path)
    with pytest.raises(Exception, match="outside"):
        evaluate([G(replay="../x.parquet", max_disagreement=0.1)], subjects["good"], root=tmp_path)


def test_no_gates_configured(subjects) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="no gates are configured"):
        evaluate([], subjects["good"])


def test_gate_json_round_trip(subjects) -> None:  # type: ignore[no-untyped-def]
    verdict = evaluate([G(metric="accuracy", min=0.5, max=1.0)], subjects["good"])
    doc = verdict.to_dict()
    assert doc["passed"] is True and doc["checks"][0]["threshold"] == {"min": 0.5, "max": 1.0}
    assert np.isclose(doc["checks"][0]["value"], 0.97)
