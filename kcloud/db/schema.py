"""Names and codes shared between the SQL migrations and the Python that reads and writes the tables.

The sample table is kept narrow (see `DEVICE_SAMPLE_COLUMNS`): a device is a 4-byte `device_id` from
`devices`, health is a 2-byte code (`HEALTH_CODES`), and a throughput's (workload, unit) pair is a
2-byte `workload_id` from `workloads`. Writers resolve the ids once and cache them.

Measured width on PostgreSQL 15 (tests/integration/db/test_db_sample_width.py: a day at 10 s
cadence, written in time order): 141 bytes per sample from a source without the activity and health
counters of 0013 (heap 109 + primary key 32; they are null, and the null bitmap grows the tuple header
from 24 to 32 bytes), 175 with every column set (dcgm-exporter with profiling fields on). The
floor is the per-row overhead of a heap tuple (24-32 bytes header + 4 line pointer) and the
(device_id, time) key (~32); TimescaleDB's compression is what gets well under 120.

Beware identity burn: `INSERT ... ON CONFLICT` consumes an identity value even when the row exists, so
upserting `devices` (or `workloads`) once per sample would exhaust `device_id` within a day at fleet
scale. Look the id up first (cache), and insert only the devices not yet known.

Example:
    >>> HEALTH_CODES["degraded"], HEALTH_NAMES[2]
    (1, 'failed')
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "ACTIVITY_HEALTH_COLUMNS",
    "DEVICE_KINDS",
    "DEVICE_SAMPLE_COLUMNS",
    "DEVICE_STATUSES",
    "HEALTH_CODES",
    "HEALTH_NAMES",
    "MAIN_TABLES",
    "ROLLUP_COLUMNS",
    "ROLLUP_TABLES",
    "SAMPLE_TABLE",
    "health_code",
    "health_name",
]

#: `device_samples.health` (smallint) <-> the wire's health state. NULL means the source could not
#: say (no `health` field on the wire); 3 means the source said "unknown". The same mapping is the
#: `health_states` table, for SQL joins and dashboards.
HEALTH_CODES: Final[dict[str, int]] = {"ok": 0, "degraded": 1, "failed": 2, "unknown": 3}
HEALTH_NAMES: Final[dict[int, str]] = {code: name for name, code in HEALTH_CODES.items()}

DEVICE_KINDS: Final = ("gpu", "npu")
#: `devices.status`: where a device is in its life, as the deployments processor last saw it.
DEVICE_STATUSES: Final = ("commissioned", "active", "idle", "offline", "returned", "decommissioned")

SAMPLE_TABLE: Final = "device_samples"
#: Columns of `device_samples`, in table order (8-byte columns first, so no alignment padding); the
#: 0002 table, then the columns later migrations add at its end.
DEVICE_SAMPLE_COLUMNS: Final = (
    "time",
    "device_id",
    "util_pct",
    "mem_used_bytes",
    "mem_total_bytes",
    "energy_j",
    "ecc_uncorrected",
    "power_w",
    "power_limit_w",
    "temp_c",
    "clock_mhz",
    "throughput",
    "health",
    "workload_id",
    # added by 0013_activity_health_counters.sql (ACTIVITY_HEALTH_COLUMNS), all nullable
    "nvlink_errors",
    "sm_active_pct",
    "tensor_active_pct",
    "dram_active_pct",
    "enc_util_pct",
    "dec_util_pct",
    "xid_last",
    "mem_rows_retired",
    "throttle_power",
    "throttle_thermal",
    "mem_repair_pending",
    "mem_repair_failed",
)
#: The columns 0013 adds to `device_samples` (each the `DeviceSample` field of the same name): what
#: tells AI from video or idle work, and the health signals. Null wherever the source lacks the counter.
ACTIVITY_HEALTH_COLUMNS: Final = DEVICE_SAMPLE_COLUMNS[DEVICE_SAMPLE_COLUMNS.index("nvlink_errors") :]

ROLLUP_TABLES: Final = ("device_rollup_1m", "device_rollup_1h", "device_rollup_1d")
#: Columns of every rollup level (tables on plain PostgreSQL, continuous aggregates on TimescaleDB
#: for 1h and 1d). `energy_j` is energy used within the bucket; `seconds_observed` the time covered.
ROLLUP_COLUMNS: Final = (
    "device_id",
    "bucket",
    "util_avg",
    "util_max",
    "power_avg",
    "energy_j",
    "temp_avg",
    "samples",
    "seconds_observed",
)

#: The tables `kcloud db status` counts rows of.
MAIN_TABLES: Final = (
    "vendors",
    "sites",
    "nodes",
    "devices",
    "device_samples",
    "device_rollup_1m",
    "device_rollup_1h",
    "device_rollup_1d",
    "deployment_events",
    "alerts",
    "vendor_tokens",
    "ingest_audit",
)


def health_code(state: str | None) -> int | None:
    """The smallint stored for a wire health state; None stays None (the source could not say).

    Raises `KeyError` naming the known states for anything else.
    """
    if state is None:
        return None
    try:
        return HEALTH_CODES[state]
    except KeyError:
        raise KeyError(f"health {state!r} is not one of {', '.join(HEALTH_CODES)}") from None


def health_name(code: int | None) -> str | None:
    """The wire health state of a stored code; None stays None."""
    return None if code is None else HEALTH_NAMES[code]
