"""Routing tables and the strategies that read them.

A routing table is a plain JSON document per model, stored in the store and followed by every
gateway replica::

    {"model": "iris", "strategy": "canary", "champion": 1, "candidate": 2, "weight": 10.0,
     "shadow_percent": 0.0, "sticky": {"header": "x-shipyard-key", "key": null},
     "warm": [1, 2], "deployment": 4, "candidate_timeout_ms": 250.0}

``weight`` is the percentage of traffic the candidate serves; ``shadow_percent`` the percentage of
requests mirrored to it off the request path; ``warm`` the versions kept loaded (the previous
champion stays warm so ``shipyard rollback`` is a pointer flip). Strategies are a lazy table of
dotted paths (STYLE D2): importing this module imports none of them.

Assignment is sticky: a request with a sticky key (header or body field) is hashed into a bucket in
[0, 100); the candidate serves buckets below ``weight``. Raising the weight only moves buckets from
champion to candidate, so a client never flips back while a canary advances.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import xxhash

from shipyard.errors import InputError, did_you_mean
from shipyard.lazy_imports import load

STRATEGIES: dict[str, str] = {
    "single": "shipyard.serving.strategies:Single",
    "canary": "shipyard.serving.strategies:WeightedCanary",
    "bluegreen": "shipyard.serving.strategies:BlueGreen",
    "shadow": "shipyard.serving.strategies:Shadow",
    "ab": "shipyard.serving.strategies:ABTest",
}
ROUTES = ("primary", "canary", "shadow", "a", "b")


@dataclass(frozen=True)
class Assignment:
    """Who serves one request: ``version`` on ``route``; ``fallback`` if that version fails;
    ``shadow`` gets a mirrored copy off the request path."""

    version: int
    route: str
    fallback: int | None = None
    shadow: int | None = None


def strategy_for(table: dict[str, Any]) -> Any:
    """Instantiate the strategy named by ``table['strategy']`` (imported on first use)."""
    name = table.get("strategy", "single")
    path = STRATEGIES.get(name)
    if path is None:
        raise InputError(f"unknown routing strategy {name!r} for model {table.get('model')!r}",
                         hint=did_you_mean(name, STRATEGIES))
    cls = load(path)
    if cls.name != name:
        raise InputError(f"routing strategy {path} declares the name {cls.name!r}, not {name!r}")
    return cls(table)


def bucket_of(key: str | None, rng: random.Random | None = None) -> float:
    """A bucket in [0, 100): the key's hash when there is a key, else a random draw."""
    if key is None:
        return (rng or random).random() * 100.0
    return (xxhash.xxh3_64_intdigest(key.encode()) % 1_000_000) / 10_000.0


def single_table(model: str, version: int, warm: list[int] | None = None) -> dict[str, Any]:
    """The table of a model served by one version."""
    return {"model": model, "strategy": "single", "champion": version, "candidate": None, "weight": 0.0,
            "shadow_percent": 0.0, "sticky": {"header": "x-shipyard-key", "key": None},
            "warm": sorted({version, *(warm or [])}), "deployment": None, "candidate_timeout_ms": 250.0}


def versions_needed(table: dict[str, Any]) -> list[int]:
    """Every version a replica must keep loaded for this table."""
    wanted = {table["champion"], *table.get("warm", [])}
    if table.get("candidate") is not None:
        wanted.add(table["candidate"])
    return sorted(v for v in wanted if v is not None)
