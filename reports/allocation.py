"""The allocation report: per organisation (tenant), what it holds and what it uses.

Sections: 1 per organisation: allocations, allocated vs busy card-hours, device-busy, idle allocations;
2 workload mix: what each organisation's cards served, per workload; 3 the allocations that could be
returned to the pool (idle ones, largest first, those that served nothing first); then provenance. The
devices are the evidence report's (same filters, same ledger head), the figures come from the rollups
and `device_allocations` (the allocation in force at each rollup bucket's end).

Example:
    >>> report = build_allocation(conn, ctx)  # doctest: +SKIP
    >>> [s.id for s in report.sections]  # doctest: +SKIP
    ['tenants', 'workload_mix', 'returnable', 'provenance']
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import psycopg

from reports.common import BuildContext, provenance_section, served_amount, served_unit
from reports.model import Column, Report, Section, Table
from reports.periods import tiles
from reports.quality import Exclusions, bounds
from reports.queries import AllocationUse, allocation_served, allocation_use
from reports.rollup import refresh_report_rollup
from reports.scope import ScopedDevice, load_scope

__all__ = ["UNALLOCATED", "build_allocation"]

UNALLOCATED = "(unallocated)"
H = 3600.0


def _tenant(name: str | None) -> str:
    return name if name is not None else UNALLOCATED


def build_allocation(conn: psycopg.Connection[Any], ctx: BuildContext) -> Report:
    """Build the allocation report for `ctx.params`; raises `ReportError` like the evidence report."""
    p = ctx.params
    scope = load_scope(conn, p, head_seq=ctx.ledger.seq or 0, interval=ctx.interval)
    devices: dict[int, ScopedDevice] = {d.device_id: d for d in scope.devices}
    ids = sorted(devices)
    t = tiles(p.start, p.end)
    refresh_report_rollup(conn, t, ids, ctx.sample_interval_s)
    uses = allocation_use(conn, t, ids, ctx.sample_interval_s)
    served_rows = allocation_served(conn, t, ids, ctx.sample_interval_s)
    workloads: dict[int, tuple[str, str]] = {
        int(r[0]): (r[1], r[2]) for r in conn.execute("SELECT workload_id, name, unit FROM workloads").fetchall()
    }
    served_by_alloc: dict[tuple[int, str | None, str | None], float] = defaultdict(float)
    mix: dict[tuple[str, int], list[float]] = defaultdict(lambda: [0.0, 0.0])
    excluded = Exclusions()
    for u in uses:
        excluded.add(u.excluded)
    for device_id, tenant, namespace, wid, units, samples, left_out in served_rows:
        excluded.throughput_samples += left_out
        if wid == 0:
            continue
        served_by_alloc[(device_id, tenant, namespace)] += units
        acc = mix[(_tenant(tenant), wid)]
        acc[0] += units
        acc[1] += samples
    gaps = ["allocations are credited by rollup bucket: the allocation in force at each bucket's end takes it"]
    gaps += excluded.lines("the report's devices", bounds(), energy=False)

    def busy(u: AllocationUse) -> float | None:
        return u.util_seconds / u.util_weight if u.util_weight else None

    idle = [
        u
        for u in uses
        if u.tenant is not None and (b := busy(u)) is not None and b <= ctx.active_util_pct and u.seconds > 0
    ]
    # -- 1 per organisation ---------------------------------------------------------------------------
    tenants = Table(
        "tenants",
        [
            Column("tenant", key=True),
            Column("allocations"),
            Column("allocated_hours", "h", 3),
            Column("busy_hours", "h", 3),
            Column("busy_pct", "%", 3),
            Column("idle_allocations"),
        ],
    )
    per: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for u in uses:
        acc = per[_tenant(u.tenant)]
        acc[0] += 1
        acc[1] += u.seconds
        acc[2] += u.util_seconds
        acc[3] += u.util_weight
    idle_count: dict[str, int] = defaultdict(int)
    for u in idle:
        idle_count[_tenant(u.tenant)] += 1
    for name in sorted(per, key=lambda n: (n == UNALLOCATED, n)):
        count, seconds, util_s, weight = per[name]
        tenants.add(
            [name, int(count), seconds / H, util_s / 100.0 / H, util_s / weight if weight else None, idle_count[name]]
        )
    # -- 2 workload mix ----------------------------------------------------------------------------------
    mix_table = Table(
        "workload_mix",
        [
            Column("tenant", key=True),
            Column("workload", key=True),
            Column("unit", key=True),
            Column("served", "", 1),
            Column("served_unit"),
            Column("serving_hours", "h", 3),
            Column("share_pct", "%", 3),
        ],
    )
    tenant_samples: dict[str, float] = defaultdict(float)
    for (name, _), (_, n) in mix.items():
        tenant_samples[name] += n
    for (name, wid), (units, n) in sorted(mix.items(), key=lambda kv: (kv[0][0], workloads.get(kv[0][1], ("", "")))):
        wname, unit = workloads.get(wid, (f"workload {wid}", ""))
        mix_table.add(
            [
                name,
                wname,
                unit,
                served_amount(unit, units),
                served_unit(unit),
                n * ctx.sample_interval_s / H,
                100.0 * n / tenant_samples[name] if tenant_samples[name] else None,
            ]
        )
    # -- 3 returnable ---------------------------------------------------------------------------------------
    ranked = sorted(
        idle,
        key=lambda u: (
            served_by_alloc.get((u.device_id, u.tenant, u.namespace), 0.0) > 0,
            -round(u.seconds, 3),
            devices[u.device_id].uuid,
            u.tenant or "",
            u.namespace or "",
        ),
    )
    ret = Table(
        "returnable",
        [
            Column("rank", key=True),
            Column("tenant"),
            Column("namespace"),
            Column("device"),
            Column("vendor"),
            Column("model"),
            Column("site"),
            Column("allocated_hours", "h", 3),
            Column("busy_pct", "%", 3),
            Column("reason"),
        ],
    )
    for rank, u in enumerate(ranked, 1):
        d = devices[u.device_id]
        units = served_by_alloc.get((u.device_id, u.tenant, u.namespace), 0.0)
        why = (
            f"device-busy at or below {ctx.active_util_pct:g}% and nothing served"
            if units == 0
            else f"device-busy at or below {ctx.active_util_pct:g}%"
        )
        ret.add([rank, u.tenant, u.namespace or "", d.uuid, d.vendor, d.model, d.site, u.seconds / H, busy(u), why])
    sections = [
        Section("tenants", [tenants]),
        Section("workload_mix", [mix_table]),
        Section("returnable", [ret]),
        provenance_section(ctx, gaps),
    ]
    return Report("allocation", p.lang, sections, ctx.to_json())
