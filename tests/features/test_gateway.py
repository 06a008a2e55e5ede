"""The gateway with enrichment: a keyed request is served with online features, the request log
stores what the model saw, a stale feature is a 422 naming it."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from shipyard.features.config import ServeFeatures
from shipyard.serving.features import enricher_for
from shipyard.serving.routing import single_table
from tests.features.feast_repo import SQLITE_ONLINE
from tests.features.test_online import REFS, fresh_repo
from tests.serving.conftest import Harness
from tests.serving.models import Fitted

pytestmark = [pytest.mark.xdist_group("feast"), pytest.mark.anyio, pytest.mark.filterwarnings("ignore::UserWarning")]
FEATURES = ["conv_rate", "avg_daily_trips"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_keyed_requests_are_enriched_logged_and_stale_refused(tmp_path):
    fresh_repo(tmp_path / "repo", SQLITE_ONLINE, "drivers")
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.random(200), rng.integers(0, 50, 200)])
    model = Fitted(LogisticRegression().fit(X, (X[:, 0] > 0.5).astype(int)), FEATURES)
    h = Harness(tmp_path / "gw", {("drivers", 1): model}, {"drivers": single_table("drivers", 1)})
    try:
        h.gateway.enricher = enricher_for(tmp_path, "repo", ServeFeatures(entity_key="driver_id", refs=REFS))
        r = await h.client.post("/invocations", json={"dataframe_records": [{"driver_id": 1001}, {"driver_id": 1004}]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == [0, 1]  # conv_rate 0.25 and 0.75 read online
        r = await h.client.post("/invocations", json={"dataframe_records": [{"driver_id": 1002}]})
        assert r.status_code == 422 and r.json()["field"] == "conv_rate", r.text
        r = await h.client.post("/invocations", json={"dataframe_records": [{"conv_rate": 0.9, "avg_daily_trips": 3}]})
        assert r.status_code == 200 and r.json()["predictions"] == [1], r.text
        logged = h.rows()
        ok = logged.filter(logged["status"] == "ok")
        assert ok["feature.conv_rate"].to_list() == [0.25, 0.75, 0.9]
        assert ok["feature.avg_daily_trips"].to_list() == [10, 40, 3]
    finally:
        h.close()
