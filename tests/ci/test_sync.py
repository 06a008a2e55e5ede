"""push / pull of objects and run-cache entries, against a plain folder and a local S3 (moto)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.ci.sync import pull, push, resolve_remote
from shipyard.errors import ObjectCorrupt, UsageError
from shipyard.objects import ObjectStore, key_of


def make_side(root: Path, blobs: list[bytes], entries: dict[str, str]) -> tuple[Path, Path, list[str]]:
    objects = root / "objects"
    runcache = root / "runcache"
    store = ObjectStore.open(objects)
    oids = store.put_bytes_many(blobs)
    for name, text in entries.items():
        (runcache / name).parent.mkdir(parents=True, exist_ok=True)
        (runcache / name).write_text(text)
    return objects, runcache, oids


@pytest.fixture
def s3_remote(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "FSSPEC_S3_ENDPOINT_URL": endpoint}.items():
        monkeypatch.setenv(key, value)
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="shared")
    import fsspec

    fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = endpoint
    yield "s3://shared/cache"
    fsspec.config.conf["s3"].pop("endpoint_url", None)
    server.stop()


@pytest.fixture(params=["folder", "s3"])
def remote(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "folder":
        return str(tmp_path / "remote")
    return request.getfixturevalue("s3_remote")


def test_push_then_pull_on_another_machine(tmp_path: Path, remote: str) -> None:
    blobs = [f"object {i}\n".encode() * (i + 1) for i in range(40)]
    objects_a, runcache_a, oids = make_side(tmp_path / "a", blobs, {"ab/stage-fp-1.json": '{"outs": 1}'})
    first = push(objects_a, runcache_a, remote, jobs=4)
    assert first.objects_transferred == 40 and first.objects_skipped == 0
    assert first.runcache_transferred == 1
    assert first.bytes_transferred == sum(len(b) for b in blobs)

    again = push(objects_a, runcache_a, remote, jobs=4)
    assert again.objects_transferred == 0 and again.objects_skipped == 40 and again.runcache_skipped == 1

    # machine B already has 10 of the objects and one entry of its own
    objects_b, runcache_b, _ = make_side(tmp_path / "b", blobs[:10], {"cd/stage-fp-2.json": "{}"})
    pulled = pull(objects_b, runcache_b, remote, jobs=4)
    assert pulled.objects_transferred == 30 and pulled.objects_skipped == 10
    assert pulled.runcache_transferred == 1
    store_b = ObjectStore.open(objects_b)
    assert store_b.get_many(oids) == dict(zip(oids, blobs, strict=True))  # verified reads
    assert (runcache_b / "ab/stage-fp-1.json").read_text() == '{"outs": 1}'
    assert not list(objects_b.glob(".tmp-*")), "staging folder is removed"

    # B pushes its own entry; A pulls it back; nothing else moves.
    back = push(objects_b, runcache_b, remote)
    assert back.objects_transferred == 0 and back.runcache_transferred == 1
    assert pull(objects_a, runcache_a, remote).runcache_transferred == 1


def test_folder_manifests_and_their_files_travel_together(tmp_path: Path, remote: str) -> None:
    data = tmp_path / "a" / "work" / "model"
    data.mkdir(parents=True)
    (data / "weights.bin").write_bytes(os.urandom(2048))
    (data / "meta.json").write_text("{}")
    store = ObjectStore.open(tmp_path / "a" / "objects")
    oid = store.put_path(data)
    push(tmp_path / "a" / "objects", tmp_path / "a" / "runcache", remote)
    pull(tmp_path / "b" / "objects", tmp_path / "b" / "runcache", remote)
    target = tmp_path / "b" / "restored"
    ObjectStore.open(tmp_path / "b" / "objects").checkout(oid, target)
    assert (target / "weights.bin").read_bytes() == (data / "weights.bin").read_bytes()


def test_corrupt_remote_object_is_refused(tmp_path: Path) -> None:
    remote = tmp_path / "remote"
    objects_a, runcache_a, oids = make_side(tmp_path / "a", [b"good one", b"will be damaged"], {})
    push(objects_a, runcache_a, str(remote))
    damaged = remote / key_of(oids[1])
    damaged.chmod(0o644)
    damaged.write_bytes(b"tampered")
    with pytest.raises(ObjectCorrupt) as info:
        pull(tmp_path / "b" / "objects", tmp_path / "b" / "runcache", str(remote))
    assert key_of(oids[1]) in str(info.value)
    assert (tmp_path / "b" / "objects" / key_of(oids[0])).exists()
    assert not (tmp_path / "b" / "objects" / key_of(oids[1])).exists()


def test_listing_not_per_object_requests(tmp_path: Path, s3_remote: str, monkeypatch: pytest.MonkeyPatch) -> None:
    import s3fs

    calls = {"exists": 0, "info": 0, "ls": 0}
    for name in calls:
        original = getattr(s3fs.S3FileSystem, f"_{name}")

        async def spy(self, *args, _name=name, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            calls[_name] += 1
            return await _original(self, *args, **kwargs)

        monkeypatch.setattr(s3fs.S3FileSystem, f"_{name}", spy)
    objects_a, runcache_a, _ = make_side(tmp_path / "a", [f"{i}".encode() for i in range(200)], {})
    push(objects_a, runcache_a, s3_remote)
    pull(tmp_path / "b" / "objects", tmp_path / "b" / "runcache", s3_remote)
    # 200 objects each way: existence comes from a few listings, never one request per object
    # (s3fs's find() may ask _info once about an empty prefix).
    assert calls["exists"] == 0 and calls["info"] <= 4 and calls["ls"] <= 10, calls


def test_remote_must_be_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_OBJECTS", raising=False)
    with pytest.raises(UsageError, match="SHIPYARD_OBJECTS"):
        resolve_remote(None, tmp_path / "objects")
    with pytest.raises(UsageError, match="own object folder"):
        resolve_remote(str(tmp_path / "objects"), tmp_path / "objects")
    monkeypatch.setenv("SHIPYARD_OBJECTS", "s3://bucket/x")
    assert resolve_remote(None, tmp_path / "objects") == "s3://bucket/x"


def test_missing_bucket_is_a_clear_error(tmp_path: Path, s3_remote: str) -> None:
    from shipyard.errors import ShipyardError

    objects, runcache, _ = make_side(tmp_path / "a", [b"x"], {})
    with pytest.raises(ShipyardError) as info:
        push(objects, runcache, "s3://no-such-bucket/cache")
    assert "s3://no-such-bucket/cache" in str(info.value)
    assert info.value.hint and "credentials" in info.value.hint
