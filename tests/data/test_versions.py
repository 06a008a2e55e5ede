"""Dataset versions in the store (SQLite and PostgreSQL): add, dedupe, look up, lineage, diff."""

from __future__ import annotations

import polars as pl
import pytest

from shipyard.data.versions import (
    add_dataset,
    diff_versions,
    record_run_inputs,
    used_by,
    versions_for_paths,
)
from shipyard.errors import InputError, NotFound
from shipyard.hashing import Hasher
from shipyard.objects import ObjectStore
from shipyard.store import datasets as repo
from shipyard.store import runs


@pytest.fixture
def env(store, tmp_path):
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    pl.DataFrame({"x": [float(i) for i in range(200)], "c": ["a", "b"] * 100}).write_csv(root / "data" / "d.csv")
    return store, ObjectStore.open(tmp_path / "objects"), Hasher(root), root


def test_add_dedupes_and_versions(env) -> None:
    store, objects, hasher, root = env
    first = add_dataset(store, objects, hasher, "data/d.csv", name="demo")
    assert first.created and first.version.ref == "demo@1" and first.version.rows == 200
    assert [c["name"] for c in first.version.column_list()] == ["x", "c"]
    again = add_dataset(store, objects, hasher, "data/d.csv", name="demo")
    assert not again.created and again.version.ref == "demo@1"
    pl.DataFrame({"x": [1.0, 2.0], "c": ["a", "z"]}).write_csv(root / "data" / "d.csv")
    second = add_dataset(store, objects, hasher, "data/d.csv", name="demo")
    assert second.created and second.version.ref == "demo@2"
    assert objects.has_many([second.version.oid])[second.version.oid]  # content kept in the object store
    with store.read() as session:
        assert [v.ref for v in repo.list_versions(session)] == ["demo@1", "demo@2"]
        assert repo.get_version(session, "demo").ref == "demo@2"
        assert repo.get_version(session, "demo@1").rows == 200
        with pytest.raises(NotFound, match="has no version 7") as exc:
            repo.get_version(session, "demo@7")
        assert "versions: 1, 2" in (exc.value.hint or "")
        with pytest.raises(NotFound, match="no dataset called 'dmeo'") as exc:
            repo.get_version(session, "dmeo@1")
        assert "demo" in (exc.value.hint or "")
        with pytest.raises(InputError, match="must be a number"):
            repo.get_version(session, "demo@x")
        a, b = repo.get_version(session, "demo@1"), repo.get_version(session, "demo@2")
    diff = diff_versions(objects, a, b)
    assert diff["rows"] == {"from": 200, "to": 2, "change": -198}
    assert {c["column"] for c in diff["columns"]} == {"x", "c"}
    assert not diff["same_content"]


def test_bad_names_and_header_only(env) -> None:
    store, objects, hasher, root = env
    with pytest.raises(InputError, match="may not be empty or contain '@'"):
        add_dataset(store, objects, hasher, "data/d.csv", name="a@b")
    (root / "data" / "h.csv").write_text("a,b\n")
    with pytest.raises(InputError, match="header but no data rows"):
        add_dataset(store, objects, hasher, "data/h.csv")
    with store.read() as session:
        assert repo.list_versions(session) == []  # nothing half-written


def test_lineage_from_stage_runs_to_model_versions(env) -> None:
    store, objects, hasher, _ = env
    added = add_dataset(store, objects, hasher, "data/d.csv", name="demo")
    oid = hasher.hash_paths(["data/d.csv"])["data/d.csv"][0]
    with store.write() as session:
        exp = runs.experiment_by_name(session, "Default")
        parent = runs.create_run(session, experiment_id=exp.id, name="pipeline")
        stage = runs.create_run(session, experiment_id=exp.id, name="validate", parent_run_id=parent.id)
        train = runs.create_run(session, experiment_id=exp.id, name="train", parent_run_id=parent.id)
        found = versions_for_paths(session, {"data/d.csv": oid, "src/train.py": "xxh128:00"})
        assert [v.ref for v in found] == ["demo@1"]
        assert versions_for_paths(session, {"data/d.csv": "xxh128:other"}) == []
        record_run_inputs(session, stage.id, found)
        record_run_inputs(session, stage.id, found)  # idempotent
        stage_id, train_id = stage.id, train.id
    with store.read() as session:
        inputs = session.query(runs.DatasetInput).filter_by(run_id=stage_id).all()
        assert [(i.name, i.digest, i.source) for i in inputs] == [("demo@1", added.version.oid, "data/d.csv")]
        result = used_by(session, repo.get_version(session, "demo@1"))
        assert result.runs == [stage_id]
        assert result.models == []  # registry tables exist, no model registered yet
    from shipyard.store import registry as reg

    with store.write() as session:
        model = reg.get_model(session, "penguins", create=True)
        reg.create_version(session, model, model_oid="xxh128:m", flavor="sklearn", run_id=train_id)
    with store.read() as session:
        result = used_by(session, repo.get_version(session, "demo@1"))
        assert result.models == [{"model": "penguins@1", "run_id": train_id}]
        assert result.to_dict()["dataset"] == "demo@1"


def test_add_a_folder_of_parquet_parts(env) -> None:
    store, objects, hasher, root = env
    parts = root / "data" / "parts"
    parts.mkdir()
    for i in range(3):
        pl.DataFrame({"x": [float(i)] * 50, "c": ["a"] * 50}).write_parquet(parts / f"{i}.parquet")
    added = add_dataset(store, objects, hasher, "data/parts")
    assert added.version.ref == "parts@1" and added.version.rows == 150 and added.version.format == "parquet"
    assert added.version.oid.endswith(".dir")
    with store.read() as session:
        assert [v.ref for v in versions_for_paths(session, {"data/parts/": added.version.oid})] == ["parts@1"]
