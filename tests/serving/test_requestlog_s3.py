"""The request log and feedback labels in an object store (a local moto S3 server, through s3fs):
written by the gateway, read back by a rollout analysis window and by the monitor's windows."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from shipyard.errors import InputError
from shipyard.serving.logstore import LogFolder, log_location
from tests.objects.test_s3 import s3, s3_client  # noqa: F401  (the moto S3 server fixture)
from tests.serving.models import IRIS_FEATURES, iris
from tests.serving.project_models import register_iris

BUCKET_URL = "s3://objects/team/requests"


def keys(s3: dict[str, str], prefix: str) -> list[str]:  # noqa: F811
    listed = s3_client(s3).list_objects_v2(Bucket="objects", Prefix=prefix)
    return sorted(o["Key"] for o in listed.get("Contents", []))


def test_a_part_is_one_put_and_a_second_reader_lists_it_at_once(s3: dict[str, str]) -> None:  # noqa: F811
    writer = LogFolder.of(BUCKET_URL)
    reader = LogFolder.of(BUCKET_URL + "/")  # another handle, as another process would hold
    assert reader.files("model=*/*.parquet") == [] and not reader.is_dir()
    first = (writer / "model=iris").write_parquet(pa.table({"x": [1, 2, 3]}))
    assert reader.files("model=*/*.parquet") == [first]  # no stale listing from the first call
    second = (writer / "model=iris").write_parquet(pa.table({"x": [4]}))
    assert reader.files("model=*/*.parquet") == sorted([first, second])
    assert reader.folders("model=*") == ["model=iris"]
    # nothing but the finished parts was ever stored: no temporary object to be seen half written
    assert [k.rsplit("/", 1)[1].startswith("part-") for k in keys(s3, "team/requests/")] == [True, True]
    import pyarrow.parquet as pq

    assert pq.read_table(reader.source(first))["x"].to_pylist() == [1, 2, 3]


def test_locations_local_and_remote() -> None:
    assert log_location("relative/requests") == Path("relative/requests")
    assert log_location("file:///tmp/requests") == Path("/tmp/requests")
    remote = log_location("memory://logs/requests")
    assert isinstance(remote, LogFolder) and str(remote / "model=a") == "memory://logs/requests/model=a"
    with pytest.raises(InputError, match=r"request log location 'nosuchscheme://x' \(deploy.request_log in "):
        LogFolder.of("nosuchscheme://x")


def test_an_unknown_scheme_in_the_config_is_refused_by_serve_naming_the_setting(project: Any) -> None:
    from tests.conftest import run_cli

    (project.project.root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\ndeploy:\n  request_log: nosuch://x\n")
    done = run_cli("serve", "--get", "/ready", cwd=project.project.root, env={"SHIPYARD_REQUEST_LOG": ""})
    assert done.returncode == 2, done.stderr
    assert "deploy.request_log" in done.stderr and "nosuch://x" in done.stderr
    assert not (project.project.state_dir / "requests").exists()


@pytest.fixture
def s3_project(project: Any, s3: dict[str, str], tmp_path: Path,  # noqa: F811
               monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A project whose shipyard.yaml sends the request log to S3, with iris v1 (champion) and v2."""
    monkeypatch.delenv("SHIPYARD_REQUEST_LOG", raising=False)
    (project.project.root / "shipyard.yaml").write_text(
        "pipeline:\n  stages: {}\n"
        f"deploy:\n  request_log: {BUCKET_URL}\n  strategy: canary\n  steps: [50, 100]\n  min_samples: 20\n"
        "  interval: 1s\n  flush_interval: 1h\n")
    register_iris(project, tmp_path)
    yield project


def serve_and_label(root: Path, count: int) -> list[str]:
    """``count`` predictions through the configured gateway, each followed by its true label as
    feedback; returns the request ids. Flushes the request log before returning."""
    from shipyard.cli.serve import build_gateway
    from shipyard.serving.app import create_app

    features, labels = iris()
    gateway = build_gateway(str(root), controller=False)
    app = create_app(gateway)
    gateway.startup()

    async def run() -> list[str]:
        ids = []
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
            for i in range(count):
                row = features.iloc[i % len(features)]
                body = {"inputs": [{"name": f, "shape": [1], "datatype": "FP64", "data": [float(row[f])]}
                                   for f in IRIS_FEATURES]}
                r = await client.post("/v2/models/iris/infer", json=body, headers={"x-shipyard-key": f"k{i}"})
                assert r.status_code == 200, r.text
                rid = r.headers["x-request-id"]
                ids.append(rid)
                fb = await client.post("/v1/feedback", json={"request_id": rid, "label": str(labels[i % len(labels)])})
                assert fb.status_code == 202, fb.text
        return ids

    try:
        ids = asyncio.run(run())
    finally:
        gateway.shutdown()  # flushes the request log and the feedback
    assert gateway.log.errors == 0, gateway.log.last_error
    return ids


def test_logged_to_s3_then_read_by_a_rollout_window_and_the_monitor(s3_project: Any, s3: dict[str, str]) -> None:  # noqa: F811
    from shipyard.cli.deploy import _controller
    from shipyard.config import load_config
    from shipyard.monitoring import build_monitor
    from shipyard.monitoring.windows import count_windows, logged_models, read_feedback, read_log
    from shipyard.serving.loaders import RegistryLoader

    ws = s3_project
    config = load_config(ws.project.config_path)
    controller = _controller(ws)
    assert str(controller.requests_root) == BUCKET_URL
    controller.start("iris", 2, config.deploy, check_load=RegistryLoader(ws.store, ws.objects).load)

    ids = serve_and_label(ws.project.root, 120)

    stored = keys(s3, "team/requests/")
    assert any(k.startswith("team/requests/model=iris/date=") and "/hour=" in k for k in stored)
    assert any(k.startswith("team/requests/feedback/date=") for k in stored)
    assert not (ws.project.state_dir / "requests").exists() and not (ws.project.state_dir / "feedback").exists()

    # the rollout controller's analysis window reads the canary's traffic and labels back from S3
    outcome = controller.tick(force=True)[0]
    metrics = outcome.metrics
    assert metrics["candidate_n"] + metrics["champion_n"] == len(ids)
    assert metrics["candidate_n"] > 0 and metrics["champion_n"] > 0
    # every answered candidate request is labelled; under load a candidate may time out (250 ms)
    # and the champion answers instead: that row is a candidate error, not a labelled prediction
    assert metrics["labels_n"] == metrics["candidate_n"] - metrics["candidate_errors"] > 0
    assert metrics["accuracy"] > 0.5

    # the monitor reads the same place: models, rows in count windows, feedback labels
    monitor = build_monitor(ws, config, run_retrains=False)
    assert logged_models(monitor.requests_root) == ["iris"]
    frame = read_log(monitor.requests_root, "iris")
    assert sorted(frame["request_id"].to_list()) == sorted(ids)
    windows = count_windows(frame, rows=40, cursor=None)
    assert [w.frame.height for w in windows] == [40, 40, 40]
    labels = read_feedback(monitor.feedback_root)
    assert labels is not None and set(labels["request_id"].to_list()) == set(ids)


def test_environment_variable_beats_the_config(s3_project: Any, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from shipyard.serving.requestlog import feedback_root, requests_root

    state, root = s3_project.project.state_dir, s3_project.project.root
    assert str(requests_root(state, BUCKET_URL, root)) == BUCKET_URL
    assert str(feedback_root(state, BUCKET_URL, root)) == BUCKET_URL + "/feedback"
    monkeypatch.setenv("SHIPYARD_REQUEST_LOG", "logs")
    assert requests_root(state, BUCKET_URL, root) == root / "logs"
    assert feedback_root(state, BUCKET_URL, root) == root / "logs" / "feedback"
    monkeypatch.delenv("SHIPYARD_REQUEST_LOG")
    assert requests_root(state, None, root) == state / "requests"
    assert feedback_root(state, None, root) == state / "feedback"


def _old_and_new_parts(folder: LogFolder) -> tuple[list[str], str]:
    """Parts in two expired hour partitions of 2020 and one of the current hour; returns (the
    expired partitions, the current one), relative to ``folder``."""
    import time

    expired = ["model=iris/date=2020-01-01/hour=00", "model=iris/date=2020-01-01/hour=01"]
    current = time.strftime("model=iris/date=%Y-%m-%d/hour=%H", time.gmtime())
    for rel in [*expired, expired[0], current]:   # two parts in the first partition
        (folder / rel).write_parquet(pa.table({"x": [1.0]}))
    return expired, current


def test_retention_prunes_hour_partitions_in_s3_and_audits_each(project: Any, s3: dict[str, str]) -> None:  # noqa: F811
    import json

    from shipyard import audit
    from shipyard.supply.governance import prune_request_log

    folder = LogFolder.of("s3://objects/retention/requests")   # moto keeps objects across tests: its own prefix
    expired, current = _old_and_new_parts(folder)
    assert prune_request_log(project.store, folder, "30d") == expired
    stored = keys(s3, "retention/requests/")
    assert stored and all(k.startswith(f"retention/requests/{current}/part-") for k in stored)
    with project.store.read() as session:
        events = audit.events(session, kind="request_log.delete")
        assert sorted(e.subject for e in events) == expired
        payloads = {e.subject: json.loads(e.payload) for e in events}
        assert payloads[expired[0]] == {"retention": "30d", "files": 2, "location": str(folder)}
        assert audit.verify(session).ok
    assert prune_request_log(project.store, folder, "30d") == []   # nothing left to delete, no event


def test_the_gateway_prunes_its_s3_request_log_at_start(s3_project: Any, s3: dict[str, str]) -> None:  # noqa: F811
    """``supply.request_log.retention`` with the log in S3: the gateway's retention job deletes
    through the writer's own filesystem (it used to prune local folders only)."""
    import time

    from shipyard import audit
    from shipyard.cli.serve import build_gateway
    from shipyard.supply.governance import RetentionJob

    root = s3_project.project.root
    config = root / "shipyard.yaml"
    config.write_text(config.read_text() + "supply:\n  request_log: {retention: 7d}\n")
    expired, current = _old_and_new_parts(LogFolder.of(BUCKET_URL))
    gateway = build_gateway(str(root), controller=False)
    job = next(j for j in gateway.background if isinstance(j, RetentionJob))
    assert job.root == gateway.log.root == LogFolder.of(BUCKET_URL)

    def deleted() -> list[str]:
        with s3_project.store.read() as session:
            return sorted(e.subject for e in audit.events(session, kind="request_log.delete"))

    gateway.startup()   # the job prunes at start, then every hour
    try:
        deadline = time.monotonic() + 60   # a bound on the wait for the condition, not a timing assertion
        while deleted() != expired and job.last_error is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        gateway.shutdown()
    assert job.last_error is None and deleted() == expired
    left = keys(s3, "team/requests/model=iris/date=")
    assert any(k.startswith(f"team/requests/{current}/") for k in left)
    assert not any(k.startswith(tuple(f"team/requests/{rel}/" for rel in expired)) for k in left)
