"""Which devices a report covers, where they stand, and their availability spans, from the ledger.

A device belongs to the report when it was first seen before the period ends, it is not out of service
for the whole period, and its vendor, site and the site's programme match the filters. Its site is the
one its newest ledger event before the period's end names (a relocation moves it), else its node's.
Only ledger rows up to the head the report is built from are read (`head_seq`), so a report rebuilt
later from the same head sees the same events even when more have been appended since.

Unknown filters and periods without data raise `ReportError` with the known values or the data's range.

Example:
    >>> scope = load_scope(conn, params, head_seq=1234, interval=timedelta(seconds=10))  # doctest: +SKIP
    >>> scope.devices[0].spans.service_seconds  # doctest: +SKIP
    86400.0
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import psycopg

from reports.params import ReportError, ReportParams
from reports.spans import DeviceSpans, Event, device_spans

__all__ = ["Scope", "ScopedDevice", "load_scope"]

_EVENTS = ("offline", "returned", "decommissioned", "health_changed", "commissioned", "relocated")
_PRIOR = """
SELECT DISTINCT ON (device_id, cat) device_id, event, at, details, site_id FROM (
    SELECT device_id, event, at, details, site_id, seq,
           CASE WHEN event IN ('offline', 'returned', 'decommissioned') THEN 1
                WHEN event = 'health_changed' THEN 2 ELSE 3 END AS cat
    FROM deployment_events
    WHERE at < %(start)s AND seq <= %(head)s AND device_id IS NOT NULL AND event = ANY(%(events)s)
) e
ORDER BY device_id, cat, at DESC, seq DESC
"""
_INSIDE = """
SELECT device_id, event, at, details, site_id FROM deployment_events
WHERE at >= %(start)s AND at < %(end)s AND seq <= %(head)s AND device_id IS NOT NULL AND event = ANY(%(events)s)
ORDER BY device_id, at, seq
"""
_DEVICES = """
SELECT d.device_id, d.device_uuid, d.vendor_id, d.kind, coalesce(d.model, ''), d.first_seen, n.site_id
FROM devices d JOIN nodes n ON n.node_id = d.node_id
WHERE d.first_seen < %(end)s
ORDER BY d.device_id
"""


@dataclass(frozen=True)
class ScopedDevice:
    """One device of a report, with its group's attributes and its spans in the period."""

    device_id: int
    uuid: str
    vendor: str
    kind: str
    model: str
    site: str
    spans: DeviceSpans


@dataclass(frozen=True)
class Scope:
    """The report's devices (in service at some time in the period) and the GPUs of the same sites."""

    devices: list[ScopedDevice]
    gpu_baseline: list[ScopedDevice]
    programmes: dict[str, str | None]


def _details(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        loaded = json.loads(raw)
        return loaded if isinstance(loaded, dict) else {}
    return {}


def _check_filters(conn: psycopg.Connection[Any], params: ReportParams) -> dict[str, str | None]:
    vendors = [r[0] for r in conn.execute("SELECT vendor_id FROM vendors ORDER BY 1").fetchall()]
    if params.vendor is not None and params.vendor not in vendors:
        raise ReportError(f"unknown vendor {params.vendor!r}; known vendors: {', '.join(vendors) or 'none recorded'}")
    programmes: dict[str, str | None] = dict(conn.execute("SELECT site_id, programme FROM sites").fetchall())
    if params.site is not None and params.site not in programmes:
        known = ", ".join(sorted(programmes)) or "none recorded"
        raise ReportError(f"unknown site {params.site!r}; known sites: {known}")
    if params.programme is not None and params.programme not in programmes.values():
        known = ", ".join(sorted({p for p in programmes.values() if p})) or "none recorded (sites.programme is empty)"
        raise ReportError(f"unknown programme {params.programme!r}; known programmes: {known}")
    return programmes


def _no_data(conn: psycopg.Connection[Any], params: ReportParams) -> ReportError:
    what = " ".join(
        x
        for x in (
            f"vendor {params.vendor}" if params.vendor else "",
            f"at site {params.site}" if params.site else "",
            f"in programme {params.programme}" if params.programme else "",
        )
        if x
    )
    row = conn.execute("SELECT min(first_seen), max(last_seen) FROM devices").fetchone()
    span = (
        f"the database holds devices seen from {row[0].isoformat()} to {row[1].isoformat()}"
        if row is not None and row[0] is not None
        else "the database holds no devices yet"
    )
    return ReportError(
        f"no data: no device{' of ' + what if what else ''} was in service between {params.start.isoformat()} "
        f"and {params.end.isoformat()}; {span}"
    )


def load_scope(conn: psycopg.Connection[Any], params: ReportParams, *, head_seq: int, interval: timedelta) -> Scope:
    """The devices of the report and the same sites' GPUs; raises `ReportError` for unknown filters or no data."""
    programmes = _check_filters(conn, params)
    bind = {"start": params.start, "end": params.end, "head": head_seq, "events": list(_EVENTS)}
    prior: dict[int, list[Event]] = defaultdict(list)
    last_site: dict[int, tuple[datetime, str]] = {}
    for device_id, event, at, details, site_id in conn.execute(_PRIOR, bind).fetchall():
        if event not in {"commissioned", "relocated"}:
            prior[device_id].append(Event(at, event, _details(details)))
        if site_id and (device_id not in last_site or at >= last_site[device_id][0]):
            last_site[device_id] = (at, site_id)
    inside: dict[int, list[Event]] = defaultdict(list)
    for device_id, event, at, details, site_id in conn.execute(_INSIDE, bind).fetchall():
        inside[device_id].append(Event(at, event, _details(details)))
        if site_id:
            last_site[device_id] = (at, site_id)
    devices: list[ScopedDevice] = []
    gpus: list[ScopedDevice] = []
    for device_id, uuid, vendor, kind, model, first_seen, node_site in conn.execute(_DEVICES, bind).fetchall():
        site = last_site[device_id][1] if device_id in last_site else node_site
        matches = (
            (params.vendor is None or vendor == params.vendor)
            and (params.site is None or site == params.site)
            and (params.programme is None or programmes.get(site) == params.programme)
        )
        if not matches and kind != "gpu":
            continue
        spans = device_spans(
            first_seen, prior.get(device_id, []), inside.get(device_id, []), params.start, params.end, interval=interval
        )
        if not spans.service:
            continue
        dev = ScopedDevice(device_id, uuid, vendor, kind, model, site, spans)
        if matches:
            devices.append(dev)
        if kind == "gpu":
            gpus.append(dev)
    if not devices:
        raise _no_data(conn, params)
    sites = {d.site for d in devices}
    return Scope(devices, [g for g in gpus if g.site in sites], programmes)
