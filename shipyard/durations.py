"""Durations as shipyard.yaml writes them (``60s``, ``1.5m``, ``250ms``, ``2h``, ``7d``) -> seconds.

A foundation of its own, free of pydantic, so that services and the CLI read a duration without
importing the config schema.
"""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: str | float | int) -> float:
    """``"60s"``, ``"1.5m"``, ``"250ms"``, ``"2h"``, ``"7d"`` or a number of seconds -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"expected a duration like 60s, 2m, 250ms, 1h or 7d, got {value!r}")
    number, unit = float(match.group(1)), match.group(2) or "s"
    return number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}[unit]
