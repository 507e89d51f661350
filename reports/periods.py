"""Time arithmetic of the reports: the granularity's periods, and which rollup level covers which part.

A report period [start, end) is read from the coarsest rollups that fit it exactly: whole UTC days from
the daily rollups, the whole hours around them from the hourly ones and the minutes at the edges from
the minute rollups (`tiles`). Periods of the chosen granularity are UTC calendar days, months, quarters
or years, clipped to [start, end) (`period_bounds`). Pure functions, no I/O.

Example:
    >>> from datetime import UTC, datetime
    >>> t = tiles(datetime(2026, 1, 1, 22, 30, tzinfo=UTC), datetime(2026, 1, 3, 1, 0, tzinfo=UTC))
    >>> [(level, lo.isoformat()[:16], hi.isoformat()[:16]) for level, lo, hi in t]  # doctest: +NORMALIZE_WHITESPACE
    [('1m', '2026-01-01T22:30', '2026-01-01T23:00'), ('1h', '2026-01-01T23:00', '2026-01-02T00:00'),
     ('1d', '2026-01-02T00:00', '2026-01-03T00:00'), ('1h', '2026-01-03T00:00', '2026-01-03T01:00')]
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

__all__ = ["LEVEL_WIDTH", "Level", "Tile", "overlap", "period_bounds", "period_label", "tiles"]

Level = Literal["1m", "1h", "1d"]
Tile = tuple[Level, datetime, datetime]
LEVEL_WIDTH: dict[Level, timedelta] = {"1m": timedelta(minutes=1), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def _ceil(when: datetime, width: timedelta) -> datetime:
    steps = -((_ORIGIN - when) // width)
    return _ORIGIN + steps * width


def _floor(when: datetime, width: timedelta) -> datetime:
    return _ORIGIN + ((when - _ORIGIN) // width) * width


def tiles(start: datetime, end: datetime) -> list[Tile]:
    """[start, end) cut into (level, lo, hi) pieces, coarsest first where it fits; bounds on whole minutes."""
    out: list[Tile] = []

    def cover(lo: datetime, hi: datetime, levels: Sequence[Level]) -> None:
        if lo >= hi:
            return
        level, finer = levels[0], levels[1:]
        if not finer:
            out.append((level, lo, hi))
            return
        width = LEVEL_WIDTH[level]
        a, b = _ceil(lo, width), _floor(hi, width)
        if a >= b:
            cover(lo, hi, finer)
            return
        cover(lo, a, finer)
        out.append((level, a, b))
        cover(b, hi, finer)

    cover(start, end, ("1d", "1h", "1m"))
    return sorted(out, key=lambda t: t[1])


def _next_boundary(when: datetime, granularity: str) -> datetime:
    if granularity == "day":
        return _floor(when, timedelta(days=1)) + timedelta(days=1)
    months = {"month": 1, "quarter": 3, "year": 12}[granularity]
    index = when.year * 12 + when.month - 1
    index = (index // months + 1) * months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def period_bounds(start: datetime, end: datetime, granularity: str) -> list[datetime]:
    """[start, b1, b2, ..., end]: the edges of the granularity's UTC calendar periods inside [start, end)."""
    bounds = [start]
    cursor = start
    while True:
        cursor = _next_boundary(cursor, granularity)
        if cursor >= end:
            break
        bounds.append(cursor)
    bounds.append(end)
    return bounds


def period_label(lo: datetime, hi: datetime, granularity: str) -> str:
    """How a period is named in a report: 2026-01-05, 2026-01, 2026-Q1, 2026 (with its bounds if clipped)."""
    if granularity == "day":
        label = lo.strftime("%Y-%m-%d")
    elif granularity == "month":
        label = lo.strftime("%Y-%m")
    elif granularity == "quarter":
        label = f"{lo.year}-Q{(lo.month - 1) // 3 + 1}"
    else:
        label = f"{lo.year}"
    if _unit_start(lo, granularity) == lo and _next_boundary(lo, granularity) == hi:
        return label
    return f"{label} [{_short(lo)}, {_short(hi)})"


def _unit_start(when: datetime, granularity: str) -> datetime:
    if granularity == "day":
        return _floor(when, timedelta(days=1))
    months = {"month": 1, "quarter": 3, "year": 12}[granularity]
    index = (when.year * 12 + when.month - 1) // months * months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def _short(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%MZ")


def overlap(spans: Sequence[tuple[datetime, datetime]], lo: datetime, hi: datetime) -> float:
    """Seconds of [lo, hi) covered by the (disjoint) `spans`."""
    total = 0.0
    for a, b in spans:
        x, y = max(a, lo), min(b, hi)
        if y > x:
            total += (y - x).total_seconds()
    return total
