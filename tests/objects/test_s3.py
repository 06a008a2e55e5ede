"""The fsspec backend against a local S3 server (moto in server mode on 127.0.0.1, through s3fs)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from shipyard.errors import ObjectCorrupt
from shipyard.hashing import Hasher
from shipyard.objects import FsspecBackend, ObjectStore, key_of
from tests.conftest import run_cli


@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A fresh moto S3 server on a random local port with a bucket 'objects'; yields the env to use."""
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "FSSPEC_S3_ENDPOINT_URL": endpoint}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    import boto3
    import fsspec

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="objects")
    previous = fsspec.config.conf.get("s3", {}).get("endpoint_url")
    fsspec.config.conf.setdefault("s3", {})["endpoint_url"] = endpoint
    yield {**env, "endpoint": endpoint}
    if previous is None:
        fsspec.config.conf["s3"].pop("endpoint_url", None)
    else:
        fsspec.config.conf["s3"]["endpoint_url"] = previous
    server.stop()


def s3_client(s3: dict[str, str]):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=s3["endpoint"], region_name="us-east-1")


def test_put_get_verify_round_trip(s3: dict[str, str]) -> None:
    objects = ObjectStore.open("s3://objects/team/cache")
    assert isinstance(objects.backend, FsspecBackend)
    blobs = [f"blob {i}\n".encode() * (i + 1) for i in range(30)]
    oids = objects.put_bytes_many(blobs)
    assert objects.get_many(oids) == dict(zip(oids, blobs, strict=True))
    assert objects.verify_all() == []
    listed = sorted(objects.backend.list())
    assert listed == sorted(key_of(o) for o in oids)
    keys = s3_client(s3).list_objects_v2(Bucket="objects", Prefix="team/cache/")["Contents"]
    assert sorted(k["Key"].removeprefix("team/cache/") for k in keys) == listed
    missing = "xxh128:" + "0" * 32
    assert objects.has_many([*oids, missing]) == {**dict.fromkeys(oids, True), missing: False}


def test_exists_many_sees_changes_made_by_others(s3: dict[str, str]) -> None:
    """Both paths (one HEAD per key; one listing per busy shard) must not trust a stale cache."""
    backend = FsspecBackend("s3://objects/shared")
    busy = [f"xxh128/ab/{i:030x}" for i in range(10)]  # many in one shard: listed
    lone = ["xxh128/cd/" + "1" * 30]  # one in its shard: probed
    for key in busy[:6] + lone:
        backend.write(key, b"x")
    assert backend.exists_many(busy + lone) == {**{k: i < 6 for i, k in enumerate(busy)}, lone[0]: True}
    client = s3_client(s3)  # another machine deletes two objects and adds one
    client.delete_object(Bucket="objects", Key=f"shared/{busy[0]}")
    client.delete_object(Bucket="objects", Key=f"shared/{lone[0]}")
    client.put_object(Bucket="objects", Key=f"shared/{busy[9]}", Body=b"x")
    expected = {k: (0 < i < 6 or i == 9) for i, k in enumerate(busy)}
    assert backend.exists_many(busy + lone) == {**expected, lone[0]: False}
    assert backend.exists_many([]) == {}


def test_folder_put_and_checkout(s3: dict[str, str], tmp_path: Path) -> None:
    src = tmp_path / "proj" / "model"
    (src / "nested").mkdir(parents=True)
    (src / "weights.bin").write_bytes(os.urandom(3_000_000))  # larger than one multipart chunk
    (src / "nested" / "card.md").write_text("# model\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    objects = ObjectStore.open("s3://objects/models")
    oid = objects.put_path(src, Hasher(tmp_path / "proj"))
    assert oid.endswith(".dir")
    out = tmp_path / "restored"
    objects.checkout(oid, out)
    assert (out / "weights.bin").read_bytes() == (src / "weights.bin").read_bytes()
    assert (out / "nested" / "card.md").read_text() == "# model\n"
    assert os.access(out / "run.sh", os.X_OK)
    assert objects.put_path(src, Hasher(tmp_path / "proj")) == oid  # idempotent, nothing re-sent


def test_corrupt_s3_object_is_refused(s3: dict[str, str], tmp_path: Path) -> None:
    objects = ObjectStore.open("s3://objects/c")
    oid = objects.put_bytes(b"the real model")
    s3_client(s3).put_object(Bucket="objects", Key=f"c/{key_of(oid)}", Body=b"tampered")
    with pytest.raises(ObjectCorrupt) as err:
        objects.get_bytes(oid)
    assert oid in err.value.message
    assert objects.verify_all() == [oid]
    target = tmp_path / "out.bin"
    target.write_text("mine")
    with pytest.raises(ObjectCorrupt):
        objects.checkout(oid, target)
    assert target.read_text() == "mine" and not list(tmp_path.glob(".*shipyard-tmp"))


@pytest.mark.slow
def test_doctor_with_s3_objects(s3: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in s3.items() if k != "endpoint"}
    assert run_cli("init", cwd=tmp_path).returncode == 0
    ObjectStore.open("s3://objects/proj").put_bytes(b"kept")
    result = run_cli("doctor", "--json", "--verify-objects", cwd=tmp_path,
                     env={**env, "SHIPYARD_OBJECTS": "s3://objects/proj"})
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert checks["objects"]["status"] == "ok"
    assert "s3://objects/proj" in checks["objects"]["detail"] and "all 1 objects verified" in checks["objects"]["detail"]
    # the probe object was removed again: only our object is left
    keys = s3_client(s3).list_objects_v2(Bucket="objects", Prefix="proj/")["Contents"]
    assert len(keys) == 1

    missing = run_cli("doctor", "--json", cwd=tmp_path, env={**env, "SHIPYARD_OBJECTS": "s3://no-such-bucket/x"})
    assert missing.returncode == 1
    objects_check = {c["check"]: c for c in json.loads(missing.stdout)}["objects"]
    assert objects_check["status"] == "fail" and "no-such-bucket" in objects_check["detail"]
