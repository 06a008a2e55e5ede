"""Online feature reads with their age: Feast's online store (SQLite, Redis, PostgreSQL), opened once.

Feast's ``get_online_features`` ignores the view's TTL and returns expired values as present
(feast-dev/feast#6821), so every value comes back with its event time and the caller decides
whether it is fresh (``Fresh.limit_s``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, InputError, require_extra
from shipyard.features.config import feature_name

TS_SUFFIX = "__ts"  # feast.online_response.TIMESTAMP_POSTFIX


@dataclass(frozen=True)
class Value:
    """One online value and the event time it was observed at (0: none stored)."""

    value: Any
    event_s: float


class OnlineReader:
    """Reads ``refs`` for many entity keys in one call; holds the FeatureStore for its lifetime."""

    def __init__(self, repo: Path, refs: list[str], entity_key: str) -> None:
        require_extra("feast", "feast")
        from feast import FeatureStore

        self.refs = list(refs)
        self.entity_key = entity_key
        try:
            self.store = FeatureStore(repo_path=str(repo))
            views = {ref.split(":", 1)[0] for ref in refs}
            ttls = {name: self.store.get_feature_view(name).ttl for name in views}
            self.ttl_s = {name: ttl.total_seconds() if ttl else 0.0 for name, ttl in ttls.items()}
        except Exception as exc:  # an unapplied registry or an unreachable online store
            raise ConfigError(f"{repo}: the online store cannot be read: {type(exc).__name__}: {exc}",
                              hint="run 'shipyard features materialize' first (it applies the definitions)") from exc
        try:  # Feast loads its registry and connects on the first read: pay that at start, not per request
            self.store.get_online_features(features=self.refs, entity_rows=[{entity_key: 0}])
        except Exception:  # a warm-up read of a key that may not exist or not be an int
            pass

    def read(self, keys: list[Any]) -> dict[str, list[Value]]:
        """{feature name: [Value per key]} for the given entity keys, in order."""
        try:
            got = self.store.get_online_features(
                features=self.refs, entity_rows=[{self.entity_key: k} for k in keys]).to_dict(include_event_timestamps=True)
        except (TypeError, ValueError) as exc:  # a key of the wrong type: the caller's mistake
            raise InputError(f"{self.entity_key}: cannot look up online features: {exc}") from None
        out = {}
        for ref in self.refs:
            name = feature_name(ref)
            stamps = got.get(name + TS_SUFFIX) or [0] * len(keys)
            out[name] = [Value(v, float(ts or 0)) for v, ts in zip(got[name], stamps, strict=True)]
        return out

    def limit_s(self, ref: str, max_age_s: float | None) -> float | None:
        """How old a value of ``ref`` may be: the tighter of the view's TTL and ``max_age_s``."""
        limits = [x for x in (self.ttl_s.get(ref.split(":", 1)[0]) or None, max_age_s) if x]
        return min(limits) if limits else None


def is_fresh(value: Value, limit_s: float | None, now: float | None = None) -> bool:
    """A stored value no older than ``limit_s`` (no limit: any stored value)."""
    if value.value is None or value.event_s <= 0:
        return False
    return limit_s is None or (now or time.time()) - value.event_s <= limit_s
