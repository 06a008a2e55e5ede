"""The ``supply:`` section of shipyard.yaml (pydantic models only: nothing heavy imported here).

::

    supply:
      scan: refuse                   # at registration: refuse a model with findings, or "record" them
      allow_globals: [mypkg.MyTransformer, mypkg.features.*]   # your own classes in pickles
      sbom: true                     # a CycloneDX SBOM of the training environment per version
      vulnerability_service: https://api.osv.dev   # what `shipyard scan --deps` asks (OSV API)
      signing_key: keys/model-signing.pem          # sign every new version with this private key
      verify_keys: [keys/model-signing.pub, keys/old.pub]   # public keys accepted when loading
      require_signature: false       # refuse to load an unsigned version
      classified: {pii: [name], confidential: [salary]}   # declared column classes (the PII scan adds its own)
      request_log: {redact: [email], hash: [customer_id], retention: 30d}   # the gateway's request log
                                     # (hash: needs SHIPYARD_LOG_HASH_KEY, or allow_unkeyed_hash: true)

``shipyard.config`` imports this module, so it may import nothing above the foundations.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

_GLOBAL = re.compile(r"[A-Za-z_][\w.]*\.(\*|[A-Za-z_]\w*)")


class RequestLogPolicy(BaseModel):
    """``supply.request_log``: personal data in the gateway's request log."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    redact: list[str] = Field(default_factory=list)    # feature names written as nulls
    hash: list[str] = Field(default_factory=list)      # feature names written as keyed SHA-256 digests
    retention: str | None = None                       # "30d": older hour partitions are deleted (audited)
    # hashing without SHIPYARD_LOG_HASH_KEY is reversible by trying values: the gateway refuses to
    # start unless the key is set or this explicit opt-out says the digests need not be secret
    allow_unkeyed_hash: bool = False

    @field_validator("retention")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            from shipyard.durations import parse_duration

            if parse_duration(value) <= 0:
                raise ValueError("retention must be a positive duration such as 30d")
        return value


class SupplySection(BaseModel):
    """``supply``: scanning, SBOM, vulnerability audit and signing policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scan: Literal["refuse", "record", "off"] = "refuse"
    allow_globals: list[str] = Field(default_factory=list)
    sbom: bool = True
    vulnerability_service: str = "https://api.osv.dev"
    signing_key: str | None = None
    verify_keys: list[str] = Field(default_factory=list)
    require_signature: bool = False
    classified: dict[str, list[str]] = Field(default_factory=dict)   # {pii: [name], confidential: [salary]}
    request_log: RequestLogPolicy = Field(default_factory=RequestLogPolicy)

    @field_validator("scan", mode="before")
    @classmethod
    def _off(cls, value: object) -> object:
        return "off" if value is False else value   # YAML reads a bare `off` as false

    @field_validator("allow_globals")
    @classmethod
    def _dotted(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not _GLOBAL.fullmatch(entry):
                raise ValueError(f"{entry!r} is not module.Name or module.*")
        return value
