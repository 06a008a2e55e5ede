"""Paths that would escape the project or the object store are refused, by name, before any I/O."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shipyard.errors import InputError, NotFound, PathEscapeError
from shipyard.hashing import DIR_SUFFIX, Hasher, Manifest, hash_bytes
from shipyard.objects import ObjectStore, key_of
from shipyard.project import Project, find_project, resolve_inside


@pytest.fixture
def root(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    (proj / "data").mkdir(parents=True)
    (proj / "data" / "a.csv").write_text("x\n1\n")
    (proj / "shipyard.yaml").write_text("pipeline: {stages: {}}\n")
    (tmp_path / "secret.txt").write_text("outside\n")
    return proj


@pytest.mark.parametrize("bad", ["../secret.txt", "data/../../secret.txt", "/etc/passwd", "", "a\x00b"])
def test_resolve_inside_refuses_escapes(root: Path, bad: str) -> None:
    with pytest.raises(PathEscapeError) as err:
        resolve_inside(root, bad, "dep")
    assert "dep" in err.value.message


def test_symlink_pointing_out_is_refused_and_inside_is_fine(root: Path) -> None:
    (root / "out-link").symlink_to(root.parent / "secret.txt")
    (root / "in-link").symlink_to(root / "data" / "a.csv")
    with pytest.raises(PathEscapeError) as err:
        resolve_inside(root, "out-link", "output")
    assert "outside" in err.value.message and err.value.hint
    assert resolve_inside(root, "in-link", "dep") == (root / "data" / "a.csv").resolve()
    assert Project(root).relative("data/../data/a.csv") == "data/a.csv"


def test_find_project_walks_up_and_says_what_to_do(root: Path, tmp_path: Path) -> None:
    assert find_project(root / "data").root == root.resolve()
    with pytest.raises(NotFound) as err:
        find_project(tmp_path)
    assert "shipyard init" in (err.value.hint or "")


def test_hasher_refuses_paths_out_of_the_root(root: Path) -> None:
    hasher = Hasher(root)
    for bad in ("../secret.txt", str(root.parent / "secret.txt")):
        with pytest.raises(PathEscapeError):
            hasher.hash_paths([bad])
    (root / "data" / "leak").symlink_to(root.parent / "secret.txt")
    with pytest.raises(PathEscapeError) as err:
        hasher.manifest("data")
    assert "leak" in err.value.message


def test_object_ids_cannot_name_a_path(tmp_path: Path) -> None:
    objects = ObjectStore.open(tmp_path / "objects")
    for bad in ["../../etc/passwd", "xxh128:../../../etc/passwd", "/etc/passwd", "xxh128:" + "a" * 31 + "/",
                "sha256:" + "a" * 32, "xxh128:" + "A" * 32]:
        with pytest.raises(InputError):
            key_of(bad)
        with pytest.raises(InputError):
            objects.get_bytes(bad)
    assert not (tmp_path / "objects").exists() or not any((tmp_path / "objects").rglob("*"))


@pytest.mark.parametrize("entry", ["../evil.txt", "/tmp/evil.txt", "a/../../evil.txt", "./evil.txt", "a//b"])
def test_crafted_manifest_cannot_write_outside_the_target(tmp_path: Path, entry: str) -> None:
    """A manifest from a shared store is hashed, not signed: its entry paths are checked on read."""
    objects = ObjectStore.open(tmp_path / "objects")
    payload = objects.put_bytes(b"payload")
    data = json.dumps({"v": 1, "entries": [[entry, payload, 7, 0]]}, separators=(",", ":")).encode()
    oid = hash_bytes(data) + DIR_SUFFIX
    objects.backend.write(key_of(oid), data)
    target = tmp_path / "work" / "out"
    target.parent.mkdir()
    with pytest.raises(PathEscapeError):
        objects.checkout(oid, target)
    assert sorted(os.listdir(tmp_path / "work")) == []
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"payload"


def test_manifest_round_trip_of_real_folders(root: Path) -> None:
    manifest = Hasher(root).manifest("data")
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


def test_objects_location_is_decided_once_for_every_reader(root: Path, monkeypatch: pytest.MonkeyPatch,
                                                           tmp_path: Path) -> None:
    """The workspace, the pipeline runner and sync all open the location ``objects_location`` names."""
    from shipyard.pipeline.runner import Context
    from shipyard.workspace import Workspace

    monkeypatch.delenv("SHIPYARD_OBJECTS", raising=False)
    project = Project(root)
    assert project.objects_location == str(project.state_dir / "objects")
    shared = tmp_path / "team-objects"
    monkeypatch.setenv("SHIPYARD_OBJECTS", str(shared))
    assert project.objects_location == str(shared)
    oid = Workspace(project).objects.put_bytes(b"shared bytes")
    assert (shared / key_of(oid)).is_file()
    assert Context(root, project.state_dir).objects_url == str(shared)
