"""The SQL of the reports: sums over the rollups for the devices of a report, grouped in the database.

Every query reads a period through its tiles (`reports.periods.tiles`): daily rollups for whole days,
hourly ones around them, minute ones (or raw samples, for throughput) at the edges. Devices come with
the report group they belong to (`unnest(ids, groups)`), so the database returns one row per group and
period rather than one per device and bucket. Each row's value is rounded to a thousandth of its unit
and summed as an integer, which is exact and independent of the order PostgreSQL (or its parallel
workers) adds rows in: the same data gives the same figures, byte for byte, and it is several times
faster than summing in `numeric`.

An allocation (`device_allocations`) is credited with a bucket when it is the one in force at the
bucket's end; an allocation that changes inside a day is therefore credited by whole days where the
report reads daily rollups.

Example:
    >>> by_group, by_device = usage(conn, tiles(start, end), bounds, ids, groups)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql

from reports.periods import LEVEL_WIDTH, Tile
from reports.quality import BAD_THROUGHPUT, CAST_LIMIT, Exclusions, bounds

__all__ = ["AllocationUse", "Served", "Usage", "allocation_served", "allocation_use", "served", "usage"]

_ORIGIN = "TIMESTAMPTZ '2000-01-01 00:00+00'"


@dataclass
class Usage:
    """Sums over rollup rows: observed seconds, utilization x seconds (util in %), energy, samples."""

    seconds: float = 0.0
    util_seconds: float = 0.0
    util_weight: float = 0.0
    energy_j: float = 0.0
    samples: int = 0
    alloc_seconds: float = 0.0
    alloc_util_seconds: float = 0.0
    energy_excluded_seconds: float = 0.0
    excluded: Exclusions = field(default_factory=Exclusions)

    @property
    def util_pct(self) -> float | None:
        return self.util_seconds / self.util_weight if self.util_weight else None


@dataclass
class Served:
    """Throughput served by a group in a period for one workload (0 = samples without a throughput)."""

    units: float = 0.0
    energy_j: float = 0.0
    samples: int = 0
    counter_samples: int = 0
    excluded: int = 0


@dataclass(frozen=True)
class AllocationUse:
    """One (device, tenant, namespace) allocation's observed time and utilization in the period."""

    device_id: int
    tenant: str | None
    namespace: str | None
    seconds: float
    util_seconds: float
    util_weight: float
    excluded: Exclusions = field(default_factory=Exclusions)


def _f(value: Decimal | float | int | None) -> float:
    """A milli-unit integer sum from the database back in units."""
    return float(value) / 1000.0 if value is not None else 0.0


#: the rollup rows' exclusion counts (reports.quality): util rows/samples, energy rows/samples, whole rows/samples
_QUALITY = (
    "sum(r.bad_util), sum(r.bad_util * r.raw_samples), sum(r.bad_energy), sum(r.bad_energy * r.raw_samples), "
    "sum(r.bad_row), sum(r.bad_row * r.raw_samples)"
)


def _exclusions(row: Sequence[Any]) -> Exclusions:
    n = [int(v or 0) for v in row]
    return Exclusions(0, n[0], n[1], n[2], n[3], n[4], n[5])


def _where(
    column: str, ranges: Sequence[tuple[datetime, datetime]], params: dict[str, Any], tag: str
) -> sql.Composable:
    parts = []
    for i, (lo, hi) in enumerate(ranges):
        params[f"{tag}_lo{i}"], params[f"{tag}_hi{i}"] = lo, hi
        parts.append(
            sql.SQL("({c} >= {lo} AND {c} < {hi})").format(
                c=sql.Identifier(column), lo=sql.Placeholder(f"{tag}_lo{i}"), hi=sql.Placeholder(f"{tag}_hi{i}")
            )
        )
    return sql.SQL(" OR ").join(parts)


def _bound_params(params: dict[str, Any], interval_s: float) -> None:
    b = bounds()
    params.update(
        t_min=b.throughput_min,
        t_max=b.throughput_max,
        u_min=b.util_min,
        u_max=b.util_max,
        interval=interval_s,
        cast_limit=CAST_LIMIT,
    )


def _rollup_union(tiles: Sequence[Tile], params: dict[str, Any], interval_s: float) -> sql.Composable:
    """device_id, bucket, bucket_end, util_avg, energy_j, samples, seconds_observed over the tiles, with the
    values outside the catalogue's bounds (`reports.quality`) nulled and flagged: bad_row (every figure of
    the row left out), bad_util, bad_energy, and raw_samples (the samples behind the row)."""
    _bound_params(params, interval_s)
    selects = []
    for level in ("1d", "1h", "1m"):
        ranges = [(lo, hi) for lv, lo, hi in tiles if lv == level]
        if not ranges:
            continue
        width = LEVEL_WIDTH[level]
        params[f"w{level}"] = width
        params[f"ws{level}"] = width.total_seconds()
        params[f"emax{level}"] = bounds().energy_max(width.total_seconds(), interval_s)
        selects.append(
            sql.SQL(
                "SELECT device_id, bucket, bucket + {w} AS bucket_end, "
                "CASE WHEN ok_row AND ok_util THEN util_avg END AS util_avg, "
                "CASE WHEN ok_row AND ok_energy THEN energy_j END AS energy_j, "
                "CASE WHEN ok_row THEN samples ELSE 0 END AS samples, "
                "CASE WHEN ok_row THEN seconds_observed END AS seconds_observed, "
                "(NOT ok_row)::int AS bad_row, coalesce(ok_row AND NOT ok_util, false)::int AS bad_util, "
                "coalesce(ok_row AND NOT ok_energy, false)::int AS bad_energy, samples::int8 AS raw_samples "
                "FROM (SELECT device_id, bucket, util_avg, energy_j, samples, seconds_observed, "
                "coalesce(seconds_observed BETWEEN 0 AND {ws} AND samples >= 0, false) AS ok_row, "
                "util_avg BETWEEN %(u_min)s AND %(u_max)s AS ok_util, energy_j BETWEEN 0 AND {emax} AS ok_energy "
                "FROM {table} WHERE device_id = ANY(%(ids)s) AND ({where})) x"
            ).format(
                w=sql.Placeholder(f"w{level}"),
                ws=sql.Placeholder(f"ws{level}"),
                emax=sql.Placeholder(f"emax{level}"),
                table=sql.Identifier(f"device_rollup_{level}"),
                where=_where("bucket", ranges, params, f"r{level}"),
            )
        )
    if not selects:
        return sql.SQL(
            "SELECT NULL::int AS device_id, NULL::timestamptz AS bucket, NULL::timestamptz AS bucket_end, "
            "NULL::real AS util_avg, NULL::float8 AS energy_j, 0 AS samples, NULL::real AS seconds_observed, "
            "0 AS bad_row, 0 AS bad_util, 0 AS bad_energy, 0::int8 AS raw_samples WHERE false"
        )
    return sql.SQL(" UNION ALL ").join(selects)


def _report_union(tiles: Sequence[Tile], params: dict[str, Any], interval_s: float) -> sql.Composable:
    """device_id, bucket, bucket_end, workload_id, samples, units, counter_samples, excluded over the tiles.

    A sample whose throughput is outside the catalogue's range counts as a sample without a throughput
    (workload 0) and in `excluded`; so does every sample of a stored report row whose units no sample
    could have served (a row written before the bound, or by another path)."""
    _bound_params(params, interval_s)
    selects = []
    for level in ("1d", "1h"):
        ranges = [(lo, hi) for lv, lo, hi in tiles if lv == level]
        if not ranges:
            continue
        params[f"w{level}"] = LEVEL_WIDTH[level]
        selects.append(
            sql.SQL(
                "SELECT device_id, bucket, bucket + {w} AS bucket_end, "
                "CASE WHEN ok THEN workload_id ELSE 0::smallint END AS workload_id, samples, "
                "CASE WHEN ok THEN units ELSE 0 END AS units, counter_samples, "
                "excluded_samples + CASE WHEN ok THEN 0 ELSE samples END AS excluded "
                "FROM (SELECT *, coalesce(units BETWEEN %(t_min)s * samples * %(interval)s "
                "AND %(t_max)s * samples * %(interval)s AND units < %(cast_limit)s, false) AS ok "
                "FROM {table} WHERE device_id = ANY(%(ids)s) AND ({where})) x"
            ).format(
                w=sql.Placeholder(f"w{level}"),
                table=sql.Identifier(f"device_report_{level}"),
                where=_where("bucket", ranges, params, f"t{level}"),
            )
        )
    minutes = [(lo, hi) for lv, lo, hi in tiles if lv == "1m"]
    if minutes:
        selects.append(
            sql.SQL(
                "SELECT device_id, date_bin('1 minute', time, {origin}) AS bucket, "
                "date_bin('1 minute', time, {origin}) + interval '1 minute' AS bucket_end, "
                "(CASE WHEN {bad} THEN 0 ELSE coalesce(workload_id, 0) END)::smallint AS workload_id, "
                "count(*)::int AS samples, "
                "coalesce(sum(throughput::float8 * %(interval)s) FILTER (WHERE NOT {bad}), 0) AS units, "
                "count(energy_j)::int AS counter_samples, count(*) FILTER (WHERE {bad})::int AS excluded "
                "FROM device_samples WHERE device_id = ANY(%(ids)s) AND ({where}) GROUP BY 1, 2, 3, 4"
            ).format(origin=sql.SQL(_ORIGIN), bad=sql.SQL(BAD_THROUGHPUT), where=_where("time", minutes, params, "tm"))
        )
    if not selects:
        return sql.SQL(
            "SELECT NULL::int AS device_id, NULL::timestamptz AS bucket, NULL::timestamptz AS bucket_end, "
            "NULL::smallint AS workload_id, 0 AS samples, 0::float8 AS units, 0 AS counter_samples, "
            "0 AS excluded WHERE false"
        )
    return sql.SQL(" UNION ALL ").join(selects)


_ALLOC = (
    "SELECT device_id, since AS lo, lead(since) OVER (PARTITION BY device_id ORDER BY since) AS hi, tenant, namespace "
    "FROM device_allocations WHERE device_id = ANY(%(ids)s)"
)
_IN_FORCE = "a.device_id = r.device_id AND a.lo < r.bucket_end AND (a.hi IS NULL OR a.hi >= r.bucket_end)"

_USAGE = """
WITH m AS (SELECT * FROM unnest(%(ids)s::int[], %(groups)s::int[]) AS m(device_id, g)),
a AS ({alloc}),
r AS ({rollups})
SELECT GROUPING(r.device_id), m.g, width_bucket(r.bucket, %(bounds)s::timestamptz[]) - 1, r.device_id,
       sum(round(r.seconds_observed * 1000.0)::int8),
       sum(round(r.util_avg::float8 * r.seconds_observed * 1000.0)::int8),
       sum(round(r.seconds_observed * 1000.0)::int8) FILTER (WHERE r.util_avg IS NOT NULL),
       sum(round(r.energy_j * 1000.0)::int8), sum(r.samples),
       sum(round(r.seconds_observed * 1000.0)::int8) FILTER (WHERE a.tenant IS NOT NULL),
       sum(round(r.util_avg::float8 * r.seconds_observed * 1000.0)::int8) FILTER (WHERE a.tenant IS NOT NULL),
       sum(round(r.seconds_observed * 1000.0)::int8) FILTER (WHERE r.bad_energy = 1),
       {quality}
FROM r JOIN m USING (device_id)
LEFT JOIN a ON {in_force}
GROUP BY GROUPING SETS ((m.g, width_bucket(r.bucket, %(bounds)s::timestamptz[]) - 1), (r.device_id))
"""


def usage(
    conn: psycopg.Connection[Any],
    tiles: Sequence[Tile],
    bounds: Sequence[datetime],
    ids: Sequence[int],
    groups: Sequence[int],
    *,
    interval_s: float,
) -> tuple[dict[tuple[int, int], Usage], dict[int, Usage]]:
    """Rollup sums per (group, period index) and per device (a device must be in one group only)."""
    params: dict[str, Any] = {"ids": list(ids), "groups": list(groups), "bounds": list(bounds)}
    query = sql.SQL(_USAGE).format(
        alloc=sql.SQL(_ALLOC),
        rollups=_rollup_union(tiles, params, interval_s),
        in_force=sql.SQL(_IN_FORCE),
        quality=sql.SQL(_QUALITY),
    )
    by_group: dict[tuple[int, int], Usage] = {}
    by_device: dict[int, Usage] = {}
    for row in conn.execute(query, params).fetchall():
        u = Usage(
            _f(row[4]), _f(row[5]), _f(row[6]), _f(row[7]), int(row[8] or 0), _f(row[9]), _f(row[10]), _f(row[11])
        )
        u.excluded = _exclusions(row[12:])
        if row[0]:
            by_group[(int(row[1]), int(row[2]))] = u
        else:
            by_device[int(row[3])] = u
    return by_group, by_device


_SERVED = """
WITH m AS (SELECT * FROM unnest(%(m_ids)s::int[], %(m_groups)s::int[]) AS m(device_id, g)),
t AS (SELECT u.*, sum(u.samples) OVER (PARTITION BY u.device_id, u.bucket) AS all_samples FROM ({report}) u),
r AS ({rollups})
SELECT m.g, width_bucket(t.bucket, %(bounds)s::timestamptz[]) - 1, t.workload_id,
       sum(round(t.units * 1000.0)::int8),
       sum(round(r.energy_j * t.samples / nullif(t.all_samples, 0) * 1000.0)::int8),
       sum(t.samples), sum(t.counter_samples), sum(t.excluded)
FROM t JOIN m USING (device_id)
LEFT JOIN r ON r.device_id = t.device_id AND r.bucket = t.bucket
GROUP BY 1, 2, 3
"""


def served(
    conn: psycopg.Connection[Any],
    tiles: Sequence[Tile],
    bounds: Sequence[datetime],
    ids: Sequence[int],
    groups: Sequence[int],
    *,
    interval_s: float,
) -> dict[tuple[int, int, int], Served]:
    """Throughput and the energy behind it per (group, period index, workload id); a device may sit in
    several groups. A bucket's energy is shared among its workloads by their share of its samples."""
    params: dict[str, Any] = {
        "ids": sorted(set(ids)),
        "m_ids": list(ids),
        "m_groups": list(groups),
        "bounds": list(bounds),
    }
    query = sql.SQL(_SERVED).format(
        report=_report_union(tiles, params, interval_s), rollups=_rollup_union(tiles, params, interval_s)
    )
    out: dict[tuple[int, int, int], Served] = {}
    for row in conn.execute(query, params).fetchall():
        out[(int(row[0]), int(row[1]), int(row[2]))] = Served(
            _f(row[3]), _f(row[4]), int(row[5] or 0), int(row[6] or 0), int(row[7] or 0)
        )
    return out


_ALLOCATION_USE = """
WITH a AS ({alloc}), r AS ({rollups})
SELECT r.device_id, a.tenant, a.namespace,
       sum(round(r.seconds_observed * 1000.0)::int8),
       sum(round(r.util_avg::float8 * r.seconds_observed * 1000.0)::int8),
       sum(round(r.seconds_observed * 1000.0)::int8) FILTER (WHERE r.util_avg IS NOT NULL),
       {quality}
FROM r LEFT JOIN a ON {in_force}
GROUP BY 1, 2, 3
ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST
"""


def allocation_use(
    conn: psycopg.Connection[Any], tiles: Sequence[Tile], ids: Sequence[int], interval_s: float
) -> list[AllocationUse]:
    """Observed time and utilization per (device, tenant, namespace); tenant None = not allocated."""
    params: dict[str, Any] = {"ids": list(ids)}
    query = sql.SQL(_ALLOCATION_USE).format(
        alloc=sql.SQL(_ALLOC),
        rollups=_rollup_union(tiles, params, interval_s),
        in_force=sql.SQL(_IN_FORCE),
        quality=sql.SQL(_QUALITY),
    )
    return [
        AllocationUse(int(r[0]), r[1], r[2], _f(r[3]), _f(r[4]), _f(r[5]), _exclusions(r[6:]))
        for r in conn.execute(query, params).fetchall()
    ]


_ALLOCATION_SERVED = """
WITH a AS ({alloc}), r AS ({report})
SELECT r.device_id, a.tenant, a.namespace, r.workload_id, sum(round(r.units * 1000.0)::int8), sum(r.samples),
       sum(r.excluded)
FROM r LEFT JOIN a ON {in_force}
WHERE r.workload_id <> 0 OR r.excluded > 0
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2 NULLS FIRST, 3 NULLS FIRST, 4
"""


def allocation_served(
    conn: psycopg.Connection[Any], tiles: Sequence[Tile], ids: Sequence[int], interval_s: float
) -> list[tuple[int, str | None, str | None, int, float, int, int]]:
    """(device, tenant, namespace, workload id, units served, samples, samples whose throughput was left
    out) for every workload served; workload 0 rows carry only the samples left out."""
    params: dict[str, Any] = {"ids": list(ids)}
    query = sql.SQL(_ALLOCATION_SERVED).format(
        alloc=sql.SQL(_ALLOC), report=_report_union(tiles, params, interval_s), in_force=sql.SQL(_IN_FORCE)
    )
    return [
        (int(r[0]), r[1], r[2], int(r[3]), _f(r[4]), int(r[5] or 0), int(r[6] or 0))
        for r in conn.execute(query, params).fetchall()
    ]
