"""Window metrics: drift against the training profile, quality, traffic, realized and estimated accuracy."""

from __future__ import annotations

import polars as pl
import pytest

from shipyard.monitoring.metrics import window_metrics
from tests.monitoring.logs import reference_profile, traffic

START = 1_700_000_000.0


@pytest.fixture(scope="module")
def reference():  # type: ignore[no-untyped-def]
    return reference_profile()


def judge(frame: pl.DataFrame, reference, **kw):  # type: ignore[no-untyped-def]
    return window_metrics(frame, reference, min_rows=30, target="species", **kw)


class TestDrift:
    @pytest.mark.parametrize("rows", [100, 500, 2000])
    def test_in_distribution_is_quiet(self, reference, rows: int) -> None:  # type: ignore[no-untyped-def]
        verdict, m = judge(traffic(rows, seed=5, start=START), reference)
        assert verdict == "ok" and m["drift_share"] == 0.0 and m["dataset_drift"] == 0

    def test_shifted_numeric_features_drift(self, reference) -> None:  # type: ignore[no-untyped-def]
        verdict, m = judge(traffic(300, seed=6, shift=1.5, start=START), reference)
        assert verdict == "drift"
        assert set(m["drifted"]) == {"bill_length_mm", "flipper_length_mm"}
        assert m["drift_share"] == pytest.approx(2 / 3, abs=1e-4)
        assert m["feature.bill_length_mm.psi"] > 0.2 and m["feature.bill_length_mm.verdict"] == "DRIFT"
        assert m["feature.island.verdict"] == "NO"

    def test_no_reference_gives_traffic_only(self) -> None:
        verdict, m = window_metrics(traffic(100, seed=1, start=START), None, min_rows=30)
        assert verdict == "no_reference" and "drift_share" not in m and m["rows"] == 100


class TestEmptyWindow:
    def test_too_few_rows_is_no_verdict_and_not_drift(self, reference) -> None:  # type: ignore[no-untyped-def]
        verdict, m = judge(traffic(10, seed=1, shift=3.0, start=START), reference)
        assert verdict == "empty" and "drift_share" not in m and "no verdict" in m["note"]

    def test_zero_rows(self, reference) -> None:  # type: ignore[no-untyped-def]
        frame = traffic(5, seed=1, start=START).clear()
        verdict, m = judge(frame, reference)
        assert verdict == "empty" and m == {"rows": 0, "note": m["note"]}


class TestQuality:
    def test_nulls_out_of_range_and_unseen_categories(self, reference) -> None:  # type: ignore[no-untyped-def]
        frame = traffic(400, seed=2, start=START, null_every=10, unseen_every=20)
        frame = frame.with_columns(pl.when(pl.int_range(pl.len()) % 25 == 0).then(9999.0)
                                   .otherwise(pl.col("feature.flipper_length_mm")).alias("feature.flipper_length_mm"))
        _, m = judge(frame, reference)
        assert m["null_share"] == pytest.approx(40 / (400 * 3), abs=1e-6)
        assert m["feature.island.unseen_share"] == pytest.approx(20 / 400)
        assert m["unseen_category_share"] == pytest.approx(20 / 400)
        assert m["feature.flipper_length_mm.out_of_range_share"] >= 16 / 400
        assert m["out_of_range_share"] >= 16 / 400

    def test_missing_feature_counted(self, reference) -> None:  # type: ignore[no-untyped-def]
        _, m = judge(traffic(200, seed=3, start=START).drop("feature.island"), reference)
        assert m["missing_features"] == 1


class TestTraffic:
    def test_errors_and_latency(self, reference) -> None:  # type: ignore[no-untyped-def]
        _, m = judge(traffic(200, seed=3, start=START, error_every=10), reference)
        assert m["errors"] == 20 and m["error_rate"] == pytest.approx(0.1)
        assert 0 < m["latency_p50_ms"] <= m["latency_p95_ms"] <= m["latency_p99_ms"]

    def test_shadow_rows_are_left_out(self, reference) -> None:  # type: ignore[no-untyped-def]
        frame = pl.concat([traffic(100, seed=3, start=START), traffic(50, seed=4, start=START, route="shadow")])
        _, m = judge(frame, reference)
        assert m["rows"] == 100


class TestPerformance:
    def test_realized_accuracy_and_f1_from_feedback(self, reference) -> None:  # type: ignore[no-untyped-def]
        frame = traffic(100, seed=8, start=START)
        preds = frame["prediction"].to_list()
        truth = [p if i % 4 else ("Gentoo" if p != "Gentoo" else "Adelie") for i, p in enumerate(preds)]
        labels = pl.DataFrame({"request_id": frame["request_id"][:80], "label": truth[:80]})
        _, m = judge(frame, reference, labels=labels)
        assert m["labelled"] == 80
        assert m["accuracy"] == pytest.approx(60 / 80)
        assert 0 < m["f1"] < 1

    def test_without_labels_accuracy_is_estimated_and_labelled_so(self, reference) -> None:  # type: ignore[no-untyped-def]
        _, m = judge(traffic(100, seed=8, start=START, score=0.8), reference)
        assert m["labelled"] == 0 and "accuracy" not in m
        assert m["estimated_accuracy"] == pytest.approx(0.8) and m["estimate"] == "cbpe"

    def test_regression_rmse(self, reference) -> None:  # type: ignore[no-untyped-def]
        frame = traffic(50, seed=9, start=START).with_columns(pl.lit(2.0).alias("prediction"))
        labels = pl.DataFrame({"request_id": frame["request_id"], "label": [1.0] * 50})
        _, m = window_metrics(frame, reference, min_rows=30, labels=labels)
        assert m["rmse"] == pytest.approx(1.0) and m["mae"] == pytest.approx(1.0)
