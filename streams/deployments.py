"""Deployments: the database half of the device lifecycle (`streams.lifecycle` is the pure half).

Inside the ingest's transaction, after the samples are stored, `LifecycleRecorder.apply` takes the
lifecycle state of the batch's devices (from memory: the rows as stored, read from `devices` the first
time and again whenever another writer has been at their partition), applies the new samples in
event-time order, writes back only the devices whose state changed, and appends each transition to the
hash-chained `deployment_events` ledger. State and ledger commit together with the samples, so a crash
or a replay neither skips nor doubles a transition. `sweep` does the silence checks (offline,
decommissioned) on a timer, and `decommission` records an operator's explicit decommissioning. The
returned events are published on `kcloud.deployments.v1` after the commit.

Lifecycle work takes transaction-level advisory locks per telemetry partition (`lock_lifecycle`), so
several workers (and their sweeps) never interleave on the same devices and never wait for each other;
under those locks each writer records itself in `lifecycle_writers`, which is how a worker learns that
what it holds in memory is stale.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import psycopg

from kcloud.db.schema import HEALTH_CODES, HEALTH_NAMES
from kcloud.ledger import LedgerSigner, append_events, signing_key_path
from kcloud.records import DeploymentEvent, NodeSnapshot
from kcloud.settings import Settings
from streams.lifecycle import (
    DeviceState,
    Observation,
    Rules,
    Transition,
    commission,
    observe,
    steady,
    sweep,
)
from streams.lifecycle import (
    decommission as decommission_state,
)

__all__ = ["LIFECYCLE_LOCK", "LifecycleRecorder", "lock_lifecycle", "rules_from"]

#: first key of the lifecycle's advisory locks ("kclc"); the second is a telemetry partition, or -1 for all
LIFECYCLE_LOCK = 0x6B636C63
_ALL = -1


def lock_lifecycle(
    conn: psycopg.Connection[Any], partitions: Collection[int] | None, writer: UUID | None = None
) -> bool:
    """Take the lifecycle lock of `partitions` for this transaction (None: of everything); with `writer`,
    also record it as their last writer (`lifecycle_writers`) and return True when another writer has
    changed their state since `writer` last did (whatever it holds in memory of them is stale).

    A node's devices arrive on one partition, so workers owning different partitions never wait for
    each other; work without a partition (an operator's decommissioning, a sweep of all nodes) excludes
    everyone, since partition work also holds the all-key in shared mode."""
    if partitions is None:
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LIFECYCLE_LOCK, _ALL))
    else:
        conn.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", (LIFECYCLE_LOCK, _ALL))
        for part in sorted(set(partitions)):
            conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (LIFECYCLE_LOCK, part))
    if writer is None:
        return False
    keys = sorted({_ALL} if partitions is None else set(partitions))
    row = conn.execute(_CLAIM_SQL, {"keys": keys, "writer": writer, "all": partitions is None}).fetchone()
    return bool(row and row[0])


# rows are inserted (first writer: nothing to be stale) or taken over (another writer was there)
_CLAIM_SQL = """
WITH k AS (
    SELECT unnest(%(keys)s::int[]) AS p
    UNION SELECT kafka_partition FROM lifecycle_writers WHERE %(all)s
), claimed AS (
    INSERT INTO lifecycle_writers AS w (kafka_partition, writer) SELECT p, %(writer)s FROM k
    ON CONFLICT (kafka_partition) DO UPDATE SET writer = EXCLUDED.writer, since = now()
    WHERE w.writer <> EXCLUDED.writer
    RETURNING xmax <> 0 AS taken_over
)
SELECT count(*) FILTER (WHERE taken_over) > 0 FROM claimed
"""

_STATE_SQL = """
SELECT d.device_id, d.device_uuid, d.vendor_id, d.status, coalesce(d.status_since, d.first_seen),
       d.last_seen, d.node_id, n.site_id, d.util_state, d.util_state_since, d.health,
       d.move_node, d.move_site, d.move_since, d.move_seen, d.reloc_hour, d.reloc_count, d.reloc_suppressed
FROM devices d JOIN nodes n ON n.node_id = d.node_id
WHERE d.device_id = ANY(%s)
"""
_UPDATE_SQL = """
UPDATE devices d SET status = u.status, status_since = u.status_since, last_seen = GREATEST(d.last_seen, u.last_seen),
       node_id = u.node_id, util_state = u.util_state, util_state_since = u.util_state_since, health = u.health,
       move_node = u.move_node, move_site = u.move_site, move_since = u.move_since, move_seen = u.move_seen,
       reloc_hour = u.reloc_hour, reloc_count = u.reloc_count, reloc_suppressed = u.reloc_suppressed
FROM unnest(%s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[], %s::timestamptz[],
            %s::int2[], %s::text[], %s::text[], %s::timestamptz[], %s::int[], %s::timestamptz[], %s::int[],
            %s::int[], %s::int[])
     AS u(status, status_since, last_seen, node_id, util_state, util_state_since, health, move_node, move_site,
          move_since, move_seen, reloc_hour, reloc_count, reloc_suppressed, device_id)
WHERE d.device_id = u.device_id
"""


def rules_from(settings: Settings) -> Rules:
    return Rules(
        busy_util_pct=settings.active_util_pct,
        sustain=timedelta(seconds=settings.active_sustain_s),
        offline_after=timedelta(seconds=settings.offline_after_intervals * settings.sample_interval_s),
        decommission_after=timedelta(days=settings.decommission_after_days),
        relocate_confirm=settings.relocate_confirm_intervals,
        relocate_max_per_hour=settings.relocate_max_per_hour,
    )


@dataclass(frozen=True, slots=True)
class _Row:
    device_id: int
    device_uuid: str
    vendor: str
    state: DeviceState


def _row(r: Sequence[Any]) -> _Row:
    health = HEALTH_NAMES[r[10]] if r[10] is not None else None
    return _Row(r[0], r[1], r[2], DeviceState(r[3], r[4], r[5], r[6], r[7], r[8], r[9], health, *r[11:18]))


class LifecycleRecorder:
    """Applies samples and sweeps to the lifecycle state in the database, appending ledger events."""

    def __init__(self, settings: Settings) -> None:
        self.rules = rules_from(settings)
        #: node -> the cards it reported in the last batch (plus absent ones not yet offline)
        self._known: dict[str, frozenset[int]] = {}
        #: device -> its lifecycle row as stored, for the devices `apply` has met (see `lock_lifecycle`)
        self._cache: dict[int, _Row] = {}
        #: this recorder's name in `lifecycle_writers`
        self.writer = uuid4()
        #: the key the ledger appends are signed with (LedgerKeyError when others may read it)
        self._signer = LedgerSigner.from_file(signing_key_path(settings))

    def lock(self, conn: psycopg.Connection[Any], partitions: Collection[int] | None) -> bool:
        """`lock_lifecycle` of `partitions` (None: all) as this recorder's writer, for this transaction: what
        `apply`, `sweep` and `decommission` need held. True when another writer had been there (what this
        recorder held of them is dropped already; the caller drops what it holds)."""
        stale = lock_lifecycle(conn, partitions, self.writer)
        if stale:
            self.forget()
        return stale

    def apply(
        self,
        conn: psycopg.Connection[Any],
        snapshots: Sequence[NodeSnapshot],
        device_ids: Mapping[tuple[str, str | None], int],
        new_devices: set[int],
        node_last_seen: Mapping[str, datetime],
    ) -> list[DeploymentEvent]:
        """Lifecycle of the batch's devices, under `lock` of the partitions they came from; `node_last_seen` is
        each node's last_seen before this batch."""
        ids = sorted({device_ids[(d.device_uuid, d.subdevice)] for s in snapshots for d in s.devices})
        cache = self._cache
        unread = [i for i in ids if i not in cache]
        if unread:
            cache.update((r[0], _row(r)) for r in conn.execute(_STATE_SQL, (unread,)).fetchall())
        rows = {i: cache[i] for i in ids if i in cache}
        states: dict[int, DeviceState] = {}
        last: dict[int, datetime] = {}  # each device's last_seen as the batch goes (kept apart: cheaper)
        for device_id, row in rows.items():
            st = row.state
            seen = node_last_seen.get(st.node_id)
            last[device_id] = (
                seen if seen is not None and seen > st.last_seen and device_id not in new_devices else st.last_seen
            )
            states[device_id] = st
        original = dict(states)
        fresh: set[int] = set()
        transitions: list[tuple[int, Transition]] = []
        rules = self.rules
        # a new device is commissioned by the first snapshot that brought it (as `devices.first_seen` is);
        # its samples dated earlier in the same batch are stored but are backfill to the lifecycle
        first_sight: dict[int, datetime] = {}
        if new_devices:
            for snap in snapshots:
                for dev in snap.devices:
                    device_id = device_ids[(dev.device_uuid, dev.subdevice)]
                    if device_id in new_devices:
                        first_sight.setdefault(device_id, snap.collected_at)
        for snap in sorted(snapshots, key=lambda s: s.collected_at):
            at, node, site = snap.collected_at, snap.node.node_id, snap.node.site_id
            for dev in snap.devices:
                device_id = device_ids[(dev.device_uuid, dev.subdevice)]
                new_one = device_id in new_devices and device_id not in fresh
                if new_one and at < first_sight[device_id]:
                    continue
                cur = states.get(device_id)
                if (
                    not new_one
                    and cur is not None
                    and steady(cur, last[device_id], at, node, site, dev.util_pct, dev.health, rules)
                ):
                    last[device_id] = max(last[device_id], at)
                    continue
                obs = Observation(at, node, site, dev.util_pct, dev.health)
                if new_one:
                    fresh.add(device_id)
                    st, events = commission(obs, rules)
                else:
                    assert cur is not None
                    st, events = observe(replace(cur, last_seen=last[device_id]), obs, rules)
                states[device_id] = st
                last[device_id] = st.last_seen
                transitions.extend((device_id, t) for t in events)
        changed = [i for i, st in states.items() if _persisted_fields_differ(st, original.get(i))]
        for i in changed:
            states[i] = replace(states[i], last_seen=max(last[i], original[i].last_seen) if i in original else last[i])
        self._store(conn, states, changed)
        for i in changed:  # as stored: the next batch starts from here without reading it back
            cache[i] = _Row(i, rows[i].device_uuid, rows[i].vendor, states[i])
        node_newest: dict[str, datetime] = {}
        reported: dict[str, set[int]] = {}
        for snap in snapshots:
            node = snap.node.node_id
            node_newest[node] = max(snap.collected_at, node_newest.get(node, snap.collected_at))
            reported.setdefault(node, set()).update(device_ids[(d.device_uuid, d.subdevice)] for d in snap.devices)
        # only nodes seen for the first time, or reporting fewer cards than before, can have absent cards
        check = {n: t for n, t in node_newest.items() if n not in self._known or not self._known[n] <= reported[n]}
        pending: dict[str, set[int]] = {}
        if check:
            more_rows, missing, pending = self._absent_devices(conn, check, ids)
            rows.update(more_rows)
            transitions.extend(missing)
        for node, devices in reported.items():
            self._known[node] = frozenset(devices | pending.get(node, set()))
        return self._append(conn, rows, transitions)

    def forget(self) -> None:
        """Drop what this recorder remembers of the nodes' cards and the devices' state (after a failed
        transaction, or when another writer changed the state)."""
        self._known.clear()
        self._cache.clear()

    def _absent_devices(
        self, conn: psycopg.Connection[Any], node_newest: Mapping[str, datetime], present: Sequence[int]
    ) -> tuple[dict[int, _Row], list[tuple[int, Transition]], dict[str, set[int]]]:
        """Devices of the batch's nodes that the node reports no longer, while the node itself keeps
        reporting: offline at their own last sample plus the threshold (a card pulled from a live node)."""
        absent = [
            r[0]
            for r in conn.execute(
                "SELECT d.device_id FROM devices d WHERE d.node_id = ANY(%s) "
                "AND d.status NOT IN ('offline', 'decommissioned') EXCEPT SELECT unnest(%s::int[])",
                (sorted(node_newest), list(present)),
            ).fetchall()
        ]
        if not absent:
            return {}, [], {}
        rows = {r[0]: _row(r) for r in conn.execute(_STATE_SQL, (sorted(absent),)).fetchall()}
        last_sample = dict(
            conn.execute(
                "SELECT d, (SELECT max(time) FROM device_samples s WHERE s.device_id = d) FROM unnest(%s::int[]) d",
                (sorted(rows),),
            ).fetchall()
        )
        candidates = [
            (device_id, replace(row.state, last_seen=last_sample[device_id]), node_newest[row.state.node_id])
            for device_id, row in sorted(rows.items())
            if last_sample.get(device_id) is not None
        ]
        transitions, quiet = self._sweep_states(conn, candidates)
        pending: dict[str, set[int]] = {}
        for device_id in quiet:  # absent, not yet for long enough: look again at the node's next snapshots
            pending.setdefault(rows[device_id].state.node_id, set()).add(device_id)
        return rows, transitions, pending

    def _sweep_states(
        self, conn: psycopg.Connection[Any], candidates: Sequence[tuple[int, DeviceState, datetime]]
    ) -> tuple[list[tuple[int, Transition]], list[int]]:
        """Silence checks of (device, state, watermark): stores the devices that changed; returns their
        transitions and the devices that did not change."""
        states: dict[int, DeviceState] = {}
        transitions: list[tuple[int, Transition]] = []
        quiet: list[int] = []
        for device_id, st, watermark in candidates:
            new, events = sweep(st, watermark, self.rules)
            if events:
                states[device_id] = new
                transitions.extend((device_id, t) for t in events)
            else:
                quiet.append(device_id)
        self._store(conn, states, sorted(states))
        return transitions, quiet

    def sweep(
        self,
        conn: psycopg.Connection[Any],
        watermark: datetime,
        partitions: Collection[int] | None = None,
    ) -> list[DeploymentEvent]:
        """Offline and decommission checks at event time `watermark` for the nodes of `partitions` (or all),
        under `lock` of those partitions."""
        parts = None if partitions is None else sorted(partitions)
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT d.device_id FROM devices d JOIN nodes n ON n.node_id = d.node_id "
                "WHERE (%s::int[] IS NULL OR n.kafka_partition = ANY(%s::int[])) AND ("
                "   (d.status <> 'offline' AND d.status <> 'decommissioned' AND n.last_seen < %s) "
                "   OR (d.status = 'offline' AND d.status_since < %s)) ORDER BY d.device_id",
                (parts, parts, watermark - self.rules.offline_after, watermark - self.rules.decommission_after),
            ).fetchall()
        ]
        if not ids:
            return []
        rows = {r[0]: _row(r) for r in conn.execute(_STATE_SQL, (ids,)).fetchall()}
        node_seen = dict(
            conn.execute(
                "SELECT node_id, last_seen FROM nodes WHERE node_id = ANY(%s)",
                (sorted({r.state.node_id for r in rows.values()}),),
            ).fetchall()
        )
        candidates = []
        for device_id, row in rows.items():
            st = row.state
            seen = node_seen.get(st.node_id)
            if seen is not None and seen > st.last_seen:
                st = replace(st, last_seen=seen)
            candidates.append((device_id, st, watermark))
        transitions, _ = self._sweep_states(conn, candidates)
        return self._append(conn, rows, transitions)

    def decommission(
        self, conn: psycopg.Connection[Any], device_uuid: str, at: datetime, reason: str
    ) -> DeploymentEvent | None:
        """Record an explicit decommissioning; None when the device already is decommissioned."""
        self.lock(conn, None)
        found = conn.execute(
            "SELECT device_id FROM devices WHERE device_uuid = %s ORDER BY device_id", (device_uuid,)
        ).fetchall()
        if not found:
            raise LookupError(f"no device with uuid {device_uuid!r} has been seen")
        rows = {r[0]: _row(r) for r in conn.execute(_STATE_SQL, ([f[0] for f in found],)).fetchall()}
        states: dict[int, DeviceState] = {}
        transitions: list[tuple[int, Transition]] = []
        node_seen = dict(
            conn.execute(
                "SELECT node_id, last_seen FROM nodes WHERE node_id = ANY(%s)",
                (sorted({r.state.node_id for r in rows.values()}),),
            ).fetchall()
        )
        for device_id, row in rows.items():
            st = row.state
            seen = node_seen.get(st.node_id)
            if seen is not None and seen > st.last_seen:  # devices.last_seen is written only with a change
                st = replace(st, last_seen=seen)
            new, done = decommission_state(st, at, reason)
            if done:
                states[device_id] = new
                transitions.extend((device_id, t) for t in done)
        self._store(conn, states, sorted(states))
        events = self._append(conn, rows, transitions)
        return events[0] if events else None

    def _store(self, conn: psycopg.Connection[Any], states: Mapping[int, DeviceState], ids: Sequence[int]) -> None:
        if not ids:
            return
        for i in ids:  # read again when next needed
            self._cache.pop(i, None)
        stored = [states[i] for i in ids]
        conn.execute(
            _UPDATE_SQL,
            (
                [st.status for st in stored],
                [st.status_since for st in stored],
                [st.last_seen for st in stored],
                [st.node_id for st in stored],
                [st.util_state for st in stored],
                [st.util_state_since for st in stored],
                [HEALTH_CODES[st.health] if st.health else None for st in stored],
                [st.move_node for st in stored],
                [st.move_site for st in stored],
                [st.move_since for st in stored],
                [st.move_seen for st in stored],
                [st.reloc_hour for st in stored],
                [st.reloc_count for st in stored],
                [st.reloc_suppressed for st in stored],
                list(ids),
            ),
        )

    def _append(
        self, conn: psycopg.Connection[Any], rows: Mapping[int, _Row], transitions: Sequence[tuple[int, Transition]]
    ) -> list[DeploymentEvent]:
        if not transitions:
            return []
        ordered = sorted(transitions, key=lambda it: (it[1].at, it[0]))
        events = [
            DeploymentEvent(
                device_uuid=rows[i].device_uuid,
                vendor=rows[i].vendor,
                event=t.event,  # type: ignore[arg-type]
                at=t.at,
                node_id=t.node_id,
                site_id=t.site_id,
                details=t.details,
            )
            for i, t in ordered
        ]
        append_events(conn, events, {rows[i].device_uuid: i for i, _ in ordered}, signer=self._signer)
        return events


def _persisted_fields_differ(new: DeviceState, old: DeviceState | None) -> bool:
    """True when a stored column changes (last_seen alone is not worth a write: nodes.last_seen has it)."""
    if old is None:
        return True
    return replace(new, last_seen=old.last_seen) != old
