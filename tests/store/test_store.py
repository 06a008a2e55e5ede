from sqlalchemy import select

from shipyard import audit
from shipyard.store.migrate import current, heads
from shipyard.store.tables import AuditEvent


def test_fresh_store_is_migrated_to_heads(store) -> None:  # type: ignore[no-untyped-def]
    with store.engine.connect() as conn:
        assert current(conn) == heads()


def test_write_commits_and_rolls_back(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as session:
        audit.record(session, "test.kept", "a")
    try:
        with store.write() as session:
            audit.record(session, "test.lost", "b")
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    with store.read() as session:
        kinds = list(session.scalars(select(AuditEvent.kind)))
    assert kinds == ["test.kept"]


def test_audit_chain_detects_edit_and_delete(store) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        with store.write() as session:
            audit.record(session, "test.event", f"s{i}", {"i": i})
    with store.read() as session:
        assert audit.verify(session).ok
    with store.write() as session:
        session.get(AuditEvent, 2).payload = '{"i":99}'
    with store.read() as session:
        result = audit.verify(session)
    assert not result.ok and result.seq == 2 and "edited" in result.problem
    with store.write() as session:
        session.delete(session.get(AuditEvent, 2))
    with store.read() as session:
        result = audit.verify(session)
    assert not result.ok and "missing" in result.problem
