"""What both reports share: the build context (ledger head, settings in force, generation time), the
provenance section, percentiles and how a throughput unit reads once summed over time.

Example:
    >>> served_unit("tokens/s"), served_unit("streams")
    ('tokens', 'streams·h')
    >>> percentile([10.0, 20.0, 30.0, 40.0], 0.5)
    25.0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from kcloud.ledger import LedgerHead, head
from kcloud.settings import Settings
from reports.model import Column, Section, Table
from reports.params import ReportError, ReportParams

__all__ = ["BuildContext", "percentile", "provenance_section", "served_amount", "served_unit"]


@dataclass(frozen=True)
class BuildContext:
    """Everything besides the database that a report's figures depend on, recorded in its provenance."""

    params: ReportParams
    ledger: LedgerHead
    sample_interval_s: float
    active_util_pct: float
    generated_at: datetime

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.sample_interval_s)

    @classmethod
    def now(
        cls, conn: psycopg.Connection[Any], params: ReportParams, settings: Settings, generated_at: datetime
    ) -> BuildContext:
        """A context for a new report: the ledger's current head and the settings in force."""
        if generated_at.tzinfo is None:
            raise ReportError(f"--generated-at {generated_at.isoformat()} has no time zone; add an offset such as Z")
        return cls(params, head(conn), settings.sample_interval_s, settings.active_util_pct, generated_at)

    def to_json(self) -> dict[str, Any]:
        return {
            "params": self.params.to_json(),
            "ledger": {"rows": self.ledger.count, "head_seq": self.ledger.seq, "head_hash": self.ledger.hash},
            "settings": {"sample_interval_s": self.sample_interval_s, "active_util_pct": self.active_util_pct},
            "generated_at": self.generated_at.isoformat(),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BuildContext:
        """The context recorded in a report's provenance; raises `ReportError` when it is incomplete."""
        try:
            ledger = data["ledger"]
            settings = data["settings"]
            return cls(
                ReportParams.from_json(data["params"]),
                LedgerHead(int(ledger["rows"]), ledger["head_seq"], ledger["head_hash"]),
                float(settings["sample_interval_s"]),
                float(settings["active_util_pct"]),
                datetime.fromisoformat(str(data["generated_at"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReportError(f"the report's provenance is incomplete or malformed ({exc})") from None


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-quantile (0..1) of `values` by linear interpolation between order statistics."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def served_unit(unit: str) -> str:
    """What a throughput unit becomes once summed over time: tokens/s -> tokens, streams -> streams·h."""
    return unit[:-2] if unit.endswith("/s") else f"{unit}·h"


def served_amount(unit: str, units: float) -> float:
    """`units` (value x seconds) expressed in `served_unit(unit)`."""
    return units if unit.endswith("/s") else units / 3600.0


def provenance_section(ctx: BuildContext, gaps: Sequence[str]) -> Section:
    """Section 7: what the report was built from, its parameters, its data gaps and when it was made."""
    p = ctx.params
    table = Table("provenance", [Column("item", key=True), Column("value")])
    for item, value in (
        ("report", p.kind),
        ("vendor", p.vendor or "all"),
        ("site", p.site or "all"),
        ("programme", p.programme or "all"),
        ("from", p.start.isoformat()),
        ("to_excluded", p.end.isoformat()),
        ("granularity", p.granularity),
        ("lang", p.lang),
        ("ledger_rows", str(ctx.ledger.count)),
        ("ledger_head_seq", "" if ctx.ledger.seq is None else str(ctx.ledger.seq)),
        ("ledger_head_hash", ctx.ledger.hash or "(empty ledger)"),
        ("sample_interval_s", f"{ctx.sample_interval_s:g}"),
        ("active_util_pct", f"{ctx.active_util_pct:g}"),
        ("generated_at", ctx.generated_at.isoformat()),
    ):
        table.add([item, value])
    gap_table = Table("data_gaps", [Column("n", key=True), Column("gap")])
    for i, gap in enumerate(gaps, 1):
        gap_table.add([i, gap])
    return Section("provenance", [table, gap_table])
