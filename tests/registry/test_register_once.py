"""One version per model content, on real SQLite and PostgreSQL, with real packaged sklearn models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shipyard.errors import InputError, NotFound
from shipyard.hashing import hash_file
from shipyard.registry import find_versions, register, resolve
from shipyard.registry.project import register_from_project

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "proj"
    (folder / "model").mkdir(parents=True)
    return folder


@pytest.fixture
def objects(tmp_path: Path):  # type: ignore[no-untyped-def]
    from shipyard.objects import ObjectStore

    return ObjectStore.open(tmp_path / "objects")


def train(root: Path, depth: int) -> Path:
    """Write model/model.skops: a decision tree of this depth (another depth, another file)."""
    import pandas as pd
    from sklearn.tree import DecisionTreeClassifier

    from shipyard.models import save_model
    from tests.conftest import EXAMPLE

    frame = pd.read_csv(EXAMPLE / "data" / "raw.csv").dropna(subset=NUMERIC)
    model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(frame[NUMERIC], frame["species"])
    return save_model(model, root / "model", "sklearn")


def registered(store, objects, root: Path, **options):  # type: ignore[no-untyped-def]
    return register_from_project(store, objects, root, "penguins", "model/", find_run=False, **options)


def register_events(store) -> list[dict]:  # type: ignore[no-untyped-def]
    from sqlalchemy import select

    from shipyard.store.tables import AuditEvent

    with store.read() as session:
        rows = session.scalars(select(AuditEvent).where(AuditEvent.kind.like("model.%")).order_by(AuditEvent.seq))
        return [{"kind": r.kind, "subject": r.subject, **json.loads(r.payload)} for r in rows]


def test_the_same_model_file_is_one_version(store, objects, root: Path) -> None:  # type: ignore[no-untyped-def]
    file = train(root, 2)
    first = registered(store, objects, root)
    assert first.created and first.version.ref == "penguins@1"
    assert first.message == "registered penguins@1"
    assert first.version.content_oid == hash_file(file)
    again = registered(store, objects, root)
    assert not again.created and again.version.ref == "penguins@1"
    assert again.message == "model unchanged: already penguins@1"
    assert "pass --new" in again.notes[0]
    assert again.to_dict()["created"] is False and again.to_dict()["version"] == 1
    with store.read() as session:
        assert [v.ref for v in find_versions(session, "penguins")] == ["penguins@1"]
    assert [e["kind"] for e in register_events(store)] == ["model.register"]


def test_new_content_is_a_new_version_and_old_content_finds_its_version(store, objects, root: Path) -> None:  # type: ignore[no-untyped-def]
    old = train(root, 2).read_bytes()
    assert registered(store, objects, root).version.version == 1
    train(root, 4)
    second = registered(store, objects, root)
    assert second.created and second.version.version == 2
    (root / "model" / "model.skops").write_bytes(old)  # e.g. restored from the run cache
    back = registered(store, objects, root)
    assert not back.created and back.version.version == 1


def test_new_forces_a_version_and_the_newest_holder_is_found_after(store, objects, root: Path) -> None:  # type: ignore[no-untyped-def]
    train(root, 2)
    registered(store, objects, root)
    forced = registered(store, objects, root, new=True)
    assert forced.created and forced.version.version == 2
    assert forced.version.content_oid == resolve_v(store, 1).content_oid
    assert registered(store, objects, root).version.version == 2


def resolve_v(store, version: int):  # type: ignore[no-untyped-def]
    with store.read() as session:
        return resolve(session, f"penguins@{version}")


def test_tags_go_onto_the_version_that_holds_the_model(store, objects, root: Path) -> None:  # type: ignore[no-untyped-def]
    train(root, 2)
    registered(store, objects, root, tags={"git.commit": "aaa", "ci.provider": "local"})
    again = registered(store, objects, root, tags={"git.commit": "bbb"})
    assert not again.created
    assert again.version.tags == {"git.commit": "bbb", "ci.provider": "local"}
    assert resolve_v(store, 1).tags == {"git.commit": "bbb", "ci.provider": "local"}
    events = register_events(store)
    assert [e["kind"] for e in events] == ["model.register", "model.tag"]
    assert events[-1]["tags"] == {"git.commit": "bbb"} and events[-1]["subject"] == "penguins@1"


def test_another_flavor_of_the_same_bytes_is_another_version(store, objects, root: Path) -> None:  # type: ignore[no-untyped-def]
    file = train(root, 2)
    registered(store, objects, root)
    with store.write() as session:  # what a different flavor of the same file would store
        register(session, "penguins", model_oid="xxh128:" + "ab" * 16 + ".dir", flavor="onnx",
                 content_oid=hash_file(file))
    assert registered(store, objects, root).version.version == 1


def test_versions_without_a_content_hash_are_never_matched(store, objects, root: Path) -> None:  # type: ignore[no-untyped-def]
    train(root, 2)
    with store.write() as session:  # registered before revision 0009 (or through the MLflow API)
        register(session, "penguins", model_oid="xxh128:" + "ab" * 16 + ".dir", flavor="sklearn")
    result = registered(store, objects, root)
    assert result.created and result.version.version == 2


def test_a_missing_model_file_is_an_error_that_registers_nothing(store, objects, root: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=r"holds no \.skops file"):
        registered(store, objects, root)
    with store.read() as session, pytest.raises(NotFound):
        find_versions(session, "penguins")
