"""Column classifications live with dataset versions and follow lineage to runs, model versions and
the forbid_classified gate; the migration that adds them runs on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect

from shipyard.data.versions import add_dataset, record_classified, validation_classes
from shipyard.store.datasets import get_version, link_runs
from shipyard.supply.registration import describe
from tests.conftest import run_cli
from tests.supply.test_signing import _project, _register, _train

pytestmark = pytest.mark.filterwarnings("ignore")


def _gate(project: Any, ref: str) -> Any:
    from shipyard.config import load_config
    from shipyard.gates.runner import run_gate

    return run_gate(project.store, project.objects, ref, load_config(project.project.config_path),
                    project.project.root, record=False).verdict


def test_data_add_classifies_and_a_run_reading_the_version_carries_it(project: Any) -> None:
    import pandas as pd

    from shipyard.store.runs import create_run, experiment_by_name
    from shipyard.supply.governance import training_classification

    root = project.project.root
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\nsupply: {classified: {confidential: [salary]}}\n")
    pd.DataFrame({"email": [f"u{i}@example.com" for i in range(20)], "salary": [1.0] * 20,
                  "age": range(20)}).to_csv(root / "people.csv", index=False)
    added = add_dataset(project.store, project.objects, project.hasher, "people.csv", name="people")
    assert added.version.classification() == {"confidential": ["salary"], "pii": ["email"]}
    with project.store.write() as session:
        run = create_run(session, experiment_id=experiment_by_name(session, "Default").id, name="train")
        link_runs(session, run.id, [added.version.id])
        assert training_classification(session, run.id, None) == (
            {"confidential": ["salary"], "pii": ["email"]}, ["people@1"])
        # kept to the model's features: a model that never used the e-mail is not trained on it
        assert training_classification(session, run.id, ["age", "salary"])[0] == {"confidential": ["salary"]}
    shown = run_cli("data", "show", "people@1", cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert "columns classified pii: email" in shown.stdout and "columns classified confidential: salary" in shown.stdout


def test_a_raw_dataset_an_upstream_stage_read_reaches_the_model_of_the_pipeline_run(project: Any) -> None:
    import pandas as pd

    from shipyard.store import pipeline as pipeline_repo
    from shipyard.store.runs import create_run, experiment_by_name
    from shipyard.supply.governance import training_classification

    root = project.project.root
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    pd.DataFrame({"email": [f"u{i}@example.com" for i in range(20)], "age": range(20)}).to_csv(root / "raw.csv", index=False)
    raw = add_dataset(project.store, project.objects, project.hasher, "raw.csv", name="raw").version
    with project.store.write() as session:
        experiment = experiment_by_name(session, "Default").id
        pipeline = create_run(session, experiment_id=experiment, name="pipeline", source="pipeline")
        pipeline_repo.start_pipeline_run(session, pipeline.id, targets=[], executor="local", jobs=1, pid=None)
        prepare = create_run(session, experiment_id=experiment, name="prepare", parent_run_id=pipeline.id)
        train = create_run(session, experiment_id=experiment, name="train", parent_run_id=pipeline.id)
        link_runs(session, prepare.id, [raw.id])   # prepare read raw@1; train read only prepared files
        other = create_run(session, experiment_id=experiment, name="train")  # a plain run: no pipeline
        assert training_classification(session, train.id, ["email", "age"]) == ({"pii": ["email"]}, ["raw@1"])
        assert training_classification(session, other.id, ["email", "age"]) == ({}, [])


@pytest.mark.slow
def test_a_dataset_classified_after_registration_fails_the_gate_through_lineage(project: Any) -> None:
    root = project.project.root
    _project(root, "{sbom: false}", "gates:\n  - {forbid_classified: pii}\n")
    _train(root, 1.0)
    added = add_dataset(project.store, project.objects, project.hasher, "data/train.csv", name="train")
    assert added.version.classification() == {}
    assert _register(project).lineage["supply"]["classified"] == {}
    assert _gate(project, "m@1").passed

    # the schema declares b personal data: `data validate` records it with the dataset version
    (root / "data" / "schema.yaml").write_text("columns:\n  a: {dtype: float}\n  b: {dtype: float, pii: true}\n"
                                               "  y: {dtype: string}\n")
    done = run_cli("data", "validate", "data/train.csv", "--schema", "data/schema.yaml", cwd=root)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "train@1: columns classified pii: b" in done.stderr
    with project.store.read() as session:
        assert get_version(session, "train@1").to_dict()["classified"] == {"pii": ["b"]}

    # m@1 was registered before: the gate asks lineage again and fails it
    verdict = _gate(project, "m@1")
    assert not verdict.passed and verdict.checks[0].reason == "features classified pii: b"
    old_shown = run_cli("models", "show", "m@1", cwd=root)   # and models show says what the gate sees
    assert "columns classified pii: b" in old_shown.stdout, old_shown.stdout + old_shown.stderr
    # a new version records it at registration, with the dataset it came from
    _train(root, 0.5)
    version = _register(project)
    assert version.lineage["supply"]["classified"] == {"pii": ["b"]}
    assert version.lineage["supply"]["classified_from"] == ["train@1"]
    assert ("trained on", "columns classified pii: b") in describe(version.lineage)
    assert ("classified in", "train@1") in describe(version.lineage)
    shown = run_cli("models", "show", f"m@{version.version}", cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert "columns classified pii: b" in shown.stdout and "train@1" in shown.stdout


def test_validation_classes_from_findings_and_the_schema(tmp_path: Path) -> None:
    schema = tmp_path / "schema.yaml"
    schema.write_text("columns:\n  name: {dtype: string, pii: true}\n  x: {dtype: float}\n")
    assert validation_classes(schema, ["email"]) == {"pii": ["email", "name"]}
    schema.write_text("columns:\n  x: {dtype: float}\n")
    assert validation_classes(schema, []) == {}


def test_record_classified_only_touches_versions_of_this_content(project: Any) -> None:
    root = project.project.root
    (root / "d.csv").write_text("x,y\n1,2\n")
    add_dataset(project.store, project.objects, project.hasher, "d.csv", name="d")
    (root / "d.csv").write_text("x,y\n1,3\n")   # changed since: no version holds this content
    assert record_classified(project.store, project.hasher, "d.csv", {"pii": ["x"]}) == []
    add_dataset(project.store, project.objects, project.hasher, "d.csv", name="d")
    assert record_classified(project.store, project.hasher, "d.csv", {"pii": ["x"]}) == ["d@2"]
    assert record_classified(project.store, project.hasher, "d.csv", {"confidential": ["y"]}) == ["d@2"]
    from shipyard import audit

    with project.store.read() as session:
        assert get_version(session, "d@1").classification() == {}
        assert get_version(session, "d@2").classification() == {"confidential": ["y"], "pii": ["x"]}
        events = audit.events(session, kind="data.classify")
        assert [e.subject for e in events] == ["d@2", "d@2"] and audit.verify(session).ok


def test_the_migration_adds_the_column_and_keeps_old_versions(store: Any) -> None:
    """Down to the datasets branch before 0014, a version added there, then up to heads again."""
    from alembic import command
    from sqlalchemy import text

    from shipyard.store.migrate import _config, upgrade

    with store.engine.begin() as conn:
        command.downgrade(_config(conn), "0014_dataset_classified@-1")
    with store.engine.connect() as conn:
        assert "classified" not in {c["name"] for c in inspect(conn).get_columns("dataset_versions")}
    with store.engine.begin() as conn:
        conn.execute(text("INSERT INTO dataset_versions (name, version, path, format, oid, size_bytes, rows, columns,"
                          " schema, created_at) VALUES ('old', 1, 'old.csv', 'csv', 'xxh128:0', 1, 1, '[]', '', "
                          "CURRENT_TIMESTAMP)"))
    upgrade(store)
    with store.write() as session:
        old = get_version(session, "old@1")
        assert old.classification() == {} and old.to_dict()["classified"] == {}
        from shipyard.store.datasets import add_classified

        assert add_classified(session, old, {"pii": ["email"]})
    with store.read() as session:
        assert get_version(session, "old@1").classification() == {"pii": ["email"]}
