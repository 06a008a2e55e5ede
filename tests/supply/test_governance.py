"""Column classifications follow the training data to the model version; a gate forbids them."""

from __future__ import annotations

from typing import Any

import pytest

from shipyard.supply.governance import classify_columns
from shipyard.supply.registration import describe
from tests.supply.test_signing import _project, _register, _train

pytestmark = pytest.mark.filterwarnings("ignore")


def test_pii_scan_and_declared_classes() -> None:
    import pandas as pd

    frame = pd.DataFrame({"email": [f"user{i}@example.com" for i in range(20)], "age": range(20),
                          "salary": [float(i) for i in range(20)]})
    assert classify_columns(frame) == {"pii": ["email"]}
    assert classify_columns(frame, {"confidential": ["salary", "not-a-column"]}) == {
        "confidential": ["salary"], "pii": ["email"]}


@pytest.mark.slow
def test_models_show_and_the_gate_follow_the_classification(project: Any) -> None:
    from shipyard.config import load_config
    from shipyard.gates.runner import run_gate

    root = project.project.root
    _project(root, "{sbom: false, classified: {pii: [b]}}", "gates:\n  - {forbid_classified: pii}\n")
    _train(root, 1.0)
    version = _register(project)
    assert version.lineage["supply"]["classified"] == {"pii": ["b"]}
    assert ("trained on", "columns classified pii: b") in describe(version.lineage)
    verdict = run_gate(project.store, project.objects, "m@1", load_config(project.project.config_path), root,
                       record=False).verdict
    assert not verdict.passed and verdict.checks[0].reason == "features classified pii: b"
    (root / "shipyard.yaml").write_text((root / "shipyard.yaml").read_text().replace("pii: [b]", "pii: []"))
    version = _register(project)
    verdict = run_gate(project.store, project.objects, f"m@{version.version}", load_config(project.project.config_path),
                       root, record=False).verdict
    assert verdict.passed, verdict.to_dict()


def test_request_log_redacts_and_hashes_at_write_time(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    import pandas as pd
    import pyarrow.parquet as pq

    from shipyard.serving.requestlog import LogEntry, RequestLog
    from shipyard.supply.governance import ENV_HASH_KEY

    monkeypatch.setenv(ENV_HASH_KEY, "k1")
    log = RequestLog(tmp_path / "requests", tmp_path / "feedback", redact=("email",), hashed=("customer",))
    frame = pd.DataFrame({"email": ["ann@example.com", "bob@example.com"], "customer": ["c-1", "c-2"], "x": [1.0, 2.0]})
    log.append(LogEntry("r1", 1_700_000_000.0, "m", 1, "champion", "ok", 1.0, None, frame, np.asarray(["a", "b"]),
                        None, True))
    log.flush()
    files = list((tmp_path / "requests").rglob("*.parquet"))
    table = pq.read_table(files[0])
    raw = b"".join(f.read_bytes() for f in files)
    assert table.column("feature.email").null_count == 2 and b"example.com" not in raw
    digests = table.column("feature.customer").to_pylist()
    assert len(set(digests)) == 2 and all(len(d) == 32 for d in digests) and b"c-1" not in raw
    assert table.column("feature.x").to_pylist() == [1.0, 2.0]


def test_retention_deletes_old_partitions_and_audits_each(project: Any) -> None:
    import time

    from shipyard import audit
    from shipyard.supply.governance import prune_request_log

    root = project.project.state_dir / "requests"
    now = time.time()
    recent = time.strftime("date=%Y-%m-%d/hour=%H", time.gmtime(now))
    for rel in ("model=m/date=2020-01-01/hour=00", "model=m/date=2020-01-01/hour=01", f"model=m/{recent}"):
        (root / rel).mkdir(parents=True)
        (root / rel / "part-1.parquet").write_bytes(b"x")
    deleted = prune_request_log(project.store, root, "30d", now=now)
    assert deleted == ["model=m/date=2020-01-01/hour=00", "model=m/date=2020-01-01/hour=01"]
    assert not (root / "model=m/date=2020-01-01").exists() or not any((root / "model=m/date=2020-01-01").iterdir())
    assert (root / f"model=m/{recent}/part-1.parquet").exists()
    with project.store.read() as session:
        events = audit.events(session, kind="request_log.delete")
        assert sorted(e.subject for e in events) == deleted
        assert json_payload(events[0])["retention"] == "30d"
        assert audit.verify(session).ok
    assert prune_request_log(project.store, root, "30d", now=now) == []


def json_payload(event: Any) -> dict[str, Any]:
    import json

    return json.loads(event.payload)


def _pickle_project(root: Any, scan: str) -> None:
    import os
    import pickle

    from tests.supply.corpus import Reduce

    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\nmodel: {name: p, path: model, flavor: pickle}\n"
                                        f"supply: {{scan: {scan}, sbom: false}}\ngates:\n  - {{scan: clean}}\n")
    (root / "model").mkdir(exist_ok=True)
    (root / "model" / "model.pkl").write_bytes(pickle.dumps(Reduce(os.system, ("id",))))  # never loaded


def test_scan_record_registers_a_pickle_with_its_findings_and_the_gate_fails_it(project: Any) -> None:
    from shipyard.config import load_config
    from shipyard.errors import UnsafeModel
    from shipyard.gates.runner import run_gate
    from shipyard.models import load_model
    from shipyard.registry.project import register_from_project

    root = project.project.root
    _pickle_project(root, "refuse")
    with pytest.raises(UnsafeModel, match=r"posix\.system"):
        register_from_project(project.store, project.objects, root, "p", "model", flavor="pickle", trust=True,
                              find_run=False)
    with project.store.read() as session:   # refused: nothing registered
        from shipyard.store.registry import list_versions

        assert list_versions(session) == []

    _pickle_project(root, "record")
    version = register_from_project(project.store, project.objects, root, "p", "model", flavor="pickle", trust=True,
                                    find_run=False).version
    scan = version.lineage["supply"]["scan"]
    assert scan["clean"] is False and "posix.system" in scan["findings"][0]
    assert version.trusted is False   # --trust does not make what the scan found trusted
    assert ("scan", f"1 findings: {scan['findings'][0]}") in describe(version.lineage)
    with pytest.raises(UnsafeModel, match=r"posix\.system"):   # loading refuses whatever the policy
        load_model(project.objects, version.model_oid, "pickle", trust=True, what=version.ref)
    verdict = run_gate(project.store, project.objects, "p@1", load_config(project.project.config_path), root,
                       trust=True, record=False).verdict
    assert not verdict.passed and [c.kind for c in verdict.checks] == ["scan"]
    assert "posix.system" in verdict.checks[0].reason and "was not loaded" in verdict.notes[-1]


def test_hashing_without_a_key_refuses_to_start_the_gateway(project: Any) -> None:
    from tests.conftest import run_cli

    root = project.project.root
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\nsupply:\n  request_log: {hash: [customer_id]}\n")
    done = run_cli("serve", "--get", "/ready", cwd=root, env={"SHIPYARD_LOG_HASH_KEY": ""})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SHIPYARD_LOG_HASH_KEY is not set" in done.stderr and "supply.request_log.hash" in done.stderr
    assert "allow_unkeyed_hash: true" in done.stderr
    assert not (project.project.state_dir / "requests").exists()
    ok = run_cli("serve", "--get", "/ready", cwd=root, env={"SHIPYARD_LOG_HASH_KEY": "a-secret"})
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\nsupply:\n"
                                        "  request_log: {hash: [customer_id], allow_unkeyed_hash: true}\n")
    opted_out = run_cli("serve", "--get", "/ready", cwd=root, env={"SHIPYARD_LOG_HASH_KEY": ""})
    assert opted_out.returncode == 0, opted_out.stdout + opted_out.stderr
