"""Cron schedules on a time zone's wall clock, read by cronsim (day of month OR day of week, as cron).

Imports cronsim and zoneinfo only when called, so loading the config schema costs neither.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def zone_of(name: str) -> Any:
    """The IANA time zone ``name`` (``Europe/Paris``, ``UTC``), or ValueError saying what is expected."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}: expected an IANA name such as UTC, "
                         f"Europe/Paris or America/New_York") from exc


def parse_cron(text: str) -> str:
    """A five-field cron schedule (minute hour day month weekday), checked by cronsim; returns it
    with its fields separated by one space. As in cron, when both day of month and day of week are
    restricted, a day matching either one is due."""
    from cronsim import CronSim, CronSimError

    fields = str(text).split()
    if len(fields) != 5:
        raise ValueError(f"a cron schedule has 5 fields (minute hour day month weekday), got {text!r}")
    expr = " ".join(fields)
    try:
        CronSim(expr, datetime.now(UTC))
    except CronSimError as exc:
        raise ValueError(f"bad cron schedule {text!r}: {exc}") from exc
    return expr


def cron_next(expr: str, after: float, timezone: str = "UTC") -> float:
    """The first time (seconds since the epoch) strictly after ``after`` that ``expr`` names, read
    on the wall clock of ``timezone`` (daylight-saving changes as cronsim handles them)."""
    from cronsim import CronSim

    start = datetime.fromtimestamp(after, zone_of(timezone))
    return next(iter(CronSim(expr, start))).timestamp()
