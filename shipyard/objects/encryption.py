"""Server-side encryption at rest for objects written to S3, declared in the environment.

::

    SHIPYARD_OBJECTS_SSE=aws:kms                     # or AES256 (SSE-S3), aws:kms:dsse
    SHIPYARD_OBJECTS_KMS_KEY_ID=arn:aws:kms:...      # optional with aws:kms: the key (else the AWS-managed key)

Every fsspec filesystem Shipyard opens on an ``s3://`` location (the object store of
``SHIPYARD_OBJECTS``, ``shipyard sync`` remotes, the gateway's request log) gets these as s3fs's
``s3_additional_kwargs``, so every PUT and multipart upload asks S3 to encrypt the object with
them. Reads need nothing: S3 decrypts for any caller the key policy allows. The environment (not
shipyard.yaml) holds it because the object store location does too, and every process that writes
objects (pipeline stages, Dask workers, gateway workers) inherits it. A value S3 would not accept
is refused when the location is opened, naming the variable; nothing is written.
"""

from __future__ import annotations

import os

from shipyard.errors import ConfigError

ENV_SSE = "SHIPYARD_OBJECTS_SSE"
ENV_KMS_KEY = "SHIPYARD_OBJECTS_KMS_KEY_ID"
SSE_VALUES = ("AES256", "aws:kms", "aws:kms:dsse")   # what S3's ServerSideEncryption accepts
_S3_SCHEMES = ("s3://", "s3a://")


def sse_settings() -> dict[str, str]:
    """The S3 request parameters the environment asks for (empty when encryption is not declared)."""
    sse = os.environ.get(ENV_SSE, "").strip()
    key = os.environ.get(ENV_KMS_KEY, "").strip()
    if not sse:
        if key:
            raise ConfigError(f"{ENV_KMS_KEY} is set but {ENV_SSE} is not",
                              hint=f"set {ENV_SSE}=aws:kms to encrypt with that key (or unset {ENV_KMS_KEY})")
        return {}
    if sse not in SSE_VALUES:
        raise ConfigError(f"{ENV_SSE}={sse!r} is not a server-side encryption S3 accepts",
                          hint=f"use one of {', '.join(SSE_VALUES)} (AES256 is SSE-S3; aws:kms uses a KMS key)")
    settings = {"ServerSideEncryption": sse}
    if key:
        if not sse.startswith("aws:kms"):
            raise ConfigError(f"{ENV_KMS_KEY} applies to {ENV_SSE}=aws:kms, not {sse}",
                              hint=f"set {ENV_SSE}=aws:kms, or unset {ENV_KMS_KEY}")
        settings["SSEKMSKeyId"] = key
    return settings


def storage_options(url: str) -> dict[str, object]:
    """fsspec options for opening ``url``: s3fs's ``s3_additional_kwargs`` carrying the declared
    encryption for an S3 location; nothing otherwise. A declared encryption on another object
    store is refused rather than silently not applied."""
    settings = sse_settings()
    if not settings:
        return {}
    if not url.startswith(_S3_SCHEMES):
        raise ConfigError(f"{ENV_SSE} is set, but {url!r} is not an s3:// location: Shipyard cannot ask it to "
                          "encrypt objects",
                          hint=f"unset {ENV_SSE} and use the store's own default encryption (GCS and Azure "
                               "encrypt every object at rest)")
    return {"s3_additional_kwargs": settings}
