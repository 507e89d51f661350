"""Throughput workloads: the (workload, unit) pairs of `throughput`, as the 2-byte `workload_id` of a sample.

A vendor introduces at most `cap` pairs (`workloads.vendor_id` names who introduced each; a pair that exists
is shared by every vendor at no cost). Beyond the cap, or once the id sequence is exhausted, a new pair
gets no id: the sink stores the sample without its throughput and counts it, so that one vendor's flood
of names neither fills the table nor stalls the ingest. New pairs of a vendor are created under an
advisory lock of that vendor, so workers sharing its nodes keep to the cap together.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from kcloud.records import NodeSnapshot

__all__ = ["WORKLOAD_LOCK", "WorkloadIds"]

log = logging.getLogger("kcloud.streams.workloads")

#: first key of the advisory lock a vendor's new workloads are created under ("kcwl")
WORKLOAD_LOCK = 0x6B63776C


class WorkloadIds:
    """The workload ids this sink has resolved (ids never change once created)."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self._workload_ids: dict[tuple[str, str], int] = {}

    def forget(self) -> None:
        """Drop the cache (a rolled-back transaction may have created ids that do not exist)."""
        self._workload_ids.clear()

    def resolve(self, conn: psycopg.Connection[Any], snapshots: Sequence[NodeSnapshot]) -> dict[tuple[str, str], int]:
        """The workload id of every throughput (workload, unit) of the batch, created where new and within
        the cap of the vendor that introduces it; a pair missing from the result is refused."""
        missing: dict[tuple[str, str], str] = {}
        for s in snapshots:
            for d in s.devices:
                if (
                    d.throughput is not None
                    and (key := (d.throughput.workload, d.throughput.unit)) not in self._workload_ids
                ):
                    missing.setdefault(key, d.vendor)
        if not missing:
            return self._workload_ids
        names = sorted(missing)
        for name, unit, workload_id in conn.execute(
            "SELECT w.name, w.unit, w.workload_id FROM workloads w "
            "JOIN unnest(%s::text[], %s::text[]) AS x(n, u) ON w.name = x.n AND w.unit = x.u",
            ([n for n, _ in names], [u for _, u in names]),
        ).fetchall():
            self._workload_ids[(name, unit)] = workload_id
            missing.pop((name, unit), None)
        cap = self.cap
        for vendor in sorted(set(missing.values())):
            # one creator per vendor at a time, so that workers sharing the vendor's nodes keep to its cap
            conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (WORKLOAD_LOCK, vendor))
            row = conn.execute("SELECT count(*) FROM workloads WHERE vendor_id = %s", (vendor,)).fetchone()
            room = cap - (int(row[0]) if row else 0)
            for name, unit in sorted(k for k, v in missing.items() if v == vendor):
                if room <= 0:
                    break
                try:
                    with conn.transaction():
                        row = conn.execute(
                            "INSERT INTO workloads (name, unit, vendor_id) VALUES (%s, %s, %s) "
                            "ON CONFLICT (name, unit) DO UPDATE SET unit = EXCLUDED.unit RETURNING workload_id",
                            (name, unit, vendor),
                        ).fetchone()
                except psycopg.errors.SequenceGeneratorLimitExceeded:
                    log.warning("workload ids are exhausted: throughput of new workloads is stored without them")
                    break
                assert row is not None
                self._workload_ids[(name, unit)] = row[0]
                room -= 1
        return self._workload_ids
