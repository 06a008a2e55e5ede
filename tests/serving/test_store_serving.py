"""Routing tables, deployments, decisions and leases in the store (SQLite and PostgreSQL)."""

from __future__ import annotations

from shipyard.serving.follower import Follower, StoreRoutingSource
from shipyard.serving.routing import single_table
from shipyard.store import serving as repo
from tests.serving.models import DictLoader, iris_classifier


def test_routing_revision_moves_once_per_change(store) -> None:  # type: ignore[no-untyped-def]
    with store.read() as session:
        assert repo.current_revision(session) == 0
        assert repo.routing_tables(session) == {}
    with store.write() as session:
        rev = repo.put_routing(session, {"iris": single_table("iris", 1), "wine": single_table("wine", 4)})
    assert rev == 1
    with store.write() as session:
        assert repo.put_routing(session, {"iris": single_table("iris", 2, [1])}) == 2
    with store.read() as session:
        tables = repo.routing_tables(session)
        assert repo.current_revision(session) == 2
    assert tables["iris"]["champion"] == 2 and tables["iris"]["warm"] == [1, 2]
    assert tables["wine"]["champion"] == 4


def test_follower_reads_the_store_and_reloads_only_on_change(store) -> None:  # type: ignore[no-untyped-def]
    loader = DictLoader({("iris", 1): iris_classifier(), ("iris", 2): iris_classifier(0.5)})
    follower = Follower(StoreRoutingSource(store), loader, poll_interval=3600)
    with store.write() as session:
        repo.put_routing(session, {"iris": single_table("iris", 1)})
    assert follower.refresh() is True
    assert follower.refresh() is False
    assert loader.loads == [("iris", 1)]
    with store.write() as session:
        repo.put_routing(session, {"iris": single_table("iris", 2, [1])})
    assert follower.refresh() is True
    assert loader.loads == [("iris", 1), ("iris", 2)]
    assert follower.snapshot is not None and sorted(follower.snapshot.models["iris"].versions) == [1, 2]


def test_deployments_decisions_and_leases(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as session:
        d = repo.create_deployment(session, model="iris", candidate=2, champion=1, strategy="canary",
                                   state="running", step=0, settings={"steps": [10, 100]}, now=100.0)
        repo.add_decisions(session, [{"deployment_id": d.id, "at": 101.0, "from_state": "none",
                                      "to_state": "canary[0]", "status": "ACCEPT", "reason": "ok",
                                      "fired": [], "metrics": {"n": 1}, "cause": "start"}])
        dep_id = d.id
    with store.read() as session:
        assert [x.id for x in repo.active_deployments(session, "iris")] == [dep_id]
        assert repo.active_deployments(session, "wine") == []
        found = repo.decisions(session, [dep_id])
        assert [(x.status, x.cause) for x in found] == [("ACCEPT", "start")]
    with store.write() as session:
        assert repo.acquire_lease(session, "ctl", "a", ttl=10, now=0.0) is True
    with store.write() as session:
        assert repo.acquire_lease(session, "ctl", "b", ttl=10, now=5.0) is False
        assert repo.acquire_lease(session, "ctl", "a", ttl=10, now=5.0) is True
    with store.write() as session:
        assert repo.acquire_lease(session, "ctl", "b", ttl=10, now=20.0) is True
