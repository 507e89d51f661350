"""A small database with hostile stored values, and the figures a report must show for it.

Six nodes of `SimulatedFleet(80, seed=12)` (two Sapeon X330 and two H100 nodes at nhn-cloud-gwangju, two
Rebellions ATOM nodes at kt-cloud-cheonan) for two hours at 10 s, written through the real ingest sink.
A clean report is built first; then values no device can produce are written straight into
`device_samples` (as rows stored before the wire contract bounded them, or by another path would be):
throughputs of +-inf, NaN, 1e38, 1.5e9 and -5; power and energy counters of inf, NaN, 1e38 and 1e300;
utilizations of NaN, inf, 1e38 and -1e9. The minute rollups of the touched minutes are recomputed by the
stream processor's own code and the hourly ones by `refresh_rollups`, as the pipeline would. The
expected figures are the clean report's minus exactly what the hostile samples replaced: their original
throughput, and the energy and busy time of the hourly rollup rows they made impossible.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from collectors.simulator import SimulatedFleet
from infra.postgres import PostgresService
from kcloud.db.migrate import migrate
from kcloud.db.rollups import refresh_rollups
from kcloud.settings import Settings
from reports.build import render
from reports.common import served_amount
from reports.params import ReportParams
from streams.rollups import update_minute_rollups
from streams.sink import SampleSink

T0 = datetime(2026, 3, 2, 18, 0, tzinfo=UTC)
TICKS = 720
NODES = (0, 1, 4, 5, 76, 77)
END = T0 + timedelta(seconds=10 * TICKS)
INTERVAL = 10.0
WHEN = datetime(2026, 4, 1, tzinfo=UTC)
THROUGHPUTS = (math.inf, -math.inf, math.nan, 1e38, 1.5e9, -5.0)
POWERS = (math.inf, math.nan, 1e38)
ENERGIES = (math.inf, math.nan, 1e300)
UTILS = (math.nan, math.inf, 1e38, -1e9)

Group = tuple[str, str]


@dataclass
class Expected:
    """What the hostile values take out of the clean report, per (vendor, site)."""

    units: dict[tuple[Group, int], float] = field(default_factory=lambda: defaultdict(float))
    throughput_samples: dict[Group, int] = field(default_factory=lambda: defaultdict(int))
    workload_samples: dict[tuple[Group, int], int] = field(default_factory=lambda: defaultdict(int))
    energy_j: dict[Group, float] = field(default_factory=lambda: defaultdict(float))
    energy_rows: dict[Group, int] = field(default_factory=lambda: defaultdict(int))
    busy_s: dict[Group, float] = field(default_factory=lambda: defaultdict(float))
    util_rows: dict[Group, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(frozen=True)
class HostileDb:
    """The database, the clean report (JSON) built before the hostile values, and what they take out."""

    settings: Settings
    clean: dict[str, Any]
    expected: Expected
    workloads: dict[int, str]


def _with_db(url: str, name: str) -> str:
    head, _, _ = url.rpartition("/")
    return f"{head}/{name}"


def build(settings: Settings, kind: str = "evidence", **kw: str) -> dict[str, Any]:
    """The report over the two hours as JSON, built in-process."""
    params = ReportParams.parse(kind, start=T0.isoformat(), end=END.isoformat(), **kw)
    with psycopg.connect(settings.effective_database_url) as conn:
        loaded: dict[str, Any] = json.loads(render(conn, params, settings, "json", WHEN))
    return loaded


def table(report: dict[str, Any], table_id: str) -> list[dict[str, Any]]:
    """The rows of a report's table as dicts."""
    for s in report["sections"]:
        for t in s["tables"]:
            if t["id"] == table_id:
                ids = [c["id"] for c in t["columns"]]
                return [dict(zip(ids, r, strict=True)) for r in t["rows"]]
    raise AssertionError(f"no table {table_id}")


def gaps(report: dict[str, Any]) -> list[str]:
    """The provenance's data-gap lines."""
    return [r["gap"] for r in table(report, "data_gaps")]


def stated(lines: list[str], who: str, what: str) -> int:
    """The count a data-quality line states for `who` ('the throughput of 3 sample(s)' -> 3), else 0."""
    for line in lines:
        if line.startswith(f"data quality: {who}: ") and what in line:
            found = re.search(r"(\d+) (?:sample|rollup row)", line)
            if found is None:
                raise AssertionError(f"a data-quality line without a count: {line}")
            return int(found.group(1))
    return 0


def wrong_figures(report: dict[str, Any], clean: dict[str, Any], ex: Expected, names: dict[int, str]) -> list[str]:
    """Every figure of the evidence report over the hostile data that differs from the clean report's minus
    what the hostile values replaced (served, serving hours, energy, observed and busy hours, per group and
    workload), and every data-quality count that differs from what was injected. Returns ["what: got,
    expected", ...]: empty when no excluded sample is in a figure and every exclusion is stated."""
    wrong: list[str] = []
    lines = gaps(report)
    by_name = {v: k for k, v in names.items()}

    def check(what: str, got: float, want: float, tolerance: float) -> None:
        if abs(got - want) > tolerance:
            wrong.append(f"{what}: {got}, expected {want}")

    service = {(r["vendor"], r["site"], r["workload"]): r for r in table(report, "service")}
    groups: set[Group] = set()
    for row in table(clean, "service"):
        g, w = (row["vendor"], row["site"]), by_name[row["workload"]]
        groups.add(g)
        got = service.get((*g, row["workload"]))
        if got is None:
            wrong.append(f"service {g} {row['workload']}: missing")
            continue
        gone = served_amount(row["unit"], ex.units[(g, w)])
        check(f"served {g} {row['workload']}", got["served"], row["served"] - gone, 0.15)
        n = ex.workload_samples[(g, w)]
        check(f"serving_hours {g} {row['workload']}", got["serving_hours"], row["serving_hours"] - n * 10 / 3600, 2e-3)
    energy = {(r["vendor"], r["site"]): r for r in table(report, "energy")}
    for row in table(clean, "energy"):
        g = (row["vendor"], row["site"])
        check(f"energy_kwh {g}", energy[g]["energy_kwh"], row["energy_kwh"] - ex.energy_j[g] / 3.6e6, 2e-3)
        check(f"energy rows stated {g}", stated(lines, f"{g[0]} at {g[1]}", "the energy of"), ex.energy_rows[g], 0)
    util = {(r["vendor"], r["site"]): r for r in table(report, "utilization")}
    for row in table(clean, "utilization"):
        g = (row["vendor"], row["site"])
        check(f"observed_hours {g}", util[g]["observed_hours"], row["observed_hours"], 1e-3)
        check(f"busy_hours {g}", util[g]["busy_hours"], row["busy_hours"] - ex.busy_s[g] / 3600, 2e-3)
        check(f"util rows stated {g}", stated(lines, f"{g[0]} at {g[1]}", "the utilization of"), ex.util_rows[g], 0)
    for g in groups:
        who = f"{g[0]} at {g[1]}"
        check(f"throughput samples stated {g}", stated(lines, who, "the throughput of"), ex.throughput_samples[g], 0)
    return wrong


def _groups(conn: psycopg.Connection[Any]) -> dict[int, Group]:
    rows = conn.execute(
        "SELECT d.device_id, d.vendor_id, n.site_id FROM devices d JOIN nodes n USING (node_id)"
    ).fetchall()
    return {int(r[0]): (str(r[1]), str(r[2])) for r in rows}


def _hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


def _corrupt(conn: psycopg.Connection[Any], expected: Expected) -> None:
    group = _groups(conn)
    touched: set[tuple[int, datetime]] = set()
    # throughput: every 97th sample that served something, cycling through the hostile values
    rows = conn.execute(
        "SELECT device_id, time, throughput, workload_id FROM device_samples "
        "WHERE throughput > 1 AND workload_id IS NOT NULL ORDER BY device_id, time"
    ).fetchall()
    for n, (device_id, at, value, workload) in enumerate(rows[::97]):
        g = group[int(device_id)]
        expected.units[(g, int(workload))] += float(value) * INTERVAL
        expected.workload_samples[(g, int(workload))] += 1
        expected.throughput_samples[g] += 1
        conn.execute(
            "UPDATE device_samples SET throughput = %s WHERE device_id = %s AND time = %s",
            (THROUGHPUTS[n % len(THROUGHPUTS)], device_id, at),
        )
    # power and energy: one sample at minute 20 of each hour on every 5th device; utilization: minute 40
    devices = sorted(group)
    for n, device_id in enumerate(devices[::5]):
        for hour in (T0, T0 + timedelta(hours=1)):
            at = hour + timedelta(minutes=20)
            cur = conn.execute(
                "UPDATE device_samples SET power_w = %s, energy_j = CASE WHEN energy_j IS NULL THEN NULL ELSE %s END "
                "WHERE device_id = %s AND time = %s AND power_w IS NOT NULL",
                (POWERS[n % len(POWERS)], ENERGIES[n % len(ENERGIES)], device_id, at),
            )
            if cur.rowcount != 1:
                continue
            touched.add((device_id, at))
            row = conn.execute(
                "SELECT energy_j FROM device_rollup_1h WHERE device_id = %s AND bucket = %s", (device_id, hour)
            ).fetchone()
            assert row is not None and row[0] is not None
            g = group[device_id]
            expected.energy_j[g] += float(row[0])
            expected.energy_rows[g] += 1
    for n, device_id in enumerate(devices[2::7]):
        hour = T0 + timedelta(hours=n % 2)
        at = hour + timedelta(minutes=40)
        cur = conn.execute(
            "UPDATE device_samples SET util_pct = %s WHERE device_id = %s AND time = %s AND util_pct IS NOT NULL",
            (UTILS[n % len(UTILS)], device_id, at),
        )
        if cur.rowcount != 1:
            continue
        touched.add((device_id, at))
        row = conn.execute(
            "SELECT util_avg, seconds_observed FROM device_rollup_1h WHERE device_id = %s AND bucket = %s",
            (device_id, hour),
        ).fetchone()
        assert row is not None and row[0] is not None
        g = group[device_id]
        expected.busy_s[g] += float(row[0]) * float(row[1]) / 100.0
        expected.util_rows[g] += 1
    update_minute_rollups(conn, touched, INTERVAL)
    # the reports' own rollup is a cache of the raw samples: the clean report filled it, so it is dropped
    # here as a replay of the same samples would never refresh it
    conn.execute("DELETE FROM device_report_1h")
    conn.execute("DELETE FROM device_report_1d")


def fill_hostile(base_settings: Settings, postgres_up: PostgresService) -> Iterator[HostileDb]:
    """Create, fill, report, corrupt; yields the `HostileDb` and drops the database afterwards."""
    name = "rh_" + uuid.uuid4().hex[:12]
    admin = _with_db(postgres_up.url, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    settings = base_settings.model_copy(update={"database_url": _with_db(postgres_up.url, name)})
    try:
        migrate(settings.effective_database_url, settings, now=T0)
        fleet = SimulatedFleet(nodes=80, seed=12)
        wanted = {fleet.node_id(n) for n in NODES}
        sink = SampleSink(settings)
        batch = []
        for k in range(TICKS):
            batch.extend(s for s in fleet.tick(T0 + timedelta(seconds=10 * k), k) if s.node.node_id in wanted)
            if len(batch) >= 360 or k == TICKS - 1:
                sink.write(batch)
                batch = []
        sink.sweep()
        sink.close()
        url = settings.effective_database_url
        with psycopg.connect(url, autocommit=True) as conn:
            refresh_rollups(conn, T0 - timedelta(days=1), END + timedelta(days=1))
        clean = build(settings)
        expected = Expected()
        with psycopg.connect(url) as conn:
            _corrupt(conn, expected)
        with psycopg.connect(url, autocommit=True) as conn:
            refresh_rollups(conn, T0 - timedelta(days=1), END + timedelta(days=1))
            workloads = {int(r[0]): str(r[1]) for r in conn.execute("SELECT workload_id, name FROM workloads")}
        yield HostileDb(settings, clean, expected, workloads)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
