import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.errors import InputError, ObjectCorrupt
from shipyard.hashing import Hasher, StatCache, hash_file
from shipyard.objects import ObjectStore, key_of


def test_bytes_round_trip_and_dedup(tmp_path: Path) -> None:
    objects = ObjectStore.open(tmp_path / "objects")
    a, b = objects.put_bytes_many([b"hello", b"hello"])
    assert a == b and a.startswith("xxh128:")
    assert objects.get_bytes(a) == b"hello"
    assert len(list(objects.backend.list())) == 1


def test_corrupt_object_is_an_error_naming_it(tmp_path: Path) -> None:
    objects = ObjectStore.open(tmp_path / "objects")
    oid = objects.put_bytes(b"model weights")
    path = tmp_path / "objects" / key_of(oid)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    with pytest.raises(ObjectCorrupt) as err:
        objects.get_bytes(oid)
    assert oid in err.value.message
    assert objects.verify_all() == [oid]


def test_every_read_path_verifies_one_object_or_many(tmp_path: Path) -> None:
    """get_bytes reads one object on the calling thread, get_many several in a pool: both hash."""
    objects = ObjectStore.open(tmp_path / "objects")
    good, bad = objects.put_bytes_many([b"kept", b"to be tampered"])
    path = tmp_path / "objects" / key_of(bad)
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert objects.get_many([good]) == {good: b"kept"}
    for read in (lambda: objects.get_many([good, bad]), lambda: objects.get_many([bad]), lambda: objects.get_bytes(bad)):
        with pytest.raises(ObjectCorrupt) as err:
            read()
        assert bad in err.value.message


def test_folder_round_trip(tmp_path: Path) -> None:
    src = tmp_path / "proj" / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    hasher = Hasher(tmp_path / "proj", StatCache(tmp_path / "stat.db"))
    objects = ObjectStore.open(tmp_path / "objects")
    oid = objects.put_path(src, hasher)
    assert oid.endswith(".dir")
    out = tmp_path / "restored"
    objects.checkout(oid, out)
    assert (out / "sub" / "b.txt").read_text() == "b"
    assert hash_file(out / "a.txt") == hash_file(src / "a.txt")


def test_ids_that_are_not_ours_are_refused() -> None:
    for bad in ["../../etc/passwd", "xxh128:../../x", "md5:abc", "xxh128:" + "g" * 32]:
        with pytest.raises(InputError):
            key_of(bad)


def test_stat_cache_skips_unchanged_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    for i in range(20):
        (tmp_path / "d" / f"{i}.txt").write_text(str(i))
    cache = StatCache(tmp_path / "stat.db")
    first = Hasher(tmp_path, cache).manifest("d")
    assert len(cache.lookup_prefix("d")) == 20
    (tmp_path / "d" / "3.txt").write_text("changed")
    second = Hasher(tmp_path, cache).manifest("d")
    assert first.oid != second.oid
    changed = [a.path for a, b in zip(first.entries, second.entries, strict=True) if a.oid != b.oid]
    assert changed == ["3.txt"]


def test_full_disk_stores_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC in the middle of a write (here: at fsync) leaves no object and no temp file."""
    import errno
    import os

    from shipyard.errors import StorageFull

    objects = ObjectStore.open(tmp_path / "objects")
    kept = objects.put_bytes(b"already stored")

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(StorageFull) as err:
        objects.put_bytes(b"x" * 100_000)
    assert "no space left" in err.value.message and "free some disk space" in (err.value.hint or "")
    assert "gc" not in (err.value.hint or "")  # no command that does not exist
    src = tmp_path / "big.bin"
    src.write_bytes(b"y" * 3_000_000)
    with pytest.raises(StorageFull):
        objects.put_path(src)
    monkeypatch.undo()
    assert list(objects.backend.list()) == [key_of(kept)]
    assert not list((tmp_path / "objects").rglob(".tmp-*"))


def test_failed_checkout_leaves_the_target_alone(tmp_path: Path) -> None:
    src = tmp_path / "proj" / "model"
    src.mkdir(parents=True)
    (src / "a.bin").write_bytes(b"weights")
    (src / "b.txt").write_text("card")
    objects = ObjectStore.open(tmp_path / "objects")
    oid = objects.put_path(src, Hasher(tmp_path / "proj"))
    bad = objects.manifest(oid).entries[0].oid
    path = tmp_path / "objects" / key_of(bad)
    path.chmod(0o644)
    path.write_bytes(b"evil")
    target = tmp_path / "out"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(ObjectCorrupt) as err:
        objects.checkout(oid, target)
    assert bad in err.value.message and "doctor --verify-objects" in (err.value.hint or "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects", "out", "proj"]
    assert [p.name for p in target.iterdir()] == ["mine.txt"]


@pytest.fixture
def read_only_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nobody can write in: mode 0555 for a normal user; root ignores modes, so for root
    a read-only bind mount of it (skipped where mounting is not allowed)."""
    folder = tmp_path / "state"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"root here cannot make a read-only folder (mount: {done.stderr.decode().strip()})")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True, check=True)
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], capture_output=True, check=False)


def test_stat_cache_in_a_read_only_folder_is_skipped_not_fatal(tmp_path: Path, read_only_folder: Path) -> None:
    with pytest.raises(OSError):  # the folder really is read-only
        (read_only_folder / "probe").write_text("x")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f.txt").write_text("f")
    cache = StatCache(read_only_folder / "stat.db")
    manifest = Hasher(tmp_path, cache).manifest("d")
    assert [e.path for e in manifest.entries] == ["f.txt"]
    assert cache._connect() is None and cache._unusable  # skipped, and not tried again per file
    assert not (read_only_folder / "stat.db").exists()
