"""Training/serving skew: the online values the gateway would serve against the offline values
(Shipyard's point-in-time join over the same sources the training stages read), for a sample of
entities at the same time, per feature.

The monitor adds the result to each window's metrics (``feature_skew``: the largest share of
sampled entities whose online value differs from the offline one; ``feature.<name>.skew`` per
feature), so a rule such as ``when: "feature_skew > 0.05"`` alerts and triggers like any other, with
the one rule engine. ``skew_report`` names the diverged features and by how much.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shipyard.features.config import ServeFeatures, feature_name
from shipyard.features.online import is_fresh
from shipyard.features.repo import RepoDefinitions
from shipyard.features.retrieval import TIMESTAMP, point_in_time, read_table

SAMPLE = 200
TOLERANCE = 1e-6  # relative: floats through Parquet, protobuf and back compare equal within it


@dataclass(frozen=True)
class FeatureSkew:
    """One feature's comparison over the sampled entities."""

    feature: str
    compared: int
    differ: int
    mean_abs_diff: float | None

    @property
    def share(self) -> float:
        return self.differ / self.compared if self.compared else 0.0


def _same(online: Any, offline: Any) -> bool:
    missing_on, missing_off = _missing(online), _missing(offline)
    if missing_on or missing_off:
        return missing_on and missing_off
    if isinstance(online, int | float) and isinstance(offline, int | float):
        return math.isclose(float(online), float(offline), rel_tol=TOLERANCE, abs_tol=TOLERANCE)
    return online == offline


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == "<NA>"


def sample_keys(defs: RepoDefinitions, settings: ServeFeatures, size: int = SAMPLE, seed: int = 0) -> list[Any]:
    """Up to ``size`` entity keys present in the sources of the served views."""
    import pandas as pd

    views = defs.resolve(list(settings.refs))
    keys = pd.concat([read_table(Path(v.source))[settings.entity_key] for v, _ in views])
    unique = keys.drop_duplicates()
    return unique.sample(min(size, len(unique)), random_state=seed).tolist() if len(unique) else []


def compare(defs: RepoDefinitions, reader: Any, settings: ServeFeatures, keys: list[Any],
            now: float | None = None) -> list[FeatureSkew]:
    """Per feature: how many of ``keys`` have an online value different from the offline one at
    ``now`` (both missing counts as equal)."""
    import pandas as pd

    at = pd.Timestamp(now or time.time(), unit="s", tz="UTC")
    frame = pd.DataFrame({settings.entity_key: keys, TIMESTAMP: [at] * len(keys)})
    offline = point_in_time(frame, defs.resolve(list(settings.refs)))
    online = reader.read(keys)
    out = []
    for ref in settings.refs:
        name = feature_name(ref)
        limit = reader.limit_s(ref, settings.max_age_s)
        diffs: list[float] = []
        differ = 0
        for got, expected in zip(online[name], offline[name].tolist(), strict=True):
            served = got.value if is_fresh(got, limit, at.timestamp()) else None  # what the gateway would use
            if not _same(served, expected):
                differ += 1
                if isinstance(served, int | float) and not _missing(expected) and not _missing(served):
                    diffs.append(abs(float(served) - float(expected)))
        out.append(FeatureSkew(name, len(keys), differ, sum(diffs) / len(diffs) if diffs else None))
    return out


def skew_metrics(results: list[FeatureSkew]) -> dict[str, Any]:
    """Window metrics: ``feature_skew``, ``feature.<name>.skew`` and a report of diverged features."""
    metrics: dict[str, Any] = {f"feature.{r.feature}.skew": round(r.share, 6) for r in results}
    metrics["feature_skew"] = round(max((r.share for r in results), default=0.0), 6)
    metrics["skew_report"] = [{"feature": r.feature, "share": round(r.share, 6), "differ": r.differ,
                               "compared": r.compared, "mean_abs_diff": r.mean_abs_diff}
                              for r in results if r.differ]
    return metrics


class SkewCheck:
    """The monitor's skew check of one project: definitions, online reader and the entity sample,
    opened once; ``metrics()`` compares them now."""

    def __init__(self, root: Path, repo: str, settings: ServeFeatures, size: int = SAMPLE) -> None:
        from shipyard.features.online import OnlineReader
        from shipyard.features.repo import definitions

        path = (Path(root) / repo).resolve()
        self.defs = definitions(path)
        self.settings = settings
        self.reader = OnlineReader(path, list(settings.refs), settings.entity_key)
        self.keys = sample_keys(self.defs, settings, size)

    def metrics(self, now: float | None = None) -> dict[str, Any]:
        return skew_metrics(compare(self.defs, self.reader, self.settings, self.keys, now))
