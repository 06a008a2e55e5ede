"""Online feature reads with their age: Feast's online store (SQLite, Redis, PostgreSQL), opened once.

Feast's ``get_online_features`` ignores the view's TTL and returns expired values as present
(feast-dev/feast#6821), so every value comes back with its event time and the caller decides
whether it is fresh (``OnlineReader.limit_s``, ``is_fresh``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.errors import ConfigError, InputError, ShipyardError, require_extra

KEY_CACHE = 100_000  # entity keys whose Feast protos are kept (a few hundred bytes each)
SCALARS = frozenset({"int32_val", "int64_val", "double_val", "float_val", "string_val", "bytes_val", "bool_val"})


@dataclass(frozen=True)
class Value:
    """One online value and the event time it was observed at (0: none stored)."""

    value: Any
    event_s: float


class OnlineReader:
    """Reads ``refs`` for many entity keys in one call, through the online store's own ``online_read``.

    Everything that does not depend on the request is resolved once, at start-up: the feature views
    (from the applied registry), the features asked of each, the entity's value type and the store's
    connection. A request then costs the key conversion, one ``online_read`` per view (Feast's own
    storage code: SQLite, Redis, PostgreSQL...) and the value conversion; Feast's
    ``get_online_features`` re-resolves all of that on every call (about 0.5 ms of Python per read).
    """

    def __init__(self, repo: Path, refs: list[str], entity_key: str) -> None:
        require_extra("feast", "feast")
        from feast import FeatureStore
        from feast.infra.provider import get_provider

        self.refs = list(refs)
        self.entity_key = entity_key
        try:
            store = FeatureStore(repo_path=str(repo))
            self.config = store.config
            self.provider = get_provider(store.config)
            self.views = self._plan(store)
        except ShipyardError:
            raise
        except Exception as exc:  # an unapplied registry or an unreachable online store
            raise ConfigError(f"{repo}: the online store cannot be read: {type(exc).__name__}: {exc}",
                              hint="run 'shipyard features materialize' first (it applies the definitions)") from exc
        self.ttl_s = {view.name: ttl for view, _, ttl in self.views}
        try:  # the store connects on its first read: pay that at start, not on the first request
            self.provider.online_read(self.config, self.views[0][0], self._entity_keys([self._probe]), None)
        except Exception:  # a warm-up read of a key that may not exist
            pass

    def _plan(self, store: Any) -> list[tuple[Any, list[str], float]]:
        """[(registry feature view, its requested features, TTL in seconds)], views in ref order;
        also sets the entity key's Feast value type (one entity key for every view)."""
        from feast import ValueType
        from feast.type_map import python_values_to_proto_values

        grouped: dict[str, list[str]] = {}
        for ref in self.refs:
            view, _, feature = ref.partition(":")
            grouped.setdefault(view, []).append(feature)
        plan = []
        value_types = set()
        for name, features in grouped.items():
            view = store.get_feature_view(name)
            keys = [column.name for column in view.entity_columns]
            if keys != [self.entity_key]:
                raise ConfigError(f"features.serve: view {name!r} is keyed by {', '.join(keys) or 'nothing'}, "
                                  f"not by entity_key {self.entity_key!r}",
                                  hint="enrich with the views of one entity, named by entity_key")
            unknown = [f for f in features if f not in {field.name for field in view.features}]
            if unknown:
                raise ConfigError(f"features.serve: view {name!r} has no feature {', '.join(unknown)}",
                                  hint=f"its features: {', '.join(f.name for f in view.features)}")
            for entity in view.entities:
                value_types.add(store.get_entity(entity).value_type)
            plan.append((view, features, view.ttl.total_seconds() if view.ttl else 0.0))
        # one declared type: keys convert without Feast guessing it from the first value
        self.value_type = value_types.pop() if len(value_types) == 1 else ValueType.UNKNOWN
        self._to_proto = python_values_to_proto_values
        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.type_map import feast_value_type_to_python_type

        # bound once: the request path runs no import statement
        self._entity_key, self._to_python = EntityKey, feast_value_type_to_python_type
        self._keys: dict[tuple[type, Any], Any] = {}
        self._probe = 0 if "INT" in self.value_type.name else "0"
        return plan

    def _entity_keys(self, keys: list[Any]) -> list[Any]:
        """Feast's EntityKey protos of ``keys``; each key converted once (Feast's conversion costs
        ~25 µs a call), remembered by type and value (1 and True must not share a proto)."""
        cache, EntityKey = self._keys, self._entity_key
        missing = list(dict.fromkeys(k for k in keys if (type(k), k) not in cache))
        if missing:
            try:
                values = self._to_proto(missing, self.value_type)
            except (TypeError, ValueError, OverflowError) as exc:  # a key of the wrong type: the caller's mistake
                raise InputError(f"{self.entity_key}: cannot look up online features: {exc}") from None
            if len(cache) + len(missing) > KEY_CACHE:
                cache.clear()
            for key, value in zip(missing, values, strict=True):
                cache[(type(key), key)] = EntityKey(join_keys=[self.entity_key], entity_values=[value])
        return [cache[(type(k), k)] for k in keys]

    def read(self, keys: list[Any]) -> dict[str, list[Value]]:
        """{feature name: [Value per key]} for the given entity keys, in order."""
        to_python = self._to_python
        entity_keys = self._entity_keys(keys)
        out: dict[str, list[Value]] = {}
        for view, features, _ in self.views:
            # a copy: Redis's online_read appends its timestamp field to the list it is given
            rows = self.provider.online_read(self.config, view, entity_keys, list(features))
            stamps = [ts.timestamp() if ts is not None else 0.0 for ts, _ in rows]
            for feature in features:
                column = []
                for (_, values), event_s in zip(rows, stamps, strict=True):
                    column.append(Value(_python(values.get(feature) if values else None, to_python), event_s))
                out[feature] = column
        return out

    def limit_s(self, ref: str, max_age_s: float | None) -> float | None:
        """How old a value of ``ref`` may be: the tighter of the view's TTL and ``max_age_s``."""
        limits = [x for x in (self.ttl_s.get(ref.split(":", 1)[0]) or None, max_age_s) if x]
        return min(limits) if limits else None


def _python(proto: Any, to_python: Any) -> Any:
    """A Feast ValueProto as Python: scalars read directly, lists, maps, JSON and timestamps through
    Feast's own conversion (``to_python``); None when absent or unset."""
    kind = proto.WhichOneof("val") if proto is not None else None
    if kind is None:
        return None
    return getattr(proto, kind) if kind in SCALARS else to_python(proto)


def is_fresh(value: Value, limit_s: float | None, now: float | None = None) -> bool:
    """A stored value no older than ``limit_s`` (no limit: any stored value)."""
    if value.value is None or value.event_s <= 0:
        return False
    return limit_s is None or (now or time.time()) - value.event_s <= limit_s
