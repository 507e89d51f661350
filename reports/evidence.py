"""The evidence report: what a program manager shows for the fleet, per vendor and site, over a period.

Sections: 1 inventory, 2 availability, 3 utilization, 4 service evidence, 5 energy and efficiency (with
the GPU baseline at the same site), 6 telemetry completeness, 7 provenance. The devices and their
availability come from the deployment ledger (`reports.scope`), every other figure from the rollups
(`reports.queries`); the definitions printed with each section are in `reports.i18n`.

Example:
    >>> report = build_evidence(conn, ctx)  # doctest: +SKIP
    >>> [s.id for s in report.sections]  # doctest: +SKIP
    ['inventory', 'availability', 'utilization', 'service', 'energy', 'completeness', 'provenance']
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import psycopg

from reports.common import BuildContext, percentile, provenance_section, served_amount, served_unit
from reports.model import Column, Report, Section, Table
from reports.periods import overlap, period_bounds, period_label, tiles
from reports.quality import Exclusions, bounds
from reports.queries import Served, Usage, served, usage
from reports.rollup import refresh_report_rollup
from reports.scope import Scope, ScopedDevice, load_scope

__all__ = ["build_evidence"]

ALL = "all"
H = 3600.0
_GROUP = [Column("vendor", key=True), Column("site", key=True)]
_PERIOD = [*_GROUP, Column("period", key=True)]
_USAGE_SUMS = (
    "seconds",
    "util_seconds",
    "util_weight",
    "energy_j",
    "alloc_seconds",
    "alloc_util_seconds",
    "energy_excluded_seconds",
)


def _hours(c: str) -> Column:
    return Column(c, "h", 3)


def _pct(c: str) -> Column:
    return Column(c, "%", 3)


class _Builder:
    def __init__(self, conn: psycopg.Connection[Any], ctx: BuildContext, scope: Scope) -> None:
        p = ctx.params
        self.ctx, self.scope = ctx, scope
        self.tiles = tiles(p.start, p.end)
        self.bounds = period_bounds(p.start, p.end, p.granularity)
        self.periods = [
            (period_label(lo, hi, p.granularity), lo, hi) for lo, hi in zip(self.bounds, self.bounds[1:], strict=False)
        ]
        self.groups = sorted({(d.vendor, d.site) for d in scope.devices})
        index = {g: i for i, g in enumerate(self.groups)}
        self.members: dict[int, list[ScopedDevice]] = defaultdict(list)
        for d in scope.devices:
            self.members[index[(d.vendor, d.site)]].append(d)
        ids = [d.device_id for d in scope.devices]
        group_of = [index[(d.vendor, d.site)] for d in scope.devices]
        self.sites = sorted({d.site for d in scope.devices})
        base = {s: len(self.groups) + i for i, s in enumerate(self.sites)}
        everyone = sorted({*ids, *(g.device_id for g in scope.gpu_baseline)})
        refresh_report_rollup(conn, self.tiles, everyone, ctx.sample_interval_s)
        self.by_group, self.by_device = usage(
            conn, self.tiles, self.bounds, ids, group_of, interval_s=ctx.sample_interval_s
        )
        # baseline GPUs outside the report's filters: only what the quality lines need of their rollups
        in_scope = set(ids)
        extra = sorted({g.device_id for g in scope.gpu_baseline if g.device_id not in in_scope})
        self.baseline_usage: dict[int, Usage] = (
            usage(conn, self.tiles, self.bounds, extra, [0] * len(extra), interval_s=ctx.sample_interval_s)[1]
            if extra
            else {}
        )
        self.served = served(
            conn,
            self.tiles,
            self.bounds,
            ids + [g.device_id for g in scope.gpu_baseline],
            group_of + [base[g.site] for g in scope.gpu_baseline],
            interval_s=ctx.sample_interval_s,
        )
        self.base = base
        self.workloads: dict[int, tuple[str, str]] = {
            int(r[0]): (r[1], r[2]) for r in conn.execute("SELECT workload_id, name, unit FROM workloads").fetchall()
        }
        self.gaps: list[str] = ["firmware: not carried by the telemetry; shown as 'not reported'"]

    # -- helpers ------------------------------------------------------------------------------------
    def _usage(self, g: int, p: int | None) -> Usage:
        if p is not None:
            return self.by_group.get((g, p), Usage())
        total = Usage()
        for i in range(len(self.periods)):
            u = self.by_group.get((g, i))
            if u is not None:
                for f in _USAGE_SUMS:
                    setattr(total, f, getattr(total, f) + getattr(u, f))
                total.samples += u.samples
                total.excluded.add(u.excluded)
        return total

    def _served(self, g: int, p: int | None) -> dict[int, Served]:
        out: dict[int, Served] = defaultdict(Served)
        for (gg, pp, w), s in self.served.items():
            if gg == g and (p is None or pp == p):
                acc = out[w]
                acc.units += s.units
                acc.energy_j += s.energy_j
                acc.samples += s.samples
                acc.counter_samples += s.counter_samples
                acc.excluded += s.excluded
        return out

    def _period_rows(self) -> list[tuple[str, int | None, Any, Any]]:
        """(label, index, lo, hi) of every period, then the whole report period."""
        rows: list[tuple[str, int | None, Any, Any]] = [
            (lab, i, lo, hi) for i, (lab, lo, hi) in enumerate(self.periods)
        ]
        if len(self.periods) > 1:
            rows.append((ALL, None, self.bounds[0], self.bounds[-1]))
        return rows

    # -- sections -----------------------------------------------------------------------------------
    def inventory(self) -> Section:
        cols = [*_GROUP, Column("model", key=True), Column("firmware", key=True), Column("cards")]
        cols += [_hours("in_service_hours"), _hours("available_hours"), _hours("planned_hours")]
        t = Table("inventory", cols)
        models: dict[tuple[str, str, str], list[ScopedDevice]] = defaultdict(list)
        for d in self.scope.devices:
            models[(d.vendor, d.site, d.model)].append(d)
        for (vendor, site, model), devs in sorted(models.items()):
            service = sum(d.spans.service_seconds for d in devs)
            down = sum(d.spans.down_seconds for d in devs)
            planned = sum(d.spans.planned_seconds for d in devs)
            t.add([vendor, site, model, "not reported", len(devs), service / H, (service - down) / H, planned / H])
        return Section("inventory", [t])

    def availability(self) -> Section:
        cols = [*_PERIOD, Column("cards"), _hours("in_service_hours"), _hours("unplanned_down_hours")]
        cols += [_hours("planned_hours"), _pct("availability_pct"), Column("failures")]
        cols += [Column("failures_per_1000_card_days", "", 3), _hours("mtbf_hours"), _hours("mttr_hours")]
        t = Table("availability", cols)
        for g, (vendor, site) in enumerate(self.groups):
            for label, _, lo, hi in self._period_rows():
                devs = self.members[g]
                service = sum(overlap(d.spans.service, lo, hi) for d in devs)
                if service <= 0:
                    continue
                down = sum(overlap(d.spans.down, lo, hi) for d in devs)
                planned = sum(overlap(d.spans.planned, lo, hi) for d in devs)
                cards = sum(1 for d in devs if overlap(d.spans.service, lo, hi) > 0)
                failures = sum(1 for d in devs for a in d.spans.outage_starts if lo <= a < hi and a >= self.bounds[0])
                outages = sum(1 for d in devs for a, b in d.spans.down if b > lo and a < hi)
                t.add(
                    [
                        vendor,
                        site,
                        label,
                        cards,
                        service / H,
                        down / H,
                        planned / H,
                        100.0 * (service - down) / service,
                        failures,
                        1000.0 * failures / (service / 86400.0),
                        (service - down) / H / failures if failures else None,
                        down / H / outages if outages else None,
                    ]
                )
        return Section("availability", [t])

    def utilization(self) -> Section:
        cols = [*_PERIOD, _hours("observed_hours"), _pct("busy_pct"), _hours("busy_hours")]
        cols += [_hours("allocated_hours"), _hours("allocated_busy_hours")]
        t = Table("utilization", cols)
        for g, (vendor, site) in enumerate(self.groups):
            for label, p, _, _ in self._period_rows():
                u = self._usage(g, p)
                t.add(
                    [
                        vendor,
                        site,
                        label,
                        u.seconds / H,
                        u.util_pct,
                        u.util_seconds / 100.0 / H,
                        u.alloc_seconds / H,
                        u.alloc_util_seconds / 100.0 / H,
                    ]
                )
        dist_cols = [*_GROUP, Column("cards"), Column("idle_cards")]
        dist_cols += [_pct("p10_pct"), _pct("p50_pct"), _pct("p90_pct")]
        dist = Table("utilization_distribution", dist_cols)
        for g, (vendor, site) in enumerate(self.groups):
            used = [self.by_device.get(d.device_id) for d in self.members[g]]
            known = [v for u in used if u is not None and (v := u.util_pct) is not None]
            missing = len(self.members[g]) - len(known)
            if missing:
                self.gaps.append(f"{vendor} at {site}: {missing} card(s) in service sent no utilization in the period")
            idle = sum(1 for v in known if v <= self.ctx.active_util_pct)
            dist.add([vendor, site, len(self.members[g]), idle, *(percentile(known, q) for q in (0.1, 0.5, 0.9))])
        return Section("utilization", [t, dist])

    def service(self) -> Section:
        cols = [*_PERIOD, Column("workload", key=True), Column("unit", key=True), Column("served", "", 1)]
        cols += [Column("served_unit"), _hours("serving_hours"), Column("mean_rate", "", 3)]
        t = Table("service", cols)
        for g, (vendor, site) in enumerate(self.groups):
            any_served = False
            for label, p, _, _ in self._period_rows():
                rows = self._served(g, p)
                for w in sorted(rows, key=lambda w: self.workloads.get(w, ("", ""))):
                    s = rows[w]
                    if w == 0 or w not in self.workloads or s.samples == 0:
                        continue
                    any_served = True
                    name, unit = self.workloads[w]
                    seconds = s.samples * self.ctx.sample_interval_s
                    amount = served_amount(unit, s.units)
                    t.add([vendor, site, label, name, unit, amount, served_unit(unit), seconds / H, s.units / seconds])
            if not any_served:
                self.gaps.append(f"{vendor} at {site}: no throughput was reported in the period (no service evidence)")
        return Section("service", [t])

    def energy(self) -> Section:
        cols = [*_PERIOD, Column("energy_kwh", "kWh", 3), Column("mean_power_w", "W", 3)]
        cols += [_pct("counter_pct"), Column("energy_source")]
        t = Table("energy", cols)
        for g, (vendor, site) in enumerate(self.groups):
            for label, p, _, _ in self._period_rows():
                u = self._usage(g, p)
                rows = self._served(g, p).values()
                samples = sum(s.samples for s in rows)
                counted = sum(s.counter_samples for s in rows)
                share = 100.0 * counted / samples if samples else None
                source = (
                    "no samples"
                    if share is None
                    else "energy counter"
                    if counted == samples
                    else "integrated from power"
                    if counted == 0
                    else "energy counter, rest integrated from power"
                )
                if (p is None or len(self.periods) == 1) and share is not None and counted < samples:
                    self.gaps.append(
                        f"{vendor} at {site}: {100.0 - share:.1f}% of samples carry no energy counter; where "
                        "they carry power, their energy is power integrated over the observed time"
                    )
                # rows whose energy was left out (reports.quality) leave their seconds out of the mean power
                powered = u.seconds - u.energy_excluded_seconds
                power = u.energy_j / powered if powered > 0 else None
                t.add([vendor, site, label, u.energy_j / 3.6e6, power, share, source])
        return Section("energy", [t, self._efficiency()])

    def _efficiency(self) -> Table:
        cols = [*_GROUP, Column("workload", key=True), Column("unit", key=True), Column("served", "", 1)]
        cols += [Column("energy_kwh", "kWh", 3), Column("per_watt", "", 6), Column("gpu_per_watt", "", 6)]
        cols += [Column("ratio_to_gpu", "", 4), Column("comparison")]
        t = Table("efficiency", cols)
        kinds = {(d.vendor, d.site): d.kind for d in self.scope.devices}
        for g, (vendor, site) in enumerate(self.groups):
            rows = self._served(g, None)
            baseline = self._served(self.base[site], None)
            for w in sorted(rows, key=lambda w: self.workloads.get(w, ("", ""))):
                s = rows[w]
                if w == 0 or w not in self.workloads or s.samples == 0:
                    continue
                name, unit = self.workloads[w]
                per_watt = s.units / s.energy_j if s.energy_j > 0 else None
                b = baseline.get(w)
                gpu = b.units / b.energy_j if b is not None and b.energy_j > 0 and b.samples and b.units > 0 else None
                ratio: float | None = None
                if kinds[(vendor, site)] == "gpu":
                    why = "GPU group: part of the baseline itself"
                elif per_watt is None:
                    why = "no fair comparison: no energy was recorded for this group"
                elif gpu is None:
                    why = f"no fair comparison: no GPU at {site} served {name} in the period"
                else:
                    ratio = per_watt / gpu
                    why = f"same site, same workload, same period ({name} on GPUs at {site})"
                t.add(
                    [
                        vendor,
                        site,
                        name,
                        unit,
                        served_amount(unit, s.units),
                        s.energy_j / 3.6e6,
                        per_watt,
                        gpu,
                        ratio,
                        why,
                    ]
                )
        return t

    def completeness(self) -> Section:
        cols = [Column("expected"), Column("received"), _pct("completeness_pct")]
        by_vendor = Table("completeness_vendor", [Column("vendor", key=True), *cols])
        by_site = Table("completeness_site", [Column("site", key=True), *cols])
        for table, attr in ((by_vendor, "vendor"), (by_site, "site")):
            sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
            for d in self.scope.devices:
                acc = sums[getattr(d, attr)]
                acc[0] += d.spans.service_seconds / self.ctx.sample_interval_s
                u = self.by_device.get(d.device_id)
                acc[1] += u.samples if u is not None else 0
            for key, (expected, received) in sorted(sums.items()):
                pct = 100.0 * received / expected if expected else None
                table.add([key, round(expected), int(received), pct])
                if attr == "vendor" and pct is not None and pct < 99.0:
                    self.gaps.append(
                        f"{key} feed: {int(received)} of {round(expected)} expected samples received ({pct:.2f}%)"
                    )
        return Section("completeness", [by_vendor, by_site])

    def quality(self) -> None:
        """Data-quality lines: what each group's figures left out as physically impossible (reports.quality)."""
        b = bounds()
        for g, (vendor, site) in enumerate(self.groups):
            ex = Exclusions()
            for d in self.members[g]:
                u = self.by_device.get(d.device_id)
                if u is not None:
                    ex.add(u.excluded)
            ex.throughput_samples = sum(s.excluded for s in self._served(g, None).values())
            self.gaps.extend(ex.lines(f"{vendor} at {site}", b))
        for site in self.sites:
            if all(g.device_id not in self.baseline_usage for g in self.scope.gpu_baseline if g.site == site):
                continue  # every baseline GPU of the site is in a group above, whose lines count its values
            ex = Exclusions()
            for gpu in self.scope.gpu_baseline:
                u = self.baseline_usage.get(gpu.device_id)
                if gpu.site == site and u is not None:
                    ex.add(u.excluded)
            ex.throughput_samples = sum(s.excluded for s in self._served(self.base[site], None).values())
            ex.util_rows = ex.util_samples = 0  # the baseline shows no utilization figure
            self.gaps.extend(ex.lines(f"the GPU baseline at {site} (GPUs outside the report's filters included)", b))


def build_evidence(conn: psycopg.Connection[Any], ctx: BuildContext) -> Report:
    """Build the evidence report for `ctx.params` from the database behind `conn`.

    Raises `ReportError` for an unknown vendor, site or programme and for a period without data.
    """
    scope = load_scope(conn, ctx.params, head_seq=ctx.ledger.seq or 0, interval=ctx.interval)
    b = _Builder(conn, ctx, scope)
    sections: Sequence[Section] = [
        b.inventory(),
        b.availability(),
        b.utilization(),
        b.service(),
        b.energy(),
        b.completeness(),
    ]
    b.quality()
    if not ctx.ledger.count:
        b.gaps.append("the deployment ledger is empty: no offline or health events, availability reads 100%")
    return Report("evidence", ctx.params.lang, [*sections, provenance_section(ctx, b.gaps)], ctx.to_json())
