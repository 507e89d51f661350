"""The database sink of the ingest: node snapshots → `sites`, `nodes`, `devices` and `device_samples`.

One batch is one transaction: topology upserts, partitions ensured (plain PostgreSQL), a binary COPY
into a temporary staging table and `INSERT … ON CONFLICT DO NOTHING` into `device_samples`. A replayed
or duplicated message therefore changes nothing, and a batch is either stored whole or not at all.
Synchronous psycopg, called from the worker through `asyncio.to_thread`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from kcloud.db.mode import current_mode
from kcloud.db.partitions import ensure_partitions
from kcloud.db.schema import HEALTH_CODES
from kcloud.records import DeviceSample, NodeSnapshot
from kcloud.settings import Settings

__all__ = ["SAMPLE_COLUMNS", "SampleSink", "sample_row"]

log = logging.getLogger("kcloud.streams.sink")

#: device_samples columns written by the ingest, in COPY order, with their binary COPY types.
SAMPLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("device_id", "int4"),
    ("time", "timestamptz"),
    ("util_pct", "float4"),
    ("mem_used_bytes", "int8"),
    ("mem_total_bytes", "int8"),
    ("power_w", "float4"),
    ("power_limit_w", "float4"),
    ("energy_j", "float8"),
    ("temp_c", "float4"),
    ("clock_mhz", "float4"),
    ("health", "int2"),
    ("ecc_uncorrected", "int8"),
    ("throughput", "float4"),
    ("attribution_id", "int4"),
)
_COLS = ", ".join(c for c, _ in SAMPLE_COLUMNS)


def device_key(dev: DeviceSample) -> str:
    """The identity of a device row: its uuid, plus the subdevice (MIG instance, core range) if any."""
    return dev.device_uuid if dev.subdevice is None else f"{dev.device_uuid}/{dev.subdevice}"


def sample_row(
    device_id: int, at: datetime, dev: DeviceSample, attribution_id: int | None
) -> tuple[Any, ...]:
    """One device_samples row in COPY order."""
    return (
        device_id,
        at,
        dev.util_pct,
        dev.mem_used_bytes,
        dev.mem_total_bytes,
        dev.power_w,
        dev.power_limit_w,
        dev.energy_j,
        dev.temp_c,
        dev.clock_mhz,
        HEALTH_CODES[dev.health] if dev.health else None,
        dev.ecc_uncorrected,
        dev.throughput.value if dev.throughput else None,
        attribution_id,
    )


class SampleSink:
    """Writes batches of snapshots; keeps one connection and caches of ids it has already resolved."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._conn: psycopg.Connection[Any] | None = None
        self._device_ids: dict[str, int] = {}
        self._attribution_ids: dict[tuple[str | None, ...], int] = {}
        self._known_nodes: dict[str, tuple[str, str | None]] = {}
        self._plain: bool = True

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.settings.effective_database_url, connect_timeout=5)
            self._plain = current_mode(self._conn) == "postgresql"
            with self._conn.transaction():
                self._conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS staging_samples AS SELECT {_COLS} FROM device_samples "
                    "WITH NO DATA"
                )
            self._conn.commit()
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, snapshots: Sequence[NodeSnapshot]) -> int:
        """Store every sample of `snapshots` not stored yet; returns how many rows were new."""
        try:
            conn = self._connection()
            with conn.transaction():
                self._upsert_nodes(conn, snapshots)
                device_ids = self._resolve_devices(conn, snapshots)
                attribution_ids = self._resolve_attributions(conn, snapshots)
                if self._plain:
                    ensure_partitions(
                        conn, min(s.collected_at for s in snapshots), max(s.collected_at for s in snapshots)
                    )
                with conn.cursor() as cur:
                    with cur.copy(f"COPY staging_samples ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types([t for _, t in SAMPLE_COLUMNS])
                        for snap in snapshots:
                            for dev in snap.devices:
                                att = dev.attribution
                                att_id = attribution_ids[_attribution_key(att)] if att is not None else None
                                copy.write_row(
                                    sample_row(device_ids[device_key(dev)], snap.collected_at, dev, att_id)
                                )
                    cur.execute(
                        f"INSERT INTO device_samples ({_COLS}) SELECT {_COLS} FROM staging_samples "
                        "ON CONFLICT DO NOTHING"
                    )
                    stored = cur.rowcount
                    cur.execute("TRUNCATE staging_samples")
            return stored
        except psycopg.Error:
            self._forget_on_error()
            raise

    def _forget_on_error(self) -> None:
        # a rolled-back transaction may have created ids we cached; start clean
        self._device_ids.clear()
        self._attribution_ids.clear()
        self._known_nodes.clear()
        if self._conn is not None and (self._conn.broken or self._conn.closed):
            self._conn = None

    def _upsert_nodes(self, conn: psycopg.Connection[Any], snapshots: Sequence[NodeSnapshot]) -> None:
        latest: dict[str, NodeSnapshot] = {}
        for s in snapshots:
            cur = latest.get(s.node.node_id)
            if cur is None or s.collected_at > cur.collected_at:
                latest[s.node.node_id] = s
        sites = sorted({s.node.site_id for s in latest.values()})
        conn.execute("INSERT INTO sites (site_id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (sites,))
        rows = [(n, s.node.site_id, s.node.hostname, s.collected_at) for n, s in latest.items()]
        conn.cursor().executemany(
            "INSERT INTO nodes (node_id, site_id, hostname, first_seen, last_seen) "
            "VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (node_id) DO UPDATE SET site_id = EXCLUDED.site_id, "
            "hostname = COALESCE(EXCLUDED.hostname, nodes.hostname), "
            "first_seen = LEAST(nodes.first_seen, EXCLUDED.first_seen), "
            "last_seen = GREATEST(nodes.last_seen, EXCLUDED.last_seen)",
            [(n, site, host, at, at) for n, site, host, at in rows],
        )

    def _resolve_devices(
        self, conn: psycopg.Connection[Any], snapshots: Sequence[NodeSnapshot]
    ) -> dict[str, int]:
        missing: dict[str, tuple[DeviceSample, NodeSnapshot]] = {}
        for snap in snapshots:
            for dev in snap.devices:
                key = device_key(dev)
                if key not in self._device_ids:
                    missing.setdefault(key, (dev, snap))
        if missing:
            vendors = sorted({d.vendor for d, _ in missing.values()})
            conn.execute(
                "INSERT INTO vendors (vendor_id, display_name, domestic) "
                "SELECT v, v, false FROM unnest(%s::text[]) AS v ON CONFLICT DO NOTHING",
                (vendors,),
            )
            cols = list(
                zip(
                    *[
                        (
                            key,
                            d.device_uuid,
                            d.subdevice,
                            d.vendor,
                            d.kind,
                            d.model,
                            d.arch,
                            d.pci_bus_id,
                            s.node.node_id,
                            s.collected_at,
                        )
                        for key, (d, s) in missing.items()
                    ],
                    strict=True,
                )
            )
            cur = conn.execute(
                "INSERT INTO devices (device_key, device_uuid, subdevice, vendor_id, kind, model, arch, "
                "pci_bus_id, node_id, first_seen, last_seen) "
                "SELECT k, u, sd, v, kd, m, a, p, n, t, t FROM unnest(%s::text[], %s::text[], %s::text[], "
                "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[]) "
                "AS x(k, u, sd, v, kd, m, a, p, n, t) "
                "ON CONFLICT (device_key) DO UPDATE "
                "SET last_seen = GREATEST(devices.last_seen, EXCLUDED.last_seen) "
                "RETURNING device_key, device_id",
                [list(c) for c in cols],
            )
            for key, device_id in cur.fetchall():
                self._device_ids[key] = device_id
        return self._device_ids

    def _resolve_attributions(
        self, conn: psycopg.Connection[Any], snapshots: Sequence[NodeSnapshot]
    ) -> dict[tuple[str | None, ...], int]:
        missing = {
            _attribution_key(d.attribution)
            for s in snapshots
            for d in s.devices
            if d.attribution is not None and _attribution_key(d.attribution) not in self._attribution_ids
        }
        for key in sorted(missing, key=str):
            row = conn.execute(
                "INSERT INTO attributions (tenant, namespace, pod, container) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (tenant, namespace, pod, container) DO UPDATE SET tenant = EXCLUDED.tenant "
                "RETURNING attribution_id",
                key,
            ).fetchone()
            assert row is not None
            self._attribution_ids[key] = row[0]
        return self._attribution_ids


def _attribution_key(att: Any) -> tuple[str | None, ...]:
    return (att.tenant or "", att.namespace or "", att.pod or "", att.container or "")
