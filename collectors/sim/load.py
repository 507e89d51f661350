"""How busy a simulated device is at an instant: usage classes, KST day/night curves and noise.

A device's utilisation (in per-mille, i.e. tenths of a percent) is `base x curve(t) + noise`: `base` is
fixed per device, `curve` depends on its usage class and the time of day and week in Korea (UTC+9), and
the noise is read from a seeded table at a phase that changes every second. The energy counter
integrates the smooth part (`idle + span x base x curve`) in closed form, so energy deltas match the
reported power over minutes and hours, without the per-tick noise. All synthetic.

Example:
    >>> clock = clock_at(datetime(2026, 11, 2, 5, 0, tzinfo=UTC).timestamp())  # 14:00 KST, a Monday
    >>> clock.d1000[INFER] > 800
    True
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "CLASS_NAMES",
    "CURVES",
    "FREE",
    "IDLE_LOADED",
    "IDLE_RESERVED",
    "INFER",
    "KST_OFFSET_S",
    "NOISE_MASK",
    "T0",
    "TRAIN",
    "TRANSCODE",
    "TRUE_KINDS",
    "Curve",
    "TickClock",
    "clock_at",
    "noise_tables",
]

INFER, TRAIN, TRANSCODE, IDLE_LOADED, IDLE_RESERVED, FREE = range(6)
CLASS_NAMES = ("llm-inference", "training", "video-transcode", "idle-loaded", "idle-reserved", "unallocated")
#: the true kind of work of each usage class, the ground truth a classifier of AI use is measured against:
#: a model loaded and serving nothing is idle-resident (memory held, engines idle); reserved or
#: unallocated devices are idle
TRUE_KINDS = ("ai-inference", "ai-training", "video-transcode", "idle-resident", "idle", "idle")

KST_OFFSET_S = 9 * 3600
_DAY = 86400
_OMEGA = 2 * math.pi / _DAY
T0 = datetime(2024, 12, 31, 15, 0, tzinfo=UTC).timestamp()  # 2025-01-01 00:00 KST: energy counters start
_DAY0 = int((T0 + KST_OFFSET_S) // _DAY)
NOISE_MASK = 4095


@dataclass(frozen=True)
class Curve:
    """`d0 + a1·cos(ω(s - h1)) + a2·cos(2ω(s - h2))` over the seconds `s` of a KST day, times `weekend`
    on Saturdays and Sundays."""

    d0: float
    a1: float = 0.0
    h1: float = 0.0
    a2: float = 0.0
    h2: float = 0.0
    weekend: float = 1.0

    def value(self, s: float) -> float:
        return (
            self.d0
            + self.a1 * math.cos(_OMEGA * (s - self.h1 * 3600))
            + self.a2 * math.cos(2 * _OMEGA * (s - self.h2 * 3600))
        )

    def day_integral(self, s: float) -> float:
        """∫ value over [0, s) of one day."""
        p1, p2 = _OMEGA * self.h1 * 3600, 2 * _OMEGA * self.h2 * 3600
        return (
            self.d0 * s
            + self.a1 / _OMEGA * (math.sin(_OMEGA * s - p1) + math.sin(p1))
            + self.a2 / (2 * _OMEGA) * (math.sin(2 * _OMEGA * s - p2) + math.sin(p2))
        )

    def integral_since_t0(self, t: float) -> float:
        """∫ weekday-weighted value over [T0, t), in seconds; 0 before T0."""
        if t <= T0:
            return 0.0
        day, s = divmod(t + KST_OFFSET_S, _DAY)
        today = int(day)
        weekend = _weekend_days(_DAY0, today)
        weekdays = today - _DAY0 - weekend
        total = self.d0 * _DAY * (weekdays + self.weekend * weekend)
        return total + (self.weekend if _is_weekend(today) else 1.0) * self.day_integral(s)


def _is_weekend(day: int) -> bool:
    return (day + 3) % 7 >= 5  # day 0 (1970-01-01) was a Thursday


def _weekend_days(first: int, end: int) -> int:
    """Saturdays and Sundays among days [first, end)."""
    weeks, rest = divmod(end - first, 7)
    return 2 * weeks + sum(_is_weekend(first + 7 * weeks + i) for i in range(rest))


# Inference follows office hours with an evening shoulder and quiet weekends; training runs flat out;
# transcoding peaks in the evening; idle and free devices have no load curve.
CURVES: tuple[Curve, ...] = (
    Curve(0.60, 0.30, 14.0, 0.10, 10.5, weekend=0.7),
    Curve(0.97),
    Curve(0.55, 0.35, 21.0, 0.05, 20.0, weekend=1.1),
    Curve(0.0),
    Curve(0.0),
    Curve(0.0),
)
_NOISE_AMP = (70, 25, 60, 6, 3, 2)  # per-mille
_NOISE_SIGNED = (True, True, True, False, False, False)


def noise_tables(seed: int) -> tuple[tuple[int, ...], ...]:
    """Per usage class, NOISE_MASK + 1 seeded noise values in per-mille (idle classes: non-negative)."""
    rng = random.Random(f"kcloud-sim-noise/{seed}")
    tables = []
    for amp, signed in zip(_NOISE_AMP, _NOISE_SIGNED, strict=True):
        if signed:
            values = [round(amp * (rng.random() + rng.random() - 1.0)) for _ in range(NOISE_MASK + 1)]
        else:
            values = [round(amp * rng.random() ** 2) for _ in range(NOISE_MASK + 1)]
        tables.append(tuple(values))
    return tuple(tables)


@dataclass(frozen=True)
class TickClock:
    """Everything about an instant that every device shares: curve values, integrals, noise phase."""

    t: float
    d1000: tuple[int, ...]  # per class: 1000 x curve value, weekend included
    integral: tuple[float, ...]  # per class: ∫ curve since T0, seconds
    since_t0: float  # seconds since T0 (≥ 0)
    phase: int  # noise table phase
    kst_hour: float


def clock_at(t: float) -> TickClock:
    """The shared per-instant numbers for unix time `t`."""
    day, s = divmod(t + KST_OFFSET_S, _DAY)
    weekend = _is_weekend(int(day))
    d1000 = tuple(max(0, int(1000 * c.value(s) * (c.weekend if weekend else 1.0))) for c in CURVES)
    return TickClock(
        t=t,
        d1000=d1000,
        integral=tuple(c.integral_since_t0(t) for c in CURVES),
        since_t0=max(0.0, t - T0),
        phase=((int(t) * 0x9E3779B1) >> 13) & NOISE_MASK,
        kst_hour=s / 3600,
    )
