"""Routing strategies: each turns (routing table, bucket, shadow draw) into an Assignment.

Listed by name in ``shipyard.serving.routing.STRATEGIES``; each class declares its ``name``.
"""

from __future__ import annotations

from typing import Any

from shipyard.serving.routing import Assignment


class Strategy:
    """Base: holds the table; subclasses fill in ``assign``."""

    name = ""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.champion: int = table["champion"]
        self.candidate: int | None = table.get("candidate")
        self.weight = float(table.get("weight") or 0.0)
        self.shadow_percent = float(table.get("shadow_percent") or 0.0)

    def assign(self, bucket: float, shadow_draw: float) -> Assignment:
        raise TypeError(f"{type(self).__name__} does not define assign()")

    def _shadow(self, shadow_draw: float) -> int | None:
        if self.candidate is not None and shadow_draw < self.shadow_percent:
            return self.candidate
        return None


class Single(Strategy):
    """Everything to the champion."""

    name = "single"

    def assign(self, bucket: float, shadow_draw: float) -> Assignment:
        return Assignment(self.champion, "primary")


class WeightedCanary(Strategy):
    """``weight`` % of buckets to the candidate, the champion as fallback."""

    name = "canary"

    def assign(self, bucket: float, shadow_draw: float) -> Assignment:
        if self.candidate is not None and bucket < self.weight:
            return Assignment(self.candidate, "canary", fallback=self.champion)
        return Assignment(self.champion, "primary", shadow=self._shadow(shadow_draw))


class BlueGreen(Strategy):
    """Green (candidate) is warm and mirrored until the switch (weight 100), then serves all."""

    name = "bluegreen"

    def assign(self, bucket: float, shadow_draw: float) -> Assignment:
        if self.candidate is not None and self.weight >= 100.0:
            return Assignment(self.candidate, "canary", fallback=self.champion)
        return Assignment(self.champion, "primary", shadow=self._shadow(shadow_draw))


class Shadow(Strategy):
    """The champion serves; ``shadow_percent`` % of requests are mirrored to the candidate."""

    name = "shadow"

    def assign(self, bucket: float, shadow_draw: float) -> Assignment:
        return Assignment(self.champion, "primary", shadow=self._shadow(shadow_draw))


class ABTest(Strategy):
    """Sticky split: bucket below ``weight`` goes to B (candidate), the rest to A (champion)."""

    name = "ab"

    def assign(self, bucket: float, shadow_draw: float) -> Assignment:
        if self.candidate is not None and bucket < self.weight:
            return Assignment(self.candidate, "b", fallback=self.champion)
        return Assignment(self.champion, "a")
