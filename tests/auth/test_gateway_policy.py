"""The gateway (``shipyard serve``) with token auth: predictions and feedback need gateway:invoke."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipyard.auth.cache import TokenCache
from shipyard.server.security import (
    Guard,
    check_routes,
    gateway_policy,
    gateway_public_paths,
    install,
)
from shipyard.serving.routing import single_table
from tests.auth.people import gateway_tokens
from tests.serving.conftest import Harness
from tests.serving.models import ROW, iris_classifier

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"), pytest.mark.anyio]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def gateway(store, tmp_path: Path):  # type: ignore[no-untyped-def]
    tokens = gateway_tokens(store)
    h = Harness(tmp_path / "gw", {("iris", 1): iris_classifier()}, {"iris": single_table("iris", 1)})
    check_routes(h.app, gateway_policy("penguins"), gateway_public_paths())
    install(h.app, Guard(gateway_policy("penguins"), TokenCache(store), public_paths=gateway_public_paths()))
    yield h, {k: {"Authorization": f"Bearer {v}"} for k, v in tokens.items()}
    h.close()


async def test_predictions_and_feedback_need_gateway_invoke(gateway) -> None:  # type: ignore[no-untyped-def]
    h, headers = gateway
    body = {"dataframe_records": [ROW]}
    assert (await h.client.post("/invocations", json=body)).status_code == 401
    assert (await h.client.post("/invocations", json=body, headers=headers["read_only"])).status_code == 403
    assert (await h.client.post("/invocations", json=body, headers=headers["other_project"])).status_code == 403
    ok = await h.client.post("/invocations", json=body, headers=headers["invoke"])
    assert ok.status_code == 200 and ok.json()["predictions"] == ["setosa"]
    assert (await h.client.post("/v1/models/iris:predict", json={"instances": [ROW]},
                                headers=headers["invoke"])).status_code == 200
    rid = ok.headers["x-request-id"]
    feedback = {"request_id": rid, "label": "setosa"}
    assert (await h.client.post("/v1/feedback", json=feedback)).status_code == 401
    assert (await h.client.post("/v1/feedback", json=feedback, headers=headers["invoke"])).status_code == 202
    assert h.rows().height == 2  # only the two allowed predictions were logged


async def test_probes_are_public_metadata_and_metrics_are_not(gateway) -> None:  # type: ignore[no-untyped-def]
    h, headers = gateway
    for path in ("/health", "/ready", "/v2/health/live", "/ping"):
        assert (await h.client.get(path)).status_code in (200, 503), path
    for path in ("/metrics", "/v2/models/iris", "/v2"):
        assert (await h.client.get(path)).status_code == 401, path
    assert (await h.client.get("/v2/models/iris", headers=headers["read_only"])).status_code == 200
