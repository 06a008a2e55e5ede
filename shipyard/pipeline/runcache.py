"""The run cache: stage fingerprint -> the outputs that inputs with that fingerprint produced.

Entries live in the object store's backend under ``runcache/v1/<2 hex>/<30 hex>.json`` next to the
objects they name, so any machine or branch that shares the object store (a shared folder, a bucket,
or ``shipyard push``/``pull``) restores a stage's outputs instead of running it. An entry is small
JSON naming the fingerprint (checked on read), the stage, and each out's path and object id. The
newest entry for a fingerprint wins; entries are written atomically by the backend.
"""

from __future__ import annotations

import json
from typing import Any

from shipyard.errors import NotFound, ShipyardError

PREFIX = "runcache"
VERSION = "v1"


def key_of(fingerprint: str) -> str:
    digest = fingerprint.partition(":")[2]
    if len(digest) != 32 or not all(c in "0123456789abcdef" for c in digest):
        raise ValueError(f"not a fingerprint: {fingerprint!r}")
    return f"{PREFIX}/{VERSION}/{digest[:2]}/{digest[2:]}.json"


def lookup(objects: Any, fingerprint: str) -> dict[str, Any] | None:
    """The entry for ``fingerprint`` whose every object is present, or None."""
    key = key_of(fingerprint)
    try:
        entry = json.loads(objects.backend.read(key))
    except (NotFound, FileNotFoundError, ValueError):
        return None
    except ShipyardError:
        return None
    if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint:
        return None
    oids = [o["hash"] for o in entry.get("outs", [])]
    present = objects.has_many(oids)
    if not all(present.values()):
        return None
    return entry


def save(objects: Any, fingerprint: str, stage: str, outs: list[dict[str, Any]]) -> None:
    entry = {"fingerprint": fingerprint, "stage": stage, "outs": outs}
    objects.backend.write(key_of(fingerprint), json.dumps(entry, sort_keys=True, indent=1).encode())
