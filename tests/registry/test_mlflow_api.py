"""The registry service behind MLflow's REST API, on real stores: search, deletes, sources, tags."""

from __future__ import annotations

import pytest

from shipyard.errors import InputError, NotFound
from shipyard.registry import find_versions, register, resolve, search, set_alias
from shipyard.registry import mlflow_api as api


def _versions(session, name: str, count: int, **tags: str) -> None:  # type: ignore[no-untyped-def]
    for i in range(count):
        register(session, name, model_oid="", flavor="external", source=f"s3://b/{name}/{i + 1}", tags=tags)


def test_deleted_versions_are_hidden_and_their_numbers_never_reused(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        _versions(s, "m", 3)
        set_alias(s, "m", "staging", 3)
        api.delete_version(s, "m", 3)
    with store.read() as s:
        assert [v.version for v in find_versions(s, "m")] == [1, 2]
        assert resolve(s, "m").version == 2                       # "newest" skips the deleted one
        with pytest.raises(NotFound, match=r"Model Version \(name=m, version=3\) not found"):
            api.get_version(s, "m", 3)
        assert api.model_entity(s, api.model_of(s, "m"))["aliases"] == []
    with store.write() as s:
        _versions(s, "m", 1)
        assert api.get_version(s, "m", 4)["version"] == "4"


def test_search_grammar_on_a_real_store(store) -> None:  # type: ignore[no-untyped-def]
    with store.write() as s:
        _versions(s, "a_1", 2, team="x")
        _versions(s, "ab1", 1, team="y")
    with store.read() as s:
        def names(text: str, order: tuple[str, ...] = ("name", "version_number")) -> list[str]:
            found, _ = search.search_versions(s, text, list(order))
            return [f"{v['name']}/{v['version']}" for v in found]

        assert names("name LIKE 'a_1'") == ["a_1/1", "a_1/2", "ab1/1"]        # '_' is one character
        assert names("name = 'a_1' AND version_number > 1") == ["a_1/2"]
        assert names("name NOT IN ('a_1')") == ["ab1/1"]
        assert names("tags.team != 'x'") == ["ab1/1"]
        assert names("", ("name DESC", "version_number ASC")) == ["ab1/1", "a_1/1", "a_1/2"]
        found, token = search.search_models(s, "name ILIKE 'A%'", ["name DESC"], "1", None)
        assert [m["name"] for m in found] == ["ab1"] and token is not None
        rest, token = search.search_models(s, "name ILIKE 'A%'", ["name DESC"], "1", token)
        assert [m["name"] for m in rest] == ["a_1"] and token is None


@pytest.mark.parametrize(("text", "words"), [
    ("name = 'a' OR name = 'b'", "Invalid clause(s) in filter string: 'OR'"),
    ("name", "Could not be parsed"),
    ("run_id LIKE", "Expected a quoted string value"),
    ("version_number LIKE '1'", "Invalid comparator for attribute: LIKE"),
    ("tags.t IN ('a')", "Invalid comparator for tag: IN"),
])
def test_search_refusals(text: str, words: str) -> None:
    with pytest.raises(api.InvalidParameter) as info:
        search.parse(text, search.VERSION_STRING_KEYS, search.VERSION_NUMERIC_KEYS)
    assert words in info.value.message


@pytest.mark.parametrize("source", ["/etc", "file:///etc", "file://localhost/etc", "relative/path", "C:/Windows"])
def test_local_sources_are_local(source: str) -> None:
    assert api.is_local(source)


@pytest.mark.parametrize("source", ["s3://b/../x", "s3://b/%2E%2E/x", "s3://b/%252e%252e/x", "s3://bucket",
                                    "https://h/a/./b", "gs://b/x\x00"])
def test_relative_or_odd_paths_are_refused(source: str) -> None:
    with pytest.raises(api.InvalidParameter, match="without relative path references"):
        api.check_relative(source)


@pytest.mark.parametrize(("key", "value", "words"), [
    (None, "v", "Missing value for required parameter 'key'"),
    ("a/../b", "v", "This name would resolve to 'b'"),
    ("bad\nkey", "v", "Names may only contain"),
    ("k" * 251, "v", "'key' exceeds the maximum length of 250"),
])
def test_tag_rules(key, value, words: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(api.InvalidParameter) as info:
        api.check_tag(key, value)
    assert words in info.value.message


def test_an_external_version_says_why_it_cannot_load(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from shipyard.models import load_model
    from shipyard.objects import ObjectStore

    with pytest.raises(InputError, match="flavor external"):
        load_model(ObjectStore.open(tmp_path / "objects"), "", "external")
