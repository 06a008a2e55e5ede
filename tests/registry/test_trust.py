"""``registry.trust.trust_version`` (``shipyard models trust``): checked, recorded, audited; a refused
pickle stays refused. On real SQLite and PostgreSQL (the ``store`` fixture), with real packages."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest

from shipyard import audit
from shipyard.errors import InputError, UnsafeModel
from shipyard.hashing import FileEntry, Manifest, hash_bytes
from shipyard.models import load_model
from shipyard.models.flavors import get_flavor
from shipyard.registry import register, resolve
from shipyard.registry.trust import trust_version

EVIL = b"cos\nsystem\n(S'true'\ntR."   # protocol 0: os.system("true") when unpickled


@pytest.fixture
def objects(tmp_path: Path):  # type: ignore[no-untyped-def]
    from shipyard.objects import ObjectStore

    return ObjectStore.open(tmp_path / "objects")


def _pickled_model() -> bytes:
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    return pickle.dumps(LogisticRegression().fit(pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0]}), [0, 0, 1, 1]))


def _raw_package(objects: Any, data: bytes) -> str:
    """A pickle package as an untrusted registration under ``supply.scan: record`` stores it."""
    meta = json.dumps({"format": 1, "flavor": "pickle", "file": "model.pkl", "file_oid": hash_bytes(data),
                       "size": len(data), "trusted": False}).encode()
    file_oid, meta_oid = objects.put_bytes_many([data, meta])
    return objects.put_manifest(Manifest((FileEntry("model.pkl", file_oid, len(data)),
                                          FileEntry("shipyard-model.json", meta_oid, len(meta)))))


def _events(store: Any) -> list[Any]:
    with store.read() as session:
        return [(e.kind, e.subject, e.actor, json.loads(e.payload)) for e in audit.events(session, kind="model.trust")]


def test_an_untrusted_pickle_version_is_checked_then_trusted_once_and_audited(store, objects) -> None:  # type: ignore[no-untyped-def]
    packaged = get_flavor("pickle").package_bytes(objects, "model.pkl", _pickled_model(), untrusted_ok=True)
    assert not packaged.trusted
    with store.write() as session:
        register(session, "m", model_oid=packaged.model_oid, flavor="pickle", trusted=False)
    with pytest.raises(UnsafeModel, match="refusing without trust"):
        load_model(objects, packaged.model_oid, "pickle", trust=False)

    first = trust_version(store, objects, "m@1", reason="we trained it", actor="alice")
    assert first.changed and first.version.trusted
    with store.read() as session:
        mv = resolve(session, "m@1")
    assert mv.trusted
    assert list(load_model(objects, mv.model_oid, mv.flavor, trust=mv.trusted).predict({"a": [0.0, 3.0]})) == [0, 1]
    again = trust_version(store, objects, "m@1", actor="bob")
    assert not again.changed and again.version.trusted
    events = _events(store)
    assert len(events) == 1
    kind, subject, actor, payload = events[0]
    assert (kind, subject, actor, payload["reason"]) == ("model.trust", "m@1", "alice", "we trained it")


def test_a_pickle_the_scan_refuses_is_not_trusted(store, objects) -> None:  # type: ignore[no-untyped-def]
    with store.write() as session:
        register(session, "m", model_oid=_raw_package(objects, EVIL), flavor="pickle", trusted=False)
    with pytest.raises(UnsafeModel, match=r"os\.system|posix\.system"):
        trust_version(store, objects, "m@1", actor="alice")
    with store.read() as session:
        assert not resolve(session, "m@1").trusted
    assert _events(store) == []


def test_a_version_without_a_model_cannot_be_trusted(store, objects) -> None:  # type: ignore[no-untyped-def]
    with store.write() as session:
        register(session, "m", model_oid="", flavor="external", source="s3://bucket/model")
    with pytest.raises(InputError, match="flavor external"):
        trust_version(store, objects, "m@1")
