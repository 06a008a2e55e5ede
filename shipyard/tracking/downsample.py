"""Downsample a metric series for a chart: at most ``limit`` points, each bucket's min and max kept.

A browser cannot draw 100,000-point curves for 50 runs; it does not have to. The series is split
into buckets of consecutive points; each bucket keeps its smallest and its largest value, in their
original order, so a one-step spike still shows, and the curve's envelope is exact. A value that is
not a finite number (NaN, infinity, None) is a gap: a bucket holding only gaps keeps one gap, so the
chart breaks its line there instead of joining across it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

DEFAULT_LIMIT = 1000


def downsample(xs: Sequence[float], ys: Sequence[float | None],
               limit: int = DEFAULT_LIMIT) -> tuple[list[float], list[float | None]]:
    """``(xs, ys)`` reduced to at most ``limit`` points (min and max per bucket), order kept.

    Non-finite values come back as None (a gap). ``xs`` and ``ys`` must have the same length;
    ``limit`` must be at least 2.
    """
    if len(xs) != len(ys):
        raise ValueError(f"xs has {len(xs)} points and ys {len(ys)}; they must match")
    if limit < 2:
        raise ValueError(f"limit must be at least 2, got {limit}")
    clean = [y if y is not None and math.isfinite(y) else None for y in ys]
    if len(xs) <= limit:
        return list(xs), clean
    buckets = limit // 2
    out_x: list[float] = []
    out_y: list[float | None] = []
    n = len(xs)
    get = clean.__getitem__
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if None in clean[lo:hi]:  # the slow path only for buckets with gaps
            indices = [i for i in range(lo, hi) if clean[i] is not None]
            if not indices:
                out_x.append(xs[lo])
                out_y.append(None)
                continue
        else:
            indices = range(lo, hi)  # type: ignore[assignment]
        low, high = min(indices, key=get), max(indices, key=get)
        for i in sorted({low, high}):  # in their original order, once when they coincide
            out_x.append(xs[i])
            out_y.append(clean[i])
    return out_x, out_y
