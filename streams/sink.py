"""The database sink of the ingest: node snapshots → `sites`, `nodes`, `devices` and `device_samples`.

One batch is one transaction: the partitions' lifecycle locks first, topology upserts, a binary COPY
into a temporary staging table and `INSERT … ON CONFLICT DO NOTHING` into `device_samples`, the minute
rollups of the minutes the batch closes (`streams.rollups`), the alerts (`streams.alerts`), and last the
lifecycle and its ledger rows (`streams.deployments`). A replayed or duplicated message therefore changes
nothing, and a batch is either stored whole or not at all. (Daily partitions are ensured before, in a
transaction of their own.) Synchronous psycopg, called from the worker through `asyncio.to_thread`.

Before anything is written, a snapshot that touches another vendor's device or node, or names its node at
another site, is refused whole (the rule of `kcloud.ownership`) and reported back for the dead-letter topic. A node's
site never changes by telemetry, and its hostname only with a snapshot newer than any stored. A vendor
introduces at most `max_workloads_per_vendor` throughput (workload, unit) pairs; a sample whose new pair is
over that cap (or finds the workload id sequence exhausted) is stored without its throughput, counted as
`throughput_refused`.

Event time is the collectors', but no clock running ahead of the worker's moves a node's minutes: the
newest event time a node's samples are judged late against, and the horizon that closes its minutes, are
clamped to the worker's wall clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from kcloud.db.partitions import ensure_partitions_for
from kcloud.db.schema import HEALTH_CODES
from kcloud.records import AlertMessage, Attribution, DeploymentEvent, DeviceSample, NodeSnapshot
from kcloud.settings import Settings
from streams.alerts import AlertRecorder
from streams.deployments import LifecycleRecorder, lock_lifecycle
from streams.ownership import OwnershipCache, check
from streams.rollups import MinuteKey, MinutePlan, OpenMinutes, is_late, minute_of, update_minute_rollups
from streams.workloads import WorkloadIds

__all__ = ["SAMPLE_COLUMNS", "SampleSink", "SweepResult", "WriteResult", "device_key", "sample_row"]

log = logging.getLogger("kcloud.streams.sink")

#: device_samples columns written by the ingest, in COPY order, with their binary COPY types.
SAMPLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("time", "timestamptz"),
    ("device_id", "int4"),
    ("util_pct", "float4"),
    ("mem_used_bytes", "int8"),
    ("mem_total_bytes", "int8"),
    ("energy_j", "float8"),
    ("ecc_uncorrected", "int8"),
    ("power_w", "float4"),
    ("power_limit_w", "float4"),
    ("temp_c", "float4"),
    ("clock_mhz", "float4"),
    ("throughput", "float4"),
    ("health", "int2"),
    ("workload_id", "int2"),
    # 0013: activity and health counters, each the DeviceSample field of the same name (null = not reported)
    ("nvlink_errors", "int8"),
    ("sm_active_pct", "float4"),
    ("tensor_active_pct", "float4"),
    ("dram_active_pct", "float4"),
    ("enc_util_pct", "float4"),
    ("dec_util_pct", "float4"),
    ("xid_last", "int2"),
    ("mem_rows_retired", "int2"),
    ("throttle_power", "bool"),
    ("throttle_thermal", "bool"),
    ("mem_repair_pending", "bool"),
    ("mem_repair_failed", "bool"),
)
#: the columns stored straight from the DeviceSample field of the same name, after `workload_id`
_DIRECT = tuple(c for c, _ in SAMPLE_COLUMNS[SAMPLE_COLUMNS.index(("workload_id", "int2")) + 1 :])
_COLS = ", ".join(c for c, _ in SAMPLE_COLUMNS)

DeviceKey = tuple[str, str | None]
#: most nodes whose newest minute one sweep recomputes after a partition takeover (the rest at the next sweeps)
_RECOVER_NODES = 2000
AllocationKey = tuple[str | None, str | None, str | None, str | None]


def _ensure_vendors(conn: psycopg.Connection[Any], vendors: Collection[str]) -> None:
    """Vendors first met in telemetry (the gateway only lets registered ones through) are registered."""
    if vendors:
        conn.execute(
            "INSERT INTO vendors (vendor_id, display_name, domestic) "
            "SELECT v, v, false FROM unnest(%s::text[]) AS v ON CONFLICT DO NOTHING",
            (sorted(vendors),),
        )


def device_key(dev: DeviceSample) -> DeviceKey:
    """The identity of a device row: its uuid, plus the subdevice (MIG instance, core range) if any."""
    return (dev.device_uuid, dev.subdevice)


def _allocation(att: Attribution | None) -> AllocationKey:
    if att is None:
        return (None, None, None, None)
    return (att.tenant, att.namespace, att.pod, att.container)


def sample_row(device_id: int, at: datetime, dev: DeviceSample, workload_id: int | None) -> tuple[Any, ...]:
    """One device_samples row in COPY order (without a `workload_id`, without the throughput)."""
    return (
        at,
        device_id,
        dev.util_pct,
        dev.mem_used_bytes,
        dev.mem_total_bytes,
        dev.energy_j,
        dev.ecc_uncorrected,
        dev.power_w,
        dev.power_limit_w,
        dev.temp_c,
        dev.clock_mhz,
        dev.throughput.value if dev.throughput is not None and workload_id is not None else None,
        HEALTH_CODES[dev.health] if dev.health else None,
        workload_id,
        *(getattr(dev, name) for name in _DIRECT),
    )


@dataclass(frozen=True)
class WriteResult:
    """What one batch did to the database; `refused` (index in the batch, reason, detail) were not stored."""

    stored: int
    late: int
    events: list[DeploymentEvent]
    alerts: list[AlertMessage]
    refused: list[tuple[int, str, str]] = field(default_factory=list)
    throughput_refused: int = 0


@dataclass(frozen=True)
class SweepResult:
    """What one silence sweep recorded."""

    events: list[DeploymentEvent]
    alerts: list[AlertMessage]


class SampleSink:
    """Writes batches of snapshots; keeps one connection and caches of the ids it has resolved."""

    def __init__(self, settings: Settings, wall: Callable[[], datetime] | None = None) -> None:
        self.settings = settings
        self._wall = wall or (lambda: datetime.now(UTC))
        self._owners = OwnershipCache()
        self._conn: psycopg.Connection[Any] | None = None
        self._device_ids: dict[DeviceKey, int] = {}
        self._workloads = WorkloadIds(settings.max_workloads_per_vendor)
        self._allocations: dict[int, AllocationKey] = {}
        self._lifecycle = LifecycleRecorder(settings)
        self._alerts = AlertRecorder(settings)
        #: minute buckets written since the last hourly/daily refresh (None: unknown, e.g. after a start)
        self._dirty: tuple[datetime, datetime] | None = None
        self._lateness = timedelta(seconds=settings.allowed_lateness_s)
        self._minutes = OpenMinutes(idle_after_s=settings.quiet_after_s)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = psycopg.connect(self.settings.effective_database_url, connect_timeout=5)
            with self._conn.transaction():
                self._conn.execute(
                    f"CREATE TEMP TABLE IF NOT EXISTS staging_samples AS SELECT {_COLS} FROM device_samples "
                    "WITH NO DATA"
                )
        return self._conn

    def backend_pid(self) -> int:
        """The process id of this sink's database session (for the benchmarks' CPU accounting)."""
        return self._connection().info.backend_pid

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def write(self, snapshots: Sequence[NodeSnapshot], node_partitions: dict[str, int] | None = None) -> WriteResult:
        """Store every sample of `snapshots` not stored yet, roll up the minutes this closes (see
        `streams.rollups`), update the device lifecycle and the alerts, all in one transaction. Returns what
        was new; its events are committed. `node_partitions` records the telemetry partition each node
        arrives on (for the silence sweep and the open minutes)."""
        try:
            conn = self._connection()
            # partitions first, in their own transaction: creating one locks the parent table
            ensure_partitions_for(conn, {s.collected_at for s in snapshots})
            conn.commit()
            parts = set(node_partitions.values()) if node_partitions else None
            with conn.transaction():
                # first: a worker that took these partitions over waits here for their previous owner's batch
                self._lock(conn, parts)
                known = self._owners.read(conn, snapshots)
                verdict = check(snapshots, known.nodes, known.devices)
                if verdict.refused:
                    out = {i for i, _, _ in verdict.refused}
                    snapshots = [s for i, s in enumerate(snapshots) if i not in out]
                node_last_seen = dict(known.last_seen)
                self._upsert_nodes(conn, snapshots, node_partitions or {}, verdict.node_vendors, set(known.nodes))
                device_ids, new_devices = self._resolve_devices(conn, snapshots)
                workload_ids = self._workloads.resolve(conn, snapshots)
                self._record_allocations(conn, snapshots, device_ids)
                inserted, all_new, no_throughput = self._insert_samples(conn, snapshots, device_ids, workload_ids)
                fresh = None if all_new else set(inserted)
                plan, late = self._plan_minutes(snapshots, device_ids, fresh, node_last_seen, node_partitions or {})
                update_minute_rollups(conn, plan.close, self.settings.sample_interval_s)
                alerts = self._alerts.apply(conn, snapshots, device_ids, fresh, node_last_seen)
                # last: its ledger append holds the ledger's lock, which every worker needs, until the commit
                events = self._lifecycle.apply(conn, snapshots, device_ids, new_devices, node_last_seen)
            self._minutes.commit(plan)
            self._owners.committed(snapshots)
            self._mark_closed(plan.close)
            return WriteResult(len(inserted), late, events, alerts, verdict.refused, no_throughput)
        except Exception:  # the transaction rolled back: cached ids and card sets may be wrong
            self._forget()
            raise

    def _lock(self, conn: psycopg.Connection[Any], partitions: Collection[int] | None) -> None:
        """The lifecycle lock of `partitions` for this transaction, as this sink's writer; when another writer
        has been there, the lifecycle and alert state held in memory is read again."""
        if self._lifecycle.lock(conn, partitions):
            self._alerts.forget()

    def _plan_minutes(
        self,
        snapshots: Sequence[NodeSnapshot],
        device_ids: dict[DeviceKey, int],
        fresh: set[tuple[int, datetime]] | None,
        node_last_seen: dict[str, datetime],
        node_partitions: dict[str, int],
    ) -> tuple[MinutePlan, int]:
        """The open-minutes plan of a batch and how many samples came too late; `fresh` is the (device_id, time)
        of the rows stored now (None: every sample of the batch)."""
        devices: dict[str, set[int]] = {}
        newest: dict[str, datetime] = {}
        stored: dict[str, dict[datetime, set[int]]] = {}
        minutes: dict[datetime, datetime] = {}  # a batch holds few distinct instants
        late = 0
        wall = self._wall()
        # a node's clock running ahead of ours closes none of its minutes early, nor makes its samples late
        reference = {node: min(at, wall) for node, at in node_last_seen.items()}
        for snap in snapshots:
            node, at = snap.node.node_id, snap.collected_at
            ids = [device_ids[device_key(d)] for d in snap.devices]
            devices.setdefault(node, set()).update(ids)
            prev = newest.get(node) or reference.get(node)
            newest[node] = min(at, wall) if prev is None or at > prev else prev
            if fresh is not None:
                ids = [i for i in ids if (i, at) in fresh]
            minute = minutes.get(at)
            if minute is None:
                minute = minutes[at] = minute_of(at)
            if is_late(minute, reference.get(node), self._lateness):
                late += len(ids)
            elif ids:
                stored.setdefault(node, {}).setdefault(minute, set()).update(ids)
        return self._minutes.plan_batch(stored, devices, reference, newest, node_partitions), late

    def _mark_closed(self, keys: Collection[MinuteKey]) -> None:
        if keys:
            self.mark_dirty((min(k[1] for k in keys), max(k[1] for k in keys)))

    def close_minutes(self, assigned: Collection[int] | None = None) -> int:
        """Roll up the open minutes of idle nodes and of nodes of partitions not in `assigned` (None: every open
        minute), and, a chunk at a time, the newest minute of the nodes of partitions newly in `assigned` that
        have not sent anything since. Returns the number of (device, minute) keys computed."""
        plan = self._minutes.plan_sweep(assigned)
        try:
            conn = self._connection()
            if assigned is not None and (new := self._minutes.uncovered(assigned)):
                nodes: dict[int, list[str]] = {p: [] for p in new}
                for node, part in conn.execute(
                    "SELECT node_id, kafka_partition FROM nodes WHERE kafka_partition = ANY(%s) ORDER BY node_id",
                    (new,),
                ).fetchall():
                    nodes[part].append(node)
                conn.commit()
                self._minutes.queue_recovery(nodes)
            chunk = self._minutes.recovery_chunk(_RECOVER_NODES) if assigned is not None else []
            keys = set(plan.close)
            if keys or chunk:
                with conn.transaction():
                    parts = set(plan.partitions) | set(assigned if chunk and assigned is not None else ())
                    whole = assigned is None or None in parts
                    lock_lifecycle(conn, None if whole else {p for p in parts if p is not None})
                    if chunk:
                        keys.update(
                            (r[0], r[1])
                            for r in conn.execute(
                                "SELECT d.device_id, date_trunc('minute', n.last_seen) FROM devices d "
                                "JOIN nodes n ON n.node_id = d.node_id WHERE n.node_id = ANY(%s)",
                                (chunk,),
                            )
                        )
                    update_minute_rollups(conn, keys, self.settings.sample_interval_s)
        except psycopg.Error:
            self._forget()
            raise
        self._minutes.commit(plan)
        if assigned is not None:
            self._minutes.recovered(chunk)
            self._minutes.forget_partitions(assigned)
        self._mark_closed(keys)
        return len(keys)

    def sweep(self, watermark: datetime | None = None, partitions: Collection[int] | None = None) -> SweepResult:
        """Offline/decommission checks and silent-node alerts at event time `watermark` (default: the newest
        node last_seen) for the nodes of `partitions` (default: all), then `close_minutes(partitions)`;
        returns what was committed."""
        try:
            conn = self._connection()
            with conn.transaction():
                if watermark is None:
                    row = conn.execute("SELECT max(last_seen) FROM nodes").fetchone()
                    if row is None or row[0] is None:
                        return SweepResult([], [])
                    watermark = row[0]
                assert watermark is not None
                self._lock(conn, partitions)
                events = self._lifecycle.sweep(conn, watermark, partitions)
                alerts = self._alerts.sweep(conn, watermark, partitions)
        except psycopg.Error:
            self._forget()
            raise
        self.close_minutes(partitions)
        return SweepResult(events, alerts)

    def take_dirty(self) -> tuple[datetime, datetime] | None:
        """The span of minute buckets written since the last call (and forget it)."""
        window, self._dirty = self._dirty, None
        return window

    def mark_dirty(self, window: tuple[datetime, datetime] | None) -> None:
        """Put a span back (a refresh of it failed), so that the next refresh covers it."""
        if window is not None:
            lo, hi = window
            self._dirty = window if self._dirty is None else (min(lo, self._dirty[0]), max(hi, self._dirty[1]))

    def _insert_samples(
        self,
        conn: psycopg.Connection[Any],
        snapshots: Sequence[NodeSnapshot],
        device_ids: dict[DeviceKey, int],
        workload_ids: dict[tuple[str, str], int],
    ) -> tuple[list[tuple[int, datetime]], bool, int]:
        """COPY the batch into the staging table and move what is new into `device_samples`; returns the
        (device_id, time) of the rows stored now, whether that is every sample of the batch, and how many
        samples went without their throughput (its workload refused)."""
        staged: list[tuple[int, datetime]] = []
        no_throughput = 0
        with conn.cursor() as cur:
            with cur.copy(f"COPY staging_samples ({_COLS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([t for _, t in SAMPLE_COLUMNS])
                for snap in snapshots:
                    at = snap.collected_at
                    for dev in snap.devices:
                        tp = dev.throughput
                        wid = workload_ids.get((tp.workload, tp.unit)) if tp is not None else None
                        if tp is not None and wid is None:
                            no_throughput += 1
                        device_id = device_ids[device_key(dev)]
                        staged.append((device_id, at))
                        copy.write_row(sample_row(device_id, at, dev, wid))
            # the common case, nothing stored before: no row comes back; a replay takes the second statement
            all_new = False
            with conn.transaction() as savepoint:
                cur.execute(
                    f"INSERT INTO device_samples ({_COLS}) SELECT {_COLS} FROM staging_samples ON CONFLICT DO NOTHING"
                )
                if cur.rowcount != len(staged):
                    raise psycopg.Rollback(savepoint)
                all_new = True
            inserted = staged
            if not all_new:
                cur.execute(
                    f"INSERT INTO device_samples ({_COLS}) SELECT {_COLS} FROM staging_samples "
                    "ON CONFLICT DO NOTHING RETURNING device_id, time"
                )
                inserted = [(int(r[0]), r[1]) for r in cur.fetchall()]
            cur.execute("TRUNCATE staging_samples")
        return inserted, all_new, no_throughput

    def _forget(self) -> None:
        self._lifecycle.forget()
        self._alerts.forget()
        self._owners.forget()
        # a rolled-back transaction may have created ids we cached: start clean
        self._device_ids.clear()
        self._workloads.forget()
        self._allocations.clear()
        if self._conn is not None and (self._conn.broken or self._conn.closed):
            self._conn = None

    def _upsert_nodes(
        self,
        conn: psycopg.Connection[Any],
        snapshots: Sequence[NodeSnapshot],
        partitions: dict[str, int],
        vendors: dict[str, str | None],
        registered: Collection[str],
    ) -> None:
        """Register new nodes (site, vendor, hostname) and move the event times of known ones. A known node's
        site never changes here, its vendor only from none to the one it reports now, and its hostname only
        by a snapshot with devices (an empty one names no vendor) newer than any stored; `registered` are
        the nodes already stored."""
        if not snapshots:
            return
        latest: dict[str, NodeSnapshot] = {}
        first: dict[str, datetime] = {}
        for s in snapshots:
            node = s.node.node_id
            if node not in latest or s.collected_at > latest[node].collected_at:
                latest[node] = s
            if node not in first or s.collected_at < first[node]:
                first[node] = s.collected_at
        sites = sorted({s.node.site_id for s in latest.values()})
        conn.execute("INSERT INTO sites (site_id) SELECT unnest(%s::text[]) ON CONFLICT DO NOTHING", (sites,))
        _ensure_vendors(conn, {v for v in vendors.values() if v is not None})
        rows = sorted(latest.items())
        conn.execute(
            "INSERT INTO nodes (node_id, site_id, hostname, first_seen, last_seen, kafka_partition, vendor_id, "
            "last_received_at) "
            "SELECT *, now() FROM unnest(%s::text[], %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], "
            "%s::int[], %s::text[]) "
            "ON CONFLICT (node_id) DO UPDATE SET "
            "last_received_at = EXCLUDED.last_received_at, "
            "kafka_partition = COALESCE(EXCLUDED.kafka_partition, nodes.kafka_partition), "
            "hostname = CASE WHEN EXCLUDED.last_seen > nodes.last_seen "
            "THEN COALESCE(EXCLUDED.hostname, nodes.hostname) ELSE nodes.hostname END, "
            "vendor_id = COALESCE(nodes.vendor_id, EXCLUDED.vendor_id), "
            "first_seen = LEAST(nodes.first_seen, EXCLUDED.first_seen), "
            "last_seen = GREATEST(nodes.last_seen, EXCLUDED.last_seen)",
            (
                [n for n, _ in rows],
                [s.node.site_id for _, s in rows],
                # an empty snapshot proves no owner: it names a new node's host, never renames a known one
                [s.node.hostname if s.devices or n not in registered else None for n, s in rows],
                [first[n] for n, _ in rows],
                [s.collected_at for _, s in rows],
                [partitions.get(n) for n, _ in rows],
                [vendors.get(n) for n, _ in rows],
            ),
        )

    def _resolve_devices(
        self, conn: psycopg.Connection[Any], snapshots: Sequence[NodeSnapshot]
    ) -> tuple[dict[DeviceKey, int], set[int]]:
        """The device id of every device in the batch, and the ids of the devices created now."""
        missing: dict[DeviceKey, tuple[DeviceSample, NodeSnapshot]] = {}
        for snap in snapshots:
            for dev in snap.devices:
                key = device_key(dev)
                if key not in self._device_ids:
                    missing.setdefault(key, (dev, snap))
        created: set[int] = set()
        if not missing:
            return self._device_ids, created
        uuids = [u for u, _ in missing]
        subs = [sd for _, sd in missing]
        # look up first: an INSERT ... ON CONFLICT burns an identity value for every existing device
        found = conn.execute(
            "SELECT d.device_uuid, d.subdevice, d.device_id FROM devices d "
            "JOIN unnest(%s::text[], %s::text[]) AS x(u, sd) "
            "ON d.device_uuid = x.u AND d.subdevice IS NOT DISTINCT FROM x.sd",
            (uuids, subs),
        ).fetchall()
        for uuid, sub, device_id in found:
            self._device_ids[(uuid, sub)] = device_id
            missing.pop((uuid, sub), None)
        if missing:
            _ensure_vendors(conn, {d.vendor for d, _ in missing.values()})
            rows = [
                (
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
                for d, s in missing.values()
            ]
            columns = list(zip(*rows, strict=True))
            for uuid, sub, device_id, inserted, vendor in conn.execute(
                "INSERT INTO devices (device_uuid, subdevice, vendor_id, kind, model, arch, pci_bus_id, "
                "node_id, first_seen, last_seen) SELECT *, f FROM unnest(%s::text[], %s::text[], %s::text[], "
                "%s::text[], %s::text[], %s::text[], %s::text[], %s::text[], %s::timestamptz[]) "
                "AS u(u, sd, v, k, m, a, p, n, f) "
                "ON CONFLICT ON CONSTRAINT devices_identity_key DO UPDATE "
                # commissioning is the first time seen: a backfill dated earlier never moves it
                "SET first_seen = devices.first_seen "
                "RETURNING device_uuid, subdevice, device_id, (xmax = 0) AS inserted, vendor_id",
                [list(c) for c in columns],
            ).fetchall():
                if vendor != missing[(uuid, sub)][0].vendor:
                    # registered by another worker since the ownership check: try again, and the check refuses it
                    raise psycopg.errors.SerializationFailure(
                        f"device {uuid!r} was registered to vendor {vendor!r} meanwhile"
                    )
                self._device_ids[(uuid, sub)] = device_id
                if inserted:
                    created.add(device_id)
        return self._device_ids, created

    def _record_allocations(
        self,
        conn: psycopg.Connection[Any],
        snapshots: Sequence[NodeSnapshot],
        device_ids: dict[DeviceKey, int],
    ) -> None:
        """Append a device_allocations row whenever a device's attribution differs from its last one."""
        ordered = sorted(snapshots, key=lambda s: s.collected_at)
        known = self._allocations
        unknown = {i for s in ordered for d in s.devices if (i := device_ids[device_key(d)]) not in known}
        if unknown:
            for device_id, *alloc in conn.execute(
                "SELECT DISTINCT ON (device_id) device_id, tenant, namespace, pod, container "
                "FROM device_allocations WHERE device_id = ANY(%s) ORDER BY device_id, since DESC",
                (sorted(unknown),),
            ).fetchall():
                self._allocations[device_id] = (alloc[0], alloc[1], alloc[2], alloc[3])
        changes: list[tuple[Any, ...]] = []
        for snap in ordered:
            for dev in snap.devices:
                device_id = device_ids[device_key(dev)]
                alloc = _allocation(dev.attribution)
                previous = self._allocations.get(device_id)
                if previous == alloc or (previous is None and alloc == (None, None, None, None)):
                    continue
                self._allocations[device_id] = alloc
                changes.append((device_id, snap.collected_at, *alloc))
        if changes:
            conn.execute(
                "INSERT INTO device_allocations (device_id, since, tenant, namespace, pod, container) "
                "SELECT * FROM unnest(%s::int[], %s::timestamptz[], %s::text[], %s::text[], %s::text[], %s::text[]) "
                "ON CONFLICT DO NOTHING",
                [list(c) for c in zip(*changes, strict=True)],
            )
