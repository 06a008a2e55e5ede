"""Gateway enrichment: a request that carries the entity key gets its online features merged in.

Configured by shipyard.yaml's ``features.serve`` (entity key, refs, max_age, on_missing, defaults).
The online store is opened once per worker (``OnlineReader``); the request path reads it and
nothing else (no metadata database). A value older than the view's TTL or ``max_age`` counts as
missing, then takes its declared default or the request is refused with a 422 naming the feature.
The merged columns are what the model sees and what the request log stores, so drift and rollout
analysis look at the same inputs. A request that already carries every feature is left alone.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from shipyard.errors import ShipyardError
from shipyard.features.config import ServeFeatures, feature_name
from shipyard.features.online import OnlineReader, is_fresh
from shipyard.serving.codec import Inputs, RequestError


class Enricher:
    """Merges online features into parsed inputs (named columns) that carry the entity key."""

    def __init__(self, settings: ServeFeatures, reader: Any) -> None:
        self.settings = settings
        self.reader = reader
        self.names = [feature_name(r) for r in settings.refs]
        self.limits = {feature_name(r): reader.limit_s(r, settings.max_age_s) for r in settings.refs}

    def enrich(self, inputs: Inputs) -> Inputs:
        """``inputs`` with every configured feature as a column (unchanged without the key)."""
        key = self.settings.entity_key
        if inputs.values is None or inputs.columns is None or key not in inputs.values:
            return inputs
        wanted = [n for n in self.names if n not in inputs.values]
        if not wanted:
            return inputs
        keys = inputs.values[key]
        if any(k is None for k in keys):
            raise RequestError(key, f"the entity key {key!r} is null; send a value to look its features up")
        try:
            found = self.reader.read(keys)
        except ShipyardError as exc:  # e.g. a key of the wrong type: the client's mistake, a 422
            raise RequestError(key, exc.message) from None
        now = time.time()
        values = dict(inputs.values)
        for name in wanted:
            column = []
            for i, got in enumerate(found[name]):
                if is_fresh(got, self.limits[name], now):
                    column.append(got.value)
                elif self.settings.on_missing == "default":
                    column.append(self.settings.defaults[name])
                else:
                    age = "no value" if got.value is None or got.event_s <= 0 else f"a value {now - got.event_s:.0f}s old"
                    raise RequestError(name, f"feature {name!r} for {key}={keys[i]!r}: the online store has {age}"
                                             + (f" (limit {self.limits[name]:g}s)" if self.limits[name] else "")
                                             + "; send it in the request or materialize fresh values")
            values[name] = column
        return Inputs([*inputs.columns, *wanted], values, None, inputs.n, inputs.params)


def enricher_for(root: Path, repo: str, settings: ServeFeatures | None) -> Enricher | None:
    """The project's enricher (None without ``features.serve``); opens the online store once."""
    if settings is None:
        return None
    reader = OnlineReader((root / repo).resolve(), list(settings.refs), settings.entity_key)
    return Enricher(settings, reader)
