"""device_samples stays narrow: measured bytes per stored sample, heap and primary key together.

A full day at 10-second cadence for a few devices, written in time order as the ingest writes it, so
the primary-key index reaches its steady-state fill. Measured on PostgreSQL 15 (see the report in
kcloud/db/schema.py): about 101 heap + 32 index = 133 bytes for a sample with every column set, 109 +
32 = 141 when some column is null (the null bitmap costs 8 bytes of tuple header). The bound below
catches a regression (a text id, another index, a badly ordered column), not the last byte. The
activity and health columns of 0013 cost nothing where they are null, 36 bytes where all are set.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from kcloud.db.connect import Connection
from kcloud.db.partitions import ensure_partitions, partition_name
from kcloud.db.schema import DEVICE_SAMPLE_COLUMNS

DEVICES = 20
TICKS = 8640  # one day at 10 s
_TYPES = ["timestamptz", "int4", "float4", "int8", "int8", "float8", "int8"] + ["float4"] * 5 + ["int2", "int2"]
# 0013's activity and health columns: nvlink_errors, five activity percents, xid_last, mem_rows_retired, four flags
_TYPES += ["int8"] + ["float4"] * 5 + ["int2", "int2"] + ["bool"] * 4
_ACTIVITY_HEALTH = (0, 71.5, 38.25, 44.0, 0.0, 0.0, 0, 0, False, False, False, False)


def _load_day(conn: Connection, day: datetime, *, with_throughput: bool, with_activity: bool) -> int:
    ensure_partitions(conn, day, day)
    columns = ", ".join(DEVICE_SAMPLE_COLUMNS)
    extra = _ACTIVITY_HEALTH if with_activity else (None,) * len(_ACTIVITY_HEALTH)
    with conn.cursor().copy(f"COPY device_samples ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(_TYPES)
        for tick in range(TICKS):
            at = day + timedelta(seconds=10 * tick)
            for device_id in range(1, DEVICES + 1):
                copy.write_row(
                    (
                        at, device_id, 37.5 + device_id, 40_000_000_000, 80_000_000_000,
                        1.0e6 + 3000.0 * tick, 0, 312.5, 700.0, 61.0, 1410.0,
                        1234.5 if with_throughput else None, 0, 1 if with_throughput else None,
                        *extra,
                    )
                )  # fmt: skip
    return DEVICES * TICKS


def _bytes_per_row(conn: Connection, day: datetime, rows: int) -> tuple[float, float, float]:
    conn.execute("VACUUM ANALYZE device_samples")
    name = partition_name(day)
    row = conn.execute(
        "SELECT pg_total_relation_size(%s), pg_relation_size(%s), pg_indexes_size(%s)", (name, name, name)
    ).fetchone()
    assert row is not None
    total, heap, index = (int(v) for v in row)
    return total / rows, heap / rows, index / rows


@pytest.mark.parametrize("with_throughput", [True, False], ids=["base-columns", "no-throughput"])
def test_a_stored_sample_without_activity_counters_costs_under_150_bytes_with_its_index(
    conn: Connection, with_throughput: bool, capsys: pytest.CaptureFixture[str]
) -> None:
    # a source without the 0013 counters (an NPU exporter, nvidia-smi on an old driver): they cost nothing
    day = datetime(2026, 2, 1, tzinfo=UTC)
    started = time.monotonic()
    rows = _load_day(conn, day, with_throughput=with_throughput, with_activity=False)
    total, heap, index = _bytes_per_row(conn, day, rows)

    with capsys.disabled():
        print(
            f"\ndevice_samples ({'base columns' if with_throughput else 'throughput null'}, activity null): "
            f"{total:.1f} B/row = heap {heap:.1f} + indexes {index:.1f} "
            f"({rows} rows loaded in {time.monotonic() - started:.1f}s)"
        )
    assert heap <= 112
    assert index <= 36
    assert total <= 150


def test_a_stored_sample_with_every_column_stays_under_190_bytes(
    conn: Connection, capsys: pytest.CaptureFixture[str]
) -> None:
    # dcgm-exporter with profiling fields on: 36 bytes more data (one bigint, five reals, two smallints,
    # four booleans), laid out without padding
    day = datetime(2026, 2, 2, tzinfo=UTC)
    rows = _load_day(conn, day, with_throughput=True, with_activity=True)
    total, heap, index = _bytes_per_row(conn, day, rows)
    with capsys.disabled():
        print(f"\ndevice_samples (every column): {total:.1f} B/row = heap {heap:.1f} + indexes {index:.1f}")
    assert heap <= 150
    assert index <= 36
    assert total <= 186
