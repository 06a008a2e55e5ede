"""Registry on real SQLite and PostgreSQL: versions, references, aliases, the champion rule, audit."""

from __future__ import annotations

import json

import pytest

from shipyard import audit
from shipyard.errors import CheckFailed, InputError, NotFound, UsageError
from shipyard.registry import (
    delete_alias,
    find_versions,
    parse_ref,
    record_verdict,
    register,
    resolve,
    set_alias,
    versions_trained_on,
)
from shipyard.store import registry as repo
from shipyard.store import runs

OID = "xxh128:" + "ab" * 16 + ".dir"


def _register(session, name="penguins", run_id=None):  # type: ignore[no-untyped-def]
    return register(session, name, model_oid=OID, flavor="sklearn", run_id=run_id, size_bytes=10,
                    profile={"columns": {}}, lineage={"train": {"path": "t.parquet", "oid": "xxh128:" + "cd" * 16}})


def _pass(session, ref, passed=True):  # type: ignore[no-untyped-def]
    record_verdict(session, ref, {"passed": passed, "checks": [], "champion": None}, "# verdict")


def test_versions_number_from_one_and_resolve(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        assert _register(s).version == 1
        assert _register(s).version == 2
        _register(s, "other")
    with store.read() as s:
        assert resolve(s, "penguins@2").version == 2
        assert resolve(s, "penguins@v1").version == 1
        assert resolve(s, "penguins").version == 2
        assert [v.ref for v in find_versions(s)] == ["other@1", "penguins@1", "penguins@2"]
        with pytest.raises(NotFound, match="has no version 7") as info:
            resolve(s, "penguins@7")
        assert "versions: 1, 2" in str(info.value)
        with pytest.raises(NotFound, match="'pengiuns' is not registered"):
            resolve(s, "pengiuns@1")


def test_parse_ref_errors() -> None:
    assert parse_ref("m@champion") == ("m", None, "champion")
    with pytest.raises(UsageError, match="names no version"):
        parse_ref("m@")
    with pytest.raises(InputError, match="model name"):
        parse_ref("bad name@1")


@pytest.mark.parametrize("alias", ["v3", "3", "V12", "latest", "has space", ""])
def test_alias_that_looks_like_a_version_is_refused(store, alias) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        _register(s)
    with pytest.raises(InputError), store.write() as s:
        set_alias(s, "penguins", alias, 1)
    with store.read() as s:
        assert repo.aliases_many(s, [repo.get_model(s, "penguins").id]) == {repo.get_model(s, "penguins").id: {}}


def test_free_form_alias_moves_and_keeps_history(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        _register(s)
        _register(s)
        assert set_alias(s, "penguins", "challenger", 1, actor="ann") is None
        assert set_alias(s, "penguins", "challenger", 2, actor="bob") == 1
    with store.read() as s:
        assert resolve(s, "penguins@challenger").version == 2
        model = repo.get_model(s, "penguins")
        history = [(h.version, h.previous_version, h.actor) for h in repo.alias_history(s, model, "challenger")]
        assert history == [(1, None, "ann"), (2, 1, "bob")]
        kinds = [e.kind for e in audit.events(s, kind="model.alias")]
        assert len(kinds) == 2
    with store.write() as s:
        assert delete_alias(s, "penguins", "challenger") == 2
    with store.read() as s, pytest.raises(NotFound, match="no alias 'challenger'"):
        resolve(s, "penguins@challenger")


def test_champion_needs_a_passing_verdict(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        _register(s)
    with pytest.raises(CheckFailed, match="has no gate verdict; refusing to make it champion"), store.write() as s:
        set_alias(s, "penguins", "champion", 1)
    with store.write() as s:
        _pass(s, "penguins@1", passed=False)
    with pytest.raises(CheckFailed, match="failed its latest gate"), store.write() as s:
        set_alias(s, "penguins", "champion", 1)
    with pytest.raises(UsageError, match="--force needs --reason"), store.write() as s:
        set_alias(s, "penguins", "champion", 1, force=True)
    with store.read() as s, pytest.raises(NotFound):
        resolve(s, "penguins@champion")
    with store.write() as s:
        set_alias(s, "penguins", "champion", 1, force=True, reason="hotfix approved by ann", actor="ann")
    with store.read() as s:
        assert resolve(s, "penguins@champion").aliases == ("champion",)
        event = audit.events(s, kind="model.alias")[0]
        payload = json.loads(event.payload)
        assert payload["forced"] is True and payload["reason"] == "hotfix approved by ann"
        assert audit.verify(s).ok


def test_champion_with_passing_verdict(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        _register(s)
        _pass(s, "penguins@1")
        set_alias(s, "penguins", "champion", 1)
    with store.read() as s:
        mv = resolve(s, "penguins@champion")
        assert mv.passed_gate and mv.verdict["markdown"] == "# verdict"


def test_run_link_and_used_by(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        exp = runs.experiment_by_name(s, "Default")
        run = runs.create_run(s, experiment_id=exp.id, name="train")
        s.add(runs.DatasetInput(run_id=run.id, name="train", digest="d1", context="training"))
        _register(s, run_id=run.id)
        with pytest.raises(NotFound):
            _register(s, run_id="0" * 32)
    with store.read() as s:
        assert [v.ref for v in versions_trained_on(s, "d1")] == ["penguins@1"]
        assert versions_trained_on(s, "nope") == []
        assert [v.ref for v in versions_trained_on(s, "xxh128:" + "cd" * 16)] == ["penguins@1"]  # from lineage
        assert resolve(s, "penguins@1").run_id == run.id


def test_tags_and_delete(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        mv = _register(s)
        model = repo.get_model(s, "penguins")
        row = repo.get_version(s, model, mv.version)
        repo.set_version_tags(s, row.id, {"team": "birds"})
    with store.read() as s:
        assert resolve(s, "penguins@1").tags == {"team": "birds"}
    with store.write() as s:
        repo.delete_model(s, "penguins")
    with store.read() as s, pytest.raises(NotFound):
        resolve(s, "penguins@1")
