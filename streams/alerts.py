"""Alerts: the database half of `streams.alert_rules`, run inside the ingest's transaction and by the sweep.

`AlertRecorder.apply` evaluates only the samples a batch newly stored (a replay re-evaluates nothing),
in event order per device, and the gap since each node's previous snapshot; `sweep` opens `node_silent`
for nodes of the worker's own partitions that fell silent. Rows go to `alerts` (one open row per
fingerprint); the returned messages are published on `kcloud.alerts.v1` after the commit. The open
alerts and ECC counters of the devices and nodes it has met are kept in memory between batches (read
once; dropped when another writer has been at their partitions, see `streams.deployments.lock_lifecycle`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from kcloud.records import AlertMessage, DeviceSample, NodeSnapshot
from kcloud.settings import Settings
from streams.alert_rules import (
    SEVERITY,
    AlertRulesConfig,
    Change,
    DeviceAlertState,
    DeviceReading,
    evaluate_device,
    node_gap,
)

__all__ = ["AlertRecorder", "alert_config"]

_OPEN_SQL = """
SELECT fingerprint, started_at, device_id FROM alerts
WHERE resolved_at IS NULL AND (device_id = ANY(%s) OR (rule = 'node_silent' AND node_id = ANY(%s)))
"""
_INSERT_SQL = """
INSERT INTO alerts (fingerprint, rule, severity, device_id, node_id, site_id, vendor_id, summary, details,
                    started_at, resolved_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (fingerprint) WHERE resolved_at IS NULL DO NOTHING
"""
_RESOLVE_SQL = """
UPDATE alerts SET resolved_at = %s, updated_at = now(), details = details || %s
WHERE fingerprint = %s AND resolved_at IS NULL
"""


def alert_config(settings: Settings) -> AlertRulesConfig:
    return AlertRulesConfig(
        temp_limit_c=settings.temp_alert_c,
        offline_after=timedelta(seconds=settings.offline_after_intervals * settings.sample_interval_s),
        ecc_quiet=timedelta(seconds=settings.ecc_alert_quiet_s),
    )


def _device_name(dev: DeviceSample) -> str:
    return f"{dev.vendor} {dev.model or dev.kind} {dev.device_uuid}" + (f"/{dev.subdevice}" if dev.subdevice else "")


def _fingerprint(rule: str, subject: str) -> str:
    return f"{rule}:{subject}"


class AlertRecorder:
    """Opens and resolves rows of `alerts`; returns the messages to publish."""

    def __init__(self, settings: Settings) -> None:
        self.cfg = alert_config(settings)
        # what `apply` has read of the devices and nodes it met, kept as it writes (see `lock_lifecycle`)
        self._open: dict[str, datetime] = {}  # fingerprint -> started_at, open alerts
        self._device_open: dict[int, set[str]] = {}  # device -> fingerprints of its open alerts
        self._ecc: dict[int, tuple[int | None, datetime | None]] = {}
        self._loaded_devices: set[int] = set()
        self._loaded_nodes: set[str] = set()

    def forget(self) -> None:
        """Drop what this recorder holds (after a failed transaction, or when another writer was here)."""
        self._open.clear()
        self._device_open.clear()
        self._ecc.clear()
        self._loaded_devices.clear()
        self._loaded_nodes.clear()

    def _load(self, conn: psycopg.Connection[Any], ids: Sequence[int], nodes: Sequence[str]) -> None:
        new_ids = [i for i in ids if i not in self._loaded_devices]
        new_nodes = [n for n in nodes if n not in self._loaded_nodes]
        if not new_ids and not new_nodes:
            return
        for fp, started, device_id in conn.execute(_OPEN_SQL, (new_ids, new_nodes)).fetchall():
            self._opened(fp, started, device_id)
        if new_ids:
            self._ecc.update(dict.fromkeys(new_ids, (None, None)))
            self._ecc.update(
                (r[0], (r[1], r[2]))
                for r in conn.execute(
                    "SELECT device_id, ecc_last, ecc_rise_at FROM devices WHERE device_id = ANY(%s) "
                    "AND (ecc_last IS NOT NULL OR ecc_rise_at IS NOT NULL)",
                    (new_ids,),
                ).fetchall()
            )
        self._loaded_devices.update(new_ids)
        self._loaded_nodes.update(new_nodes)

    def _opened(self, fingerprint: str, started: datetime, device_id: int | None) -> None:
        self._open[fingerprint] = started
        if device_id is not None:
            self._device_open.setdefault(device_id, set()).add(fingerprint)

    def _resolved(self, fingerprint: str, device_id: int | None) -> None:
        self._open.pop(fingerprint, None)
        if device_id is not None and (fps := self._device_open.get(device_id)) is not None:
            fps.discard(fingerprint)
            if not fps:
                del self._device_open[device_id]

    def apply(
        self,
        conn: psycopg.Connection[Any],
        snapshots: Sequence[NodeSnapshot],
        device_ids: Mapping[tuple[str, str | None], int],
        inserted: Collection[tuple[int, datetime]] | None,
        node_last_seen: Mapping[str, datetime],
    ) -> list[AlertMessage]:
        """Evaluate the samples of `snapshots` stored now: `inserted` their (device_id, time), None when every
        sample of the batch was new."""
        if inserted is not None and not inserted:
            return []
        ordered = sorted(snapshots, key=lambda s: (s.collected_at, s.node.node_id))
        nodes = sorted({s.node.node_id for s in ordered})
        ids = sorted(
            {i for i, _ in inserted}
            if inserted is not None
            else {device_ids[(d.device_uuid, d.subdevice)] for s in ordered for d in s.devices}
        )
        self._load(conn, ids, nodes)
        open_rows = dict(self._open)  # this batch's view: a silence is resolved once per batch
        open_devices = self._device_open
        ecc = self._ecc
        limit = self.cfg.temp_limit_c
        out: list[AlertMessage] = []
        states: dict[int, DeviceAlertState] = {}
        node_prev = dict(node_last_seen)
        for snap in ordered:
            node, site, at = snap.node.node_id, snap.node.site_id, snap.collected_at
            fresh = (
                snap.devices
                if inserted is None
                else [d for d in snap.devices if (device_ids[(d.device_uuid, d.subdevice)], at) in inserted]
            )
            if not fresh:
                continue
            fp = _fingerprint("node_silent", node)
            change = node_gap(node, node_prev.get(node), at, open_rows.pop(fp, None), self.cfg)
            if change is not None:
                out.extend(self._write(conn, change, fingerprint=fp, node=node, site=site, device=None, vendor=None))
            node_prev[node] = max(at, node_prev.get(node, at))
            for dev in fresh:
                device_id = device_ids[(dev.device_uuid, dev.subdevice)]
                if (  # the common case: nothing open, nothing notable, ECC unchanged
                    device_id not in states
                    and device_id not in open_devices
                    and (dev.temp_c is None or dev.temp_c <= limit)
                    and dev.health != "failed"
                    and (dev.ecc_uncorrected is None or ecc.get(device_id, (None, None))[0] == dev.ecc_uncorrected)
                ):
                    continue
                subject = dev.device_uuid + (f"/{dev.subdevice}" if dev.subdevice else "")
                st = states.get(device_id)
                if st is None:
                    opened = {
                        rule: open_rows[_fingerprint(rule, subject)]
                        for rule in ("temp_high", "health_failed", "ecc_rising")
                        if _fingerprint(rule, subject) in open_rows
                    }
                    last, rise = ecc.get(device_id, (None, None))
                    st = DeviceAlertState(opened, last, rise)
                reading = DeviceReading(at, dev.temp_c, dev.health, dev.ecc_uncorrected)
                st, changes = evaluate_device(st, reading, self.cfg, _device_name(dev))
                states[device_id] = st
                for c in changes:
                    out.extend(
                        self._write(
                            conn,
                            c,
                            fingerprint=_fingerprint(c.rule, subject),
                            node=node,
                            site=site,
                            device=(device_id, dev),
                            vendor=dev.vendor,
                        )
                    )
        ecc_rows = [
            (st.ecc_last, st.ecc_rise_at, i)
            for i, st in states.items()
            if (st.ecc_last, st.ecc_rise_at) != ecc.get(i, (None, None))
        ]
        if ecc_rows:
            conn.execute(
                "UPDATE devices d SET ecc_last = u.last, ecc_rise_at = u.rise "
                "FROM unnest(%s::int8[], %s::timestamptz[], %s::int[]) AS u(last, rise, device_id) "
                "WHERE d.device_id = u.device_id",
                ([r[0] for r in ecc_rows], [r[1] for r in ecc_rows], [r[2] for r in ecc_rows]),
            )
            ecc.update((i, (last, rise)) for last, rise, i in ecc_rows)
        return out

    def sweep(
        self, conn: psycopg.Connection[Any], watermark: datetime, partitions: Collection[int] | None
    ) -> list[AlertMessage]:
        """Open `node_silent` for nodes (of `partitions`, or all) silent at event time `watermark`."""
        rows = conn.execute(
            "SELECT n.node_id, n.site_id, n.last_seen FROM nodes n "
            "WHERE n.last_seen < %s AND (%s::int[] IS NULL OR n.kafka_partition = ANY(%s::int[])) "
            "AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.resolved_at IS NULL AND a.rule = 'node_silent' "
            "                AND a.node_id = n.node_id) "
            "ORDER BY n.node_id",
            (
                watermark - self.cfg.offline_after,
                None if partitions is None else sorted(partitions),
                None if partitions is None else sorted(partitions),
            ),
        ).fetchall()
        out: list[AlertMessage] = []
        for node, site, last_seen in rows:
            went = last_seen + self.cfg.offline_after
            change = Change(
                "node_silent",
                went,
                None,
                f"node {node} silent since {last_seen.isoformat()}",
                {"last_seen": last_seen.isoformat()},
                True,
            )
            out.extend(
                self._write(
                    conn,
                    change,
                    fingerprint=_fingerprint("node_silent", node),
                    node=node,
                    site=site,
                    device=None,
                    vendor=None,
                )
            )
        return out

    def _write(
        self,
        conn: psycopg.Connection[Any],
        c: Change,
        *,
        fingerprint: str,
        node: str,
        site: str,
        device: tuple[int, DeviceSample] | None,
        vendor: str | None,
    ) -> list[AlertMessage]:
        severity = SEVERITY[c.rule]
        base = {
            "fingerprint": fingerprint,
            "rule": c.rule,
            "severity": severity,
            "node_id": node,
            "site_id": site,
            "device_uuid": device[1].device_uuid if device else None,
            "vendor": vendor,
            "summary": c.summary,
            "started_at": c.started_at,
            "details": c.details,
        }
        device_id = device[0] if device else None
        if c.opens and c.resolved_at is None:
            self._opened(fingerprint, c.started_at, device_id)
        else:
            self._resolved(fingerprint, device_id)
        if not c.opens:
            conn.execute(_RESOLVE_SQL, (c.resolved_at, Jsonb(c.details), fingerprint))
            return [AlertMessage(action="resolved", resolved_at=c.resolved_at, **base)]  # type: ignore[arg-type]
        conn.execute(
            _INSERT_SQL,
            (
                fingerprint,
                c.rule,
                severity,
                device[0] if device else None,
                node,
                site,
                vendor,
                c.summary,
                Jsonb(c.details),
                c.started_at,
                c.resolved_at,
            ),
        )
        msgs = [AlertMessage(action="opened", **base)]  # type: ignore[arg-type]
        if c.resolved_at is not None:
            msgs.append(AlertMessage(action="resolved", resolved_at=c.resolved_at, **base))  # type: ignore[arg-type]
        return msgs
