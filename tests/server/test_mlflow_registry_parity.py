"""MLflow's own registry REST tests, ported: ``MlflowClient`` against a real ``shipyard server``.

Ported from mlflow/mlflow ``tests/tracking/test_model_registry.py`` (the flows that run the REST
store against a live server), with the same calls and the same assertions. Where Shipyard differs
on purpose, the port says so and asserts our behaviour instead:

- model names are identifiers (letters, digits, ``.``, ``_``, ``-``): MLflow's ``"UpdateRMTest 2"``
  becomes ``UpdateRMTest-2``;
- stages are deprecated in MLflow and not kept here (every version's stage is ``None``), so the
  ``transition_model_version_stage`` steps are left out;
- MLflow 3.17.2's server (the client installed here) refuses ``runs:/run_id/model`` with
  ``run_id="run_id_1"``: the run in a ``runs:/`` source must be the ``run_id`` given. The
  upstream file predates that rule, so its sources name the run they are registered with.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server.live import live_server

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("parity")
    (root / "shipyard.yaml").write_text("pipeline:\n  stages: {}\n")
    with live_server(root) as url:
        yield url


@pytest.fixture
def client(server: str):  # type: ignore[no-untyped-def]
    from mlflow import MlflowClient

    return MlflowClient(server)


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    """Model names unique to the test (one server serves the module)."""
    return "".join(c for c in request.node.name.title() if c.isalnum())[:60]


def now() -> int:
    return int(time.time() * 1000)


def between(start: int, end: int, value: int) -> None:
    assert start <= value <= end


def test_create_and_query_registered_model_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.entities.model_registry import RegisteredModel

    name = prefix
    tags = {"key": "value", "another key": "some other value", "numeric value": 12345}
    start = now()
    registered_model = client.create_registered_model(name, tags)
    end = now()
    assert isinstance(registered_model, RegisteredModel) and registered_model.name == name
    expected = {"key": "value", "another key": "some other value", "numeric value": "12345"}
    assert registered_model.tags == expected
    detailed = client.get_registered_model(name)
    assert detailed.name == name and detailed.tags == expected
    assert str(detailed.description) == "" and detailed.latest_versions == []
    between(start, end, detailed.creation_timestamp)
    between(start, end, detailed.last_updated_timestamp)
    for filter_string in (None, "", f"name = '{name}'"):
        assert [rm.name for rm in client.search_registered_models(filter_string) if rm.name == name] == [name]


def _all_pages(getter):  # type: ignore[no-untyped-def]
    result = getter(None)
    items = list(result)
    while result.token:
        result = getter(result.token)
        items.extend(result)
    return items


@pytest.mark.parametrize("max_results", [1, 8, 100])
def test_search_registered_model_flow_paginated(client, prefix: str, max_results: int) -> None:  # type: ignore[no-untyped-def]
    names = [f"{prefix}RMsearch{i:03}" for i in range(29)]
    rms = [client.create_registered_model(name) for name in names]
    cases = [
        (f"name LIKE '{prefix}%7'", lambda rm: rm.name.endswith("7")),
        (f"name ILIKE '{prefix.lower()}%rm%00%'", lambda rm: "00" in rm.name.removeprefix(prefix)),
        (f"name LIKE '{prefix.lower()}%rm%00%'", lambda rm: False),
        ("name = 'badname'", lambda rm: False),
        (f"name = '{prefix}RMsearch023'", lambda rm: rm.name == f"{prefix}RMsearch023"),
    ]
    for filter_string, keep in cases:
        found = _all_pages(lambda tok, f=filter_string: client.search_registered_models(
            filter_string=f, max_results=max_results, page_token=tok))
        assert [rm.name for rm in found] == [rm.name for rm in rms if keep(rm)], filter_string


def test_update_registered_model_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    name = prefix
    start_1 = now()
    client.create_registered_model(name)
    end_1 = now()
    new_name = f"{prefix}-2"
    start_2 = now()
    client.rename_registered_model(name=name, new_name=new_name)
    end_2 = now()
    with pytest.raises(MlflowException, match=f"Registered Model with name={name} not found"):
        client.get_registered_model(name)
    detailed = client.get_registered_model(new_name)
    assert detailed.name == new_name and str(detailed.description) == ""
    between(start_1, end_1, detailed.creation_timestamp)
    between(start_2, end_2, detailed.last_updated_timestamp)
    start_3 = now()
    client.update_registered_model(name=new_name, description="This is a test")
    end_3 = now()
    detailed = client.get_registered_model(new_name)
    assert detailed.description == "This is a test"
    between(start_3, end_3, detailed.last_updated_timestamp)
    another = f"{prefix}-4"
    client.update_registered_model(new_name, "4th update")
    client.rename_registered_model(new_name, another)
    detailed = client.get_registered_model(another)
    assert (detailed.name, detailed.description) == (another, "4th update")
    between(start_1, end_1, detailed.creation_timestamp)
    for old in (name, new_name):
        with pytest.raises(MlflowException, match=r"Registered Model with name=.+ not found"):
            client.get_registered_model(old)


def test_delete_registered_model_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    name = prefix
    client.create_registered_model(name)
    assert [rm.name for rm in client.search_registered_models() if rm.name == name] == [name]
    with pytest.raises(MlflowException, match=r"Registered Model .+ already exists"):
        client.create_registered_model(name)
    client.delete_registered_model(name)
    with pytest.raises(MlflowException, match=r"Registered Model .+ not found"):
        client.get_registered_model(name)
    with pytest.raises(MlflowException, match=r"Registered Model .+ not found"):
        client.rename_registered_model(name=name, new_name="something-else")
    assert [rm.name for rm in client.search_registered_models() if rm.name == name] == []
    start = now()
    client.create_registered_model(name)
    end = now()
    between(start, end, client.get_registered_model(name).creation_timestamp)


def test_set_delete_registered_model_tag_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    name = prefix
    client.create_registered_model(name)
    assert client.get_registered_model(name).tags == {}
    for key, value in {"key": "value", "numeric value": 12345}.items():
        client.set_registered_model_tag(name, key, value)
    assert client.get_registered_model(name).tags == {"key": "value", "numeric value": "12345"}
    client.delete_registered_model_tag(name, "key")
    assert client.get_registered_model(name).tags == {"numeric value": "12345"}
    client.set_registered_model_tag(name, "tag_key", "")
    assert {"tag_key": ""}.items() <= client.get_registered_model(name).tags.items()


@pytest.fixture
def many_versions(client, prefix: str):  # type: ignore[no-untyped-def]
    """29 models, 39 versions (the first 10 models get two), newest first, as MLflow's tests."""
    names = [f"{prefix}MV{i:03}" for i in range(29)]
    for name in names:
        client.create_registered_model(name)
    mvs = []
    for name in names + names[:10]:
        time.sleep(0.002)   # distinct timestamps, as MLflow's test does, for a deterministic order
        mvs.append(client.create_model_version(name, "runs:/run_id/model", "run_id"))
    return prefix, mvs[::-1]


def _versions(found):  # type: ignore[no-untyped-def]
    return [(mv.name, mv.version) for mv in found]


@pytest.mark.parametrize(("filter_string", "keep"), [
    (None, lambda mv, p: mv.name.startswith(p)),
    ("name LIKE '{p}%2'", lambda mv, p: mv.name.endswith("2")),
    ("name ILIKE '{lp}mv%00%'", lambda mv, p: "00" in mv.name.removeprefix(p)),
    ("name LIKE '{lp}mv%00%'", lambda mv, p: False),
    ("name = 'badname'", lambda mv, p: False),
    ("name = '{p}MV003'", lambda mv, p: mv.name == f"{p}MV003"),
])
def test_search_model_versions_filter_string(client, many_versions, filter_string, keep) -> None:  # type: ignore[no-untyped-def]
    prefix, mvs = many_versions
    text = filter_string.format(p=prefix, lp=prefix.lower()) if filter_string else f"name LIKE '{prefix}%'"
    found = _all_pages(lambda tok: client.search_model_versions(filter_string=text, page_token=tok))
    expected = sorted((mv for mv in mvs if keep(mv, prefix)), key=lambda x: x.last_updated_timestamp, reverse=True)
    assert _versions(found) == _versions(expected)


@pytest.mark.parametrize("max_results", [1, 8, 100])
def test_search_model_versions_max_results(client, many_versions, max_results: int) -> None:  # type: ignore[no-untyped-def]
    prefix, mvs = many_versions
    found = _all_pages(lambda tok: client.search_model_versions(f"name LIKE '{prefix}%'", max_results=max_results,
                                                                page_token=tok))
    assert _versions(found) == _versions(sorted(mvs, key=lambda x: x.last_updated_timestamp, reverse=True))


@pytest.mark.parametrize(("order_by", "key", "desc"), [
    (None, None, False),
    (["name DESC"], lambda mv: (mv.name, mv.version), True),
    (["version_number DESC"], lambda mv: (-int(mv.version), mv.name), False),
])
def test_search_model_versions_order_by(client, many_versions, order_by, key, desc) -> None:  # type: ignore[no-untyped-def]
    prefix, mvs = many_versions
    found = _all_pages(lambda tok: client.search_model_versions(f"name LIKE '{prefix}%'", order_by=order_by,
                                                                page_token=tok))
    if key:
        expected = sorted(mvs, key=key, reverse=desc)
    else:
        expected = sorted(mvs, key=lambda x: (-int(x.last_updated_timestamp), x.name, -int(x.version)))
    assert _versions(found) == _versions(expected)


def test_create_and_query_model_version_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    name = prefix
    tags = {"key": "value", "another key": "some other value", "numeric value": 12345}
    client.create_registered_model(name)
    mv1 = client.create_model_version(name, "runs:/run_id_1/model", "run_id_1", tags)
    assert (mv1.version, mv1.name) == ("1", name)
    expected_tags = {"key": "value", "another key": "some other value", "numeric value": "12345"}
    assert mv1.tags == expected_tags
    mvd1 = client.get_model_version(name, "1")
    assert mvd1.tags == expected_tags
    assert [rm.latest_versions for rm in client.search_registered_models() if rm.name == name] == [[mvd1]]
    mv2 = client.create_model_version(name, "runs:/run_id_1/another_model", "run_id_1")
    assert mv2.version == "2"
    mvd2 = client.get_model_version(name, "2")
    assert [rm.latest_versions for rm in client.search_registered_models() if rm.name == name] == [[mvd2]]
    by_name = client.search_model_versions(f"name = '{name}'")
    assert {mv.version for mv in by_name} == {"1", "2"} and {mv.name for mv in by_name} == {name}
    assert client.create_model_version(name, "runs:/run_id_2/another_model", "run_id_2").version == "3"
    assert client.search_model_versions(f"name = '{name}' AND source_path = 'runs:/run_id_1/model'") == [mvd1]
    assert client.search_model_versions(f"name = '{name}' AND run_id = 'run_id_1'") == [mvd2, mvd1]
    assert client.get_model_version_download_uri(name, "1") == "runs:/run_id_1/model"


def test_get_model_version(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    client.create_registered_model(prefix)
    client.create_model_version(prefix, "runs:/run_id_1/model", "run_id_1")
    model_version = client.get_model_version(prefix, "1")
    assert (model_version.name, model_version.version) == (prefix, "1")
    message = "Parameter 'version' must be an integer, got 'something not correct'."
    with pytest.raises(MlflowException, match=f"INVALID_PARAMETER_VALUE: {message}"):
        client.get_model_version(name=prefix, version="something not correct")


def test_update_model_version_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    name = prefix
    start_0 = now()
    client.create_registered_model(name)
    end_0 = now()
    start_1 = now()
    client.create_model_version(name, "runs:/run_id_1/model", "run_id_1")
    end_1 = now()
    mvd1 = client.get_model_version(name, "1")
    assert str(mvd1.description) == ""
    between(start_1, end_1, mvd1.creation_timestamp)
    rmd2 = client.get_registered_model(name)   # creating a version touches the model
    between(start_0, end_0, rmd2.creation_timestamp)
    between(start_1, end_1, rmd2.last_updated_timestamp)
    start_3 = now()
    client.update_model_version(name=name, version=1, description="This is a test model")
    end_3 = now()
    mvd1c = client.get_model_version(name, "1")
    assert str(mvd1c.description) == "This is a test model"
    between(start_1, end_1, mvd1c.creation_timestamp)
    between(start_3, end_3, mvd1c.last_updated_timestamp)
    # a version's description does not touch the model
    between(start_1, end_1, client.get_registered_model(name).last_updated_timestamp)


def test_delete_model_version_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    from mlflow.exceptions import MlflowException

    name = prefix
    client.create_registered_model(name)
    client.create_model_version(name, "runs:/run_id_1/model", "run_id_1")
    client.create_model_version(name, "runs:/run_id_1/another_model", "run_id_1")
    assert client.create_model_version(name, "runs:/run_id_2/a/b/c", "run_id_2").version == "3"
    assert client.get_registered_model(name).latest_versions[0].version == "3"
    start_2 = now()
    client.delete_model_version(name, "1")
    end_2 = now()
    assert {mv.version for mv in client.search_model_versions(f"name = '{name}'")} == {"2", "3"}
    between(start_2, end_2, client.get_registered_model(name).last_updated_timestamp)
    with pytest.raises(MlflowException, match=r"Model Version .+ not found"):
        client.delete_model_version(name, "1")
    with pytest.raises(MlflowException, match=r"Model Version .+ not found"):
        client.update_model_version(name=name, version=1, description="Test model")
    client.delete_model_version(name, 3)
    assert {mv.version for mv in client.search_model_versions(f"name = '{name}'")} == {"2"}
    assert client.create_model_version(name, "runs:/run_id_2/a/b/c", "run_id_2").version == "4"
    assert {mv.version for mv in client.search_model_versions(f"name = '{name}'")} == {"2", "4"}


def test_set_delete_model_version_tag_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    name = prefix
    client.create_registered_model(name)
    client.create_model_version(name, "runs:/run_id_1/model", "run_id_1")
    assert client.get_model_version(name, "1").tags == {}
    for key, value in {"key": "value", "numeric value": 12345}.items():
        client.set_model_version_tag(name, "1", key, value)
    assert client.get_model_version(name, "1").tags == {"key": "value", "numeric value": "12345"}
    client.delete_model_version_tag(name, "1", "key")
    assert client.get_model_version(name, "1").tags == {"numeric value": "12345"}
    client.set_model_version_tag(name, "1", "tag_key", "")
    assert {"tag_key": ""}.items() <= client.get_model_version(name, "1").tags.items()


def test_set_delete_registered_model_alias_and_get_model_version_by_alias_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    name = prefix
    client.create_registered_model(name)
    client.create_model_version(name, "runs:/run_id_1/model", "run_id_1")
    assert client.get_registered_model(name).aliases == {} and client.get_model_version(name, "1").aliases == []
    client.set_registered_model_alias(name, "test_alias", "1")
    assert client.get_registered_model(name).aliases == {"test_alias": "1"}
    mv = client.get_model_version(name, "1")
    assert mv.aliases == ["test_alias"]
    assert client.get_model_version_by_alias(name, "test_alias") == mv
    client.delete_registered_model_alias(name, "test_alias")
    assert client.get_registered_model(name).aliases == {} and client.get_model_version(name, "1").aliases == []


def test_copy_model_version_flow(client, prefix: str) -> None:  # type: ignore[no-untyped-def]
    name = prefix
    client.create_registered_model(name)
    src_mv = client.create_model_version(name, "runs:/run_id_1/model", "run_id_1", description="dummy",
                                         tags={"hello": "world"})
    client.set_registered_model_alias(name, "test_alias", "1")
    copy_mv = client.copy_model_version(f"models:/{name}@test_alias", name)
    assert (copy_mv.version, copy_mv.name) == ("2", name)
    copy_mv = client.get_model_version(name, 2)
    assert copy_mv.source == f"models:/{name}/1"
    assert (copy_mv.description, copy_mv.run_id, copy_mv.tags) == ("dummy", "run_id_1", {"hello": "world"})
    assert client.get_model_version_download_uri(name, 2) == src_mv.source


def test_paths_on_the_server_are_refused_as_mlflow_does(client, prefix: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """MLflow's handlers after the path-traversal CVEs (``_validate_source_run``): a local path
    is refused unless it lies inside the artifact directory of the given run."""
    from mlflow.exceptions import MlflowException

    client.create_registered_model(prefix)
    for source in ("/etc", "file:///etc/passwd", str(tmp_path), "s3://bucket/../../etc"):
        with pytest.raises(MlflowException, match="Invalid model version source") as info:
            client.create_model_version(prefix, source, "run_id")
        assert info.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.search_model_versions(f"name = '{prefix}'") == []
