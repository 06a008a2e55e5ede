"""The paired bootstrap agrees with scikit-learn's metrics and behaves like an interval should."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, mean_absolute_error

from shipyard.errors import InputError
from shipyard.gates.stats import paired_bootstrap


@pytest.fixture
def labels():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    y = rng.choice(["a", "b", "c"], 2000)
    good = np.where(rng.random(2000) < 0.9, y, rng.choice(["a", "b", "c"], 2000))
    bad = np.where(rng.random(2000) < 0.6, y, rng.choice(["a", "b", "c"], 2000))
    return y, good, bad


@pytest.mark.parametrize(("metric", "fn"), [
    ("accuracy", accuracy_score),
    ("f1_macro", lambda y, p: f1_score(y, p, average="macro")),
    ("f1_weighted", lambda y, p: f1_score(y, p, average="weighted")),
    ("balanced_accuracy", balanced_accuracy_score),
])
def test_point_values_match_sklearn(labels, metric, fn) -> None:  # type: ignore[no-untyped-def]
    y, good, bad = labels
    result = paired_bootstrap(metric, y, good, bad, resamples=200)
    assert result.candidate == pytest.approx(fn(y, good))
    assert result.baseline == pytest.approx(fn(y, bad))
    assert result.low <= result.delta <= result.high


def test_identical_models_have_a_zero_interval(labels) -> None:  # type: ignore[no-untyped-def]
    y, good, _ = labels
    result = paired_bootstrap("f1_macro", y, good, good)
    assert result.delta == result.low == result.high == 0


def test_clear_difference_excludes_zero(labels) -> None:  # type: ignore[no-untyped-def]
    y, good, bad = labels
    result = paired_bootstrap("accuracy", y, bad, good, confidence=0.99)
    assert result.high < 0
    gain, _low, high = result.gain
    assert gain < 0 and high < 0


def test_regression_metric_direction() -> None:
    rng = np.random.default_rng(0)
    y = rng.random(500)
    close, far = y + rng.normal(0, 0.01, 500), y + rng.normal(0, 0.5, 500)
    result = paired_bootstrap("mae", y, close, far, resamples=300)
    assert result.candidate == pytest.approx(mean_absolute_error(y, close))
    assert not result.greater_is_better
    assert result.gain[1] > 0  # lower error is a gain


def test_unknown_metric_and_empty_set() -> None:
    with pytest.raises(InputError, match="metric 'acuracy' cannot be compared") as info:
        paired_bootstrap("acuracy", [1], [1], [1])
    assert "accuracy" in str(info.value)
    with pytest.raises(InputError, match="empty"):
        paired_bootstrap("accuracy", [], [], [])


def test_label_codes_follow_first_appearance_without_pandas() -> None:
    """The codes pandas' factorize gave (first appearance), so seeded bootstraps keep their draws."""
    import pandas as pd

    from shipyard.gates.stats import _encode

    y = np.asarray(["setosa", "virginica", "setosa"], dtype=object)
    a = np.asarray(["virginica", "versicolor", "setosa"])
    b = np.asarray([1, 0, 2])  # another kind: compared as text
    codes, k = _encode(y, a, b)
    expected, labels = pd.factorize(np.concatenate([y, a, b]).astype(str), sort=False)
    assert k == len(labels) == 6 and codes.tolist() == expected.tolist()
