"""The gateway's CPU per prediction, in the request log, and a deployment's cost from it."""

from __future__ import annotations

import time
from typing import Any

import pytest

from shipyard.tracking.cost import PriceTable, deployment_usage
from tests.serving.models import ROW, Fitted, iris_classifier

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.anyio]

BURN_S = 0.02


class Burner(Fitted):
    """The iris model, plus BURN_S of CPU on its own thread per call (a costlier candidate)."""

    def __init__(self) -> None:
        base = iris_classifier()
        super().__init__(base.estimator, base._features)

    def predict_proba(self, frame: Any) -> Any:
        start = time.thread_time()
        while time.thread_time() - start < BURN_S:
            pass
        return super().predict_proba(frame)


def canary(weight: float) -> dict[str, Any]:
    return {"model": "iris", "strategy": "canary", "champion": 1, "candidate": 2, "weight": weight,
            "shadow_percent": 0.0, "sticky": {"header": "x-user", "key": None}, "warm": [1, 2], "deployment": 1,
            "candidate_timeout_ms": 5000.0}


async def test_each_version_is_charged_its_own_model_cpu_and_a_share_of_the_rest(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier(), ("iris", 2): Burner()}, {"iris": canary(0.5)})
    h.log.flush()  # start a fresh window: what the set-up used is not charged to any prediction
    before = time.process_time()
    for i in range(40):
        r = await h.client.post("/invocations", json={"dataframe_records": [ROW]}, headers={"x-user": f"u{i}"})
        assert r.status_code == 200
    rows = h.rows()
    used_s = time.process_time() - before
    assert rows["gateway_cpu_ms"].null_count() == 0
    # the window's whole process CPU is charged, no more (the flush itself ran after the mark)
    assert BURN_S * (rows["version"] == 2).sum() <= rows["gateway_cpu_ms"].sum() / 1000 <= used_s
    usage = {u.version: u for u in deployment_usage(h.log.root, "iris")}
    assert usage[1].predictions + usage[2].predictions == 40 and usage[1].predictions > 0 and usage[2].predictions > 0
    assert usage[2].cpu_per_1k >= BURN_S * 1000 > usage[1].cpu_per_1k  # the candidate's burn is its own
    per_1k, total = usage[2].costs(PriceTable(cpu_hour=3.6, currency="EUR"))
    assert per_1k.amount == pytest.approx(usage[2].cpu_per_1k / 1000) and total.currency == "EUR"
    unpriced, _ = usage[2].costs(PriceTable(memory_gb_hour=1.0))
    assert unpriced.amount is None and "unpriced" in unpriced.text()


async def test_a_request_log_written_before_the_cpu_column_is_counted_but_unmeasured(harness) -> None:  # type: ignore[no-untyped-def]
    h = harness({("iris", 1): iris_classifier()}, {"iris": canary(0.0)})
    for _ in range(3):
        assert (await h.client.post("/invocations", json={"dataframe_records": [ROW, ROW]})).status_code == 200
    old = h.rows().drop("gateway_cpu_ms")  # as an older gateway wrote it
    part = next(h.log.root.rglob("part-*.parquet"))
    old.write_parquet(part)
    [usage] = deployment_usage(h.log.root, "iris")
    assert (usage.predictions, usage.measured, usage.cpu_per_1k) == (6, 0, None)
    assert usage.costs(PriceTable(cpu_hour=1.0))[0].text() == "unpriced (no gateway CPU recorded)"
