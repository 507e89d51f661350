"""The evidence report's figures for one vendor and site equal those computed here from the snapshots the
simulated fleet produced (not from the database): availability, service hours, utilization, service and
efficiency, completeness, for the Sapeon X330 cards at nhn-cloud-gwangju (an offline spell of node 2 and a
failure of device (3, 0) fall in the window) beside the H100s of the same site."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from report_fleet import END, T0, FleetDb

from kcloud.records import NodeSnapshot
from reports.build import render
from reports.params import ReportParams

INTERVAL = 10.0
OFFLINE_AFTER = 60.0
SITE = "nhn-cloud-gwangju"


def _table(report: dict[str, Any], table_id: str) -> list[dict[str, Any]]:
    for s in report["sections"]:
        for t in s["tables"]:
            if t["id"] == table_id:
                ids = [c["id"] for c in t["columns"]]
                return [dict(zip(ids, r, strict=True)) for r in t["rows"]]
    raise AssertionError(f"no table {table_id}")


def _samples(snapshots: list[NodeSnapshot], vendor: str | None, kind: str | None = None) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = defaultdict(list)
    for snap in snapshots:
        if snap.node.site_id != SITE:
            continue
        for d in snap.devices:
            if (vendor is None or d.vendor == vendor) and (kind is None or d.kind == kind):
                out[d.device_uuid].append((snap.collected_at, d))
    return {k: sorted(v, key=lambda x: x[0]) for k, v in out.items()}


def _downtime(rows: list[Any]) -> tuple[float, int]:
    """Unplanned seconds and outages of one device: silences longer than the offline threshold (from the
    first missed sample) and failed-health spells."""
    down, outages = 0.0, 0
    failed_since: datetime | None = None
    prev: datetime | None = None
    for at, d in rows:
        if prev is not None and (at - prev).total_seconds() > OFFLINE_AFTER:
            down += (at - prev).total_seconds() - INTERVAL
            outages += 1
        if d.health == "failed" and failed_since is None and prev is not None:
            failed_since = at
            outages += 1
        elif d.health != "failed" and failed_since is not None:
            down += (at - failed_since).total_seconds()
            failed_since = None
        prev = at
    if failed_since is not None:
        down += (END - failed_since).total_seconds()
    return down, outages


def _minute_energy(rows: list[Any]) -> dict[datetime, float]:
    """Energy per minute as the ingest defines it: counter advance since the previous sample (within three
    intervals), else mean power x observed seconds."""
    by_minute: dict[datetime, list[Any]] = defaultdict(list)
    for at, d in rows:
        by_minute[at.replace(second=0)].append((at, d))
    out: dict[datetime, float] = {}
    for minute, items in by_minute.items():
        counters = [d.energy_j for _, d in items if d.energy_j is not None]
        t_first = min(at for at, _ in items)
        before = [(at, d) for at, d in rows if at < minute and at >= t_first - timedelta(seconds=3 * INTERVAL)]
        prev = before[-1][1].energy_j if before else None
        if counters and prev is not None and max(counters) >= prev:
            out[minute] = max(counters) - prev
        else:
            powers = [d.power_w for _, d in items if d.power_w is not None]
            if powers:
                out[minute] = sum(powers) / len(powers) * min(60.0, len(items) * INTERVAL)
    return out


def _efficiency(samples: dict[str, list[Any]], workload: str) -> float:
    """Units served per joule for `workload`: each device-hour's energy shared by the workload's samples."""
    units = energy = 0.0
    for rows in samples.values():
        per_minute = _minute_energy(rows)
        hours: dict[datetime, list[Any]] = defaultdict(list)
        for at, d in rows:
            hours[at.replace(minute=0, second=0)].append(d)
        for hour, ds in hours.items():
            mine = [d for d in ds if d.throughput is not None and d.throughput.workload == workload]
            if not mine:
                continue
            e_hour = sum(e for m, e in per_minute.items() if m.replace(minute=0) == hour)
            units += sum(d.throughput.value * INTERVAL for d in mine)
            energy += e_hour * len(mine) / len(ds)
    return units / energy


@pytest.fixture(scope="module")
def report(fleet_db: FleetDb) -> dict[str, Any]:
    params = ReportParams.parse("evidence", start=T0.isoformat(), end=END.isoformat(), vendor="sapeon", site=SITE)
    with psycopg.connect(fleet_db.settings.effective_database_url) as conn:
        data = render(conn, params, fleet_db.settings, "json", datetime(2026, 4, 1, tzinfo=UTC))
    loaded: dict[str, Any] = json.loads(data)
    return loaded


def test_availability_and_service_hours_match_the_snapshots(fleet_db: FleetDb, report: dict[str, Any]) -> None:
    samples = _samples(fleet_db.snapshots, "sapeon")
    service = sum((END - rows[0][0]).total_seconds() for rows in samples.values())
    down_outages = [_downtime(rows) for rows in samples.values()]
    down = sum(d for d, _ in down_outages)
    failures = sum(n for _, n in down_outages)
    assert failures == 9, "the window holds node 2's offline spell (8 cards) and the failure of one card"
    [row] = _table(report, "availability")
    assert row["cards"] == len(samples) == 32
    assert row["in_service_hours"] == pytest.approx(service / 3600, abs=1e-3)
    assert row["unplanned_down_hours"] == pytest.approx(down / 3600, abs=1e-3)
    assert row["availability_pct"] == pytest.approx(100 * (service - down) / service, abs=1e-3)
    assert row["failures"] == failures
    assert row["mtbf_hours"] == pytest.approx((service - down) / 3600 / failures, abs=1e-3)
    assert row["mttr_hours"] == pytest.approx(down / 3600 / failures, abs=1e-3)
    [inv] = _table(report, "inventory")
    assert inv["available_hours"] == pytest.approx((service - down) / 3600, abs=1e-3)


def test_utilization_matches_the_snapshots(fleet_db: FleetDb, report: dict[str, Any]) -> None:
    samples = _samples(fleet_db.snapshots, "sapeon")
    util_s = weight = observed = 0.0
    per_device: list[float] = []
    for rows in samples.values():
        # the definition: hourly buckets (this window is whole hours) of minute means weighted by samples,
        # each hour weighted by its observed seconds
        hours: dict[datetime, dict[datetime, list[Any]]] = defaultdict(lambda: defaultdict(list))
        for at, d in rows:
            hours[at.replace(minute=0, second=0)][at.replace(second=0)].append(d)
        dev_util = dev_weight = 0.0
        for minutes in hours.values():
            seconds = sum(min(60.0, len(ds) * INTERVAL) for ds in minutes.values())
            observed += seconds
            means = [
                (sum(u) / len(u), len(ds))
                for ds in minutes.values()
                if (u := [d.util_pct for d in ds if d.util_pct is not None])
            ]
            if means:
                hour_mean = sum(m * n for m, n in means) / sum(n for _, n in means)
                dev_util += hour_mean * seconds
                dev_weight += seconds
        util_s += dev_util
        weight += dev_weight
        per_device.append(dev_util / dev_weight)
    [row] = _table(report, "utilization")
    assert row["observed_hours"] == pytest.approx(observed / 3600, abs=1e-3)
    assert row["busy_pct"] == pytest.approx(util_s / weight, abs=2e-3)
    assert row["busy_hours"] == pytest.approx(util_s / 100 / 3600, abs=2e-3)
    [dist] = _table(report, "utilization_distribution")
    ordered = sorted(per_device)
    assert dist["idle_cards"] == sum(1 for v in per_device if v <= 5.0)
    mid = (ordered[15] + ordered[16]) / 2
    assert dist["p50_pct"] == pytest.approx(mid, abs=2e-3)


def test_service_and_efficiency_match_the_snapshots(fleet_db: FleetDb, report: dict[str, Any]) -> None:
    samples = _samples(fleet_db.snapshots, "sapeon")
    served: dict[str, float] = defaultdict(float)
    for rows in samples.values():
        for _, d in rows:
            if d.throughput is not None:
                served[d.throughput.workload] += d.throughput.value * INTERVAL
    by_workload = {r["workload"]: r for r in _table(report, "service")}
    assert set(by_workload) == set(served)
    for workload, tokens in served.items():
        assert by_workload[workload]["served"] == pytest.approx(tokens, abs=0.1)
        assert by_workload[workload]["served_unit"] == "tokens"
    effs = {r["workload"]: r for r in _table(report, "efficiency")}
    gpus = _samples(fleet_db.snapshots, None, kind="gpu")
    for workload in ("qwen2.5-7b-instruct", "exaone-3.5-7.8b-instruct"):
        mine = _efficiency(samples, workload)
        baseline = _efficiency(gpus, workload)
        assert effs[workload]["per_watt"] == pytest.approx(mine, rel=1e-5)
        assert effs[workload]["gpu_per_watt"] == pytest.approx(baseline, rel=1e-5)
        assert effs[workload]["ratio_to_gpu"] == pytest.approx(mine / baseline, abs=2e-4)
    assert effs["eagle-3b"]["ratio_to_gpu"] is None
    assert effs["eagle-3b"]["comparison"].startswith("no fair comparison: no GPU at nhn-cloud-gwangju served eagle-3b")


def test_energy_and_completeness_match_the_snapshots(fleet_db: FleetDb, report: dict[str, Any]) -> None:
    samples = _samples(fleet_db.snapshots, "sapeon")
    joules = sum(sum(_minute_energy(rows).values()) for rows in samples.values())
    [energy] = _table(report, "energy")
    assert energy["energy_kwh"] == pytest.approx(joules / 3.6e6, abs=2e-3)
    expected = sum((END - rows[0][0]).total_seconds() for rows in samples.values()) / INTERVAL
    [vendor] = _table(report, "completeness_vendor")
    assert vendor["expected"] == round(expected)
    assert vendor["received"] == sum(len(rows) for rows in samples.values())
