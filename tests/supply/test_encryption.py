"""Encryption at rest: objects and request-log parts written to S3 (a local moto server, through
s3fs) carry the server-side encryption SHIPYARD_OBJECTS_SSE declares; a bad value is refused."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from shipyard.errors import ConfigError
from shipyard.objects import ObjectStore
from shipyard.objects.encryption import ENV_KMS_KEY, ENV_SSE, storage_options
from tests.objects.test_s3 import s3, s3_client  # noqa: F401  (the moto S3 server fixture)

pytestmark = pytest.mark.filterwarnings("ignore")


def _kms_key(s3: dict[str, str]) -> str:  # noqa: F811
    import boto3

    kms = boto3.client("kms", endpoint_url=s3["endpoint"], region_name="us-east-1")
    return kms.create_key(Description="shipyard test")["KeyMetadata"]["Arn"]


def _encryption(s3: dict[str, str], prefix: str) -> dict[str, tuple[str | None, str | None]]:  # noqa: F811
    """{key: (ServerSideEncryption, SSEKMSKeyId)} of every object under ``prefix``, from HEAD."""
    client = s3_client(s3)
    out = {}
    for item in client.list_objects_v2(Bucket="objects", Prefix=prefix).get("Contents", []):
        head = client.head_object(Bucket="objects", Key=item["Key"])
        out[item["Key"]] = (head.get("ServerSideEncryption"), head.get("SSEKMSKeyId"))
    return out


def test_objects_packages_and_request_log_parts_are_encrypted_with_the_declared_key(
        s3: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from shipyard.models import package_model, save_model
    from shipyard.serving.logstore import LogFolder

    key = _kms_key(s3)
    monkeypatch.setenv(ENV_SSE, "aws:kms")
    monkeypatch.setenv(ENV_KMS_KEY, key)
    objects = ObjectStore.open("s3://objects/enc/objects")
    objects.put_bytes(b"a blob")
    (tmp_path / "data.bin").write_bytes(b"x" * 10_000)
    objects.put_path(tmp_path / "data.bin")   # a file upload (put_file), not a single pipe
    X = np.random.default_rng(0).random((40, 2))
    save_model(LogisticRegression().fit(X, X[:, 0] > 0.5), tmp_path / "model", "sklearn")
    package_model(objects, tmp_path / "model", "sklearn")   # model file, shipyard-model.json, manifest
    LogFolder.of("s3://objects/enc/requests/model=m").write_parquet(pa.table({"x": [1.0]}))

    stored = _encryption(s3, "enc/")
    assert len([k for k in stored if k.startswith("enc/objects/")]) >= 5
    assert any(k.startswith("enc/requests/model=m/part-") for k in stored)
    assert set(stored.values()) == {("aws:kms", key)}, stored

    # SSE-S3, no key; and without the setting the bucket's default applies (moto: none)
    monkeypatch.setenv(ENV_SSE, "AES256")
    monkeypatch.delenv(ENV_KMS_KEY)
    ObjectStore.open("s3://objects/sse-s3").put_bytes(b"another blob")
    assert set(_encryption(s3, "sse-s3/").values()) == {("AES256", None)}
    monkeypatch.delenv(ENV_SSE)
    ObjectStore.open("s3://objects/plain").put_bytes(b"a third blob")
    assert set(_encryption(s3, "plain/").values()) == {(None, None)}


@pytest.mark.parametrize(("sse", "key", "message"), [
    ("rot13", "", r"SHIPYARD_OBJECTS_SSE='rot13' is not a server-side encryption S3 accepts"),
    ("", "arn:aws:kms:us-east-1:1:key/x", r"SHIPYARD_OBJECTS_KMS_KEY_ID is set but SHIPYARD_OBJECTS_SSE is not"),
    ("AES256", "arn:aws:kms:us-east-1:1:key/x", r"SHIPYARD_OBJECTS_KMS_KEY_ID applies to SHIPYARD_OBJECTS_SSE=aws:kms"),
])
def test_bad_settings_name_the_variable(sse: str, key: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SSE, sse)
    monkeypatch.setenv(ENV_KMS_KEY, key)
    with pytest.raises(ConfigError, match=message):
        storage_options("s3://bucket/prefix")


def test_a_declared_encryption_is_not_silently_dropped_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_SSE, "aws:kms")
    assert storage_options("s3://b/p") == {"s3_additional_kwargs": {"ServerSideEncryption": "aws:kms"}}
    with pytest.raises(ConfigError, match=r"'memory://x' is not an s3:// location"):
        ObjectStore.open("memory://x")
    ObjectStore.open(Path("/tmp") / "shipyard-local-objects-are-not-s3")   # a local folder: not asked


def test_the_cli_refuses_a_bad_value_and_writes_nothing(project: Any, s3: dict[str, str]) -> None:  # noqa: F811
    from tests.conftest import run_cli

    root = project.project.root
    (root / "d.csv").write_text("x,y\n1,2\n")
    done = run_cli("data", "add", "d.csv", cwd=root,
                   env={"SHIPYARD_OBJECTS": "s3://objects/cli", ENV_SSE: "aws:kms:yes", **s3})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "SHIPYARD_OBJECTS_SSE='aws:kms:yes'" in done.stderr and "AES256" in done.stderr
    assert _encryption(s3, "cli/") == {}
