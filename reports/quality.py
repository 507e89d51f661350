"""What the reports count as an impossible stored value, and the data-quality lines that say what was left out.

The physical bounds are the metric catalogue's (`kcloud/catalog.yaml`), the one definition of "impossible":
a throughput outside 0..1e9 per second, a utilization outside 0..100 %, and a rollup row's energy above
the catalogue's highest power over the bucket (and the three sample intervals before it, which an energy
counter's advance may span) are left out of the figures; so is every figure of a rollup row whose observed
seconds are negative or longer than its bucket. Infinite and NaN values fail every bound. The wire contract
already refuses such values, but rows stored before it did, or written by another path, still reach the
reports; the queries (`reports.queries`, `reports.rollup`) apply these bounds in SQL and count what they
left out, and `Exclusions.lines` turns the counts into the lines of the provenance's data gaps, so that
nothing is left out silently. Imports only the catalogue.

Example:
    >>> b = bounds()
    >>> b.throughput_max, b.util_max, b.power_max
    (1000000000.0, 100.0, 5000.0)
    >>> Exclusions(throughput_samples=3).lines("sapeon at nhn-cloud-gwangju", b)[0][:60]
    'data quality: sapeon at nhn-cloud-gwangju: the throughput of '
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache

from kcloud.catalog import load_catalog

__all__ = ["BAD_THROUGHPUT", "CAST_LIMIT", "Bounds", "Exclusions", "bounds"]

#: an energy counter's advance may reach back this many sample intervals before a minute (streams.rollups)
COUNTER_LOOKBACK_INTERVALS = 3
#: a milli-unit figure cast to bigint must stay below 2**63 / 1000; no physical row comes near it
CAST_LIMIT = 9.0e15
#: SQL: a raw sample's throughput is present and outside the bounds (parameters t_min, t_max); NaN and
#: the infinities fail BETWEEN, since PostgreSQL orders NaN above every number
BAD_THROUGHPUT = "coalesce(NOT (throughput BETWEEN %(t_min)s AND %(t_max)s), false)"


@dataclass(frozen=True)
class Bounds:
    """The catalogue's physical bounds the reports apply to stored values."""

    throughput_min: float
    throughput_max: float
    util_min: float
    util_max: float
    power_max: float

    def energy_max(self, width_s: float, interval_s: float) -> float:
        """The most energy a device can use in a bucket of `width_s` seconds, in joules."""
        return self.power_max * (width_s + COUNTER_LOOKBACK_INTERVALS * interval_s)


def _range(name: str) -> tuple[float, float]:
    r = load_catalog().metric(name).range
    if r is None or r.max is None:
        raise RuntimeError(f"kcloud/catalog.yaml: metric {name!r} has no upper bound; the reports need one")
    return float(r.min), float(r.max)


@cache
def bounds() -> Bounds:
    """The bounds of throughput, util_pct and power_w from the catalogue (read once per process)."""
    t_min, t_max = _range("throughput")
    u_min, u_max = _range("util_pct")
    _, p_max = _range("power_w")
    return Bounds(t_min, t_max, u_min, u_max, p_max)


@dataclass
class Exclusions:
    """Stored values a report left out, per kind: samples whose throughput, rollup rows whose utilization
    or energy, and rollup rows left out entirely (with the samples behind them)."""

    throughput_samples: int = 0
    util_rows: int = 0
    util_samples: int = 0
    energy_rows: int = 0
    energy_samples: int = 0
    rows: int = 0
    row_samples: int = 0

    def add(self, other: Exclusions) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def any(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def lines(self, who: str, b: Bounds, *, energy: bool = True) -> list[str]:
        """One data-quality line per kind of exclusion for `who` (a group, 'the GPU baseline at S', ...)."""
        out: list[str] = []
        if self.throughput_samples:
            out.append(
                f"data quality: {who}: the throughput of {self.throughput_samples} sample(s) is left out of the "
                f"service and efficiency figures: infinite, NaN, negative or above {b.throughput_max:g} per "
                "second (the catalogue's physical range of throughput); they count as samples without a throughput"
            )
        if self.util_rows:
            out.append(
                f"data quality: {who}: the utilization of {self.util_rows} rollup row(s) ({self.util_samples} "
                f"sample(s)) is left out of the utilization figures: infinite, NaN or outside "
                f"{b.util_min:g}-{b.util_max:g}% (the catalogue's range of util_pct)"
            )
        if self.energy_rows and energy:
            out.append(
                f"data quality: {who}: the energy of {self.energy_rows} rollup row(s) ({self.energy_samples} "
                "sample(s)) is left out of the energy and efficiency figures: infinite, NaN, negative or above "
                f"{b.power_max:g} W (the catalogue's highest power_w) over the row's time"
            )
        if self.rows:
            out.append(
                f"data quality: {who}: {self.rows} rollup row(s) ({self.row_samples} sample(s)) are left out of "
                "every figure: their observed seconds are infinite, NaN, negative or longer than the row's bucket"
            )
        return out
