"""The activity and health counters from the collectors to device_samples: what a dcgm-exporter page
reports is stored in its column, and what a source lacks (an NPU exporter, a GPU without NVLink) stays
null all the way, never 0 or false."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from collectors.prom import parse_page
from collectors.prom_maps import EXPORTERS
from kcloud.db.migrate import migrate
from kcloud.db.schema import ACTIVITY_HEALTH_COLUMNS
from kcloud.records import DeviceSample, NodeRef, NodeSnapshot, parse_snapshot
from kcloud.settings import Settings
from streams.sink import SampleSink

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "prometheus"
AT = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)


def _page(name: str, exporter: str) -> list[DeviceSample]:
    samples, stats = parse_page((FIXTURES / name).read_text(encoding="utf-8"), EXPORTERS[exporter])
    assert samples and stats.dropped == 0, stats.problems
    return samples


def _snapshot(node: str, source: str, devices: list[DeviceSample]) -> NodeSnapshot:
    snap = NodeSnapshot(
        node=NodeRef(node_id=node, site_id="act-site"), source=source, collected_at=AT, seq=1, devices=devices
    )
    return parse_snapshot(snap.to_json_bytes())  # as the worker receives it: through the wire form


def _stored(url: str, uuid: str) -> dict[str, Any]:
    columns = ", ".join(f"s.{c}" for c in ACTIVITY_HEALTH_COLUMNS)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            f"SELECT {columns} FROM device_samples s JOIN devices d USING (device_id) "
            "WHERE d.device_uuid = %s AND d.subdevice IS NULL AND s.time = %s",
            (uuid, AT),
        ).fetchone()
    assert row is not None, uuid
    return dict(zip(ACTIVITY_HEALTH_COLUMNS, row, strict=True))


def test_counters_a_source_reports_are_stored_and_the_ones_it_lacks_stay_null(test_settings: Settings) -> None:
    migrate(test_settings.effective_database_url, test_settings)
    gpus = _page("h100-sxm5-dcgm-exporter-profiling-synthetic.prom", "dcgm")
    npus = _page("rngd-furiosa-exporter-2025.1.prom", "furiosa")
    snaps = [_snapshot("act-gpu-0", "prom:dcgm", gpus), _snapshot("act-npu-0", "prom:furiosa", npus)]
    sink = SampleSink(test_settings)
    try:
        assert sink.write(snaps).stored == len(gpus) + len(npus)
    finally:
        sink.close()
    url = test_settings.effective_database_url

    training, video = (_stored(url, g.device_uuid) for g in gpus)
    assert training == {
        "nvlink_errors": 4,
        "sm_active_pct": pytest.approx(92.3),
        "tensor_active_pct": pytest.approx(61.4),
        "dram_active_pct": pytest.approx(48.2),
        "enc_util_pct": 0.0,
        "dec_util_pct": 0.0,
        "xid_last": 0,
        "mem_rows_retired": 2,
        "throttle_power": True,
        "throttle_thermal": False,
        "mem_repair_pending": False,
        "mem_repair_failed": False,
    }
    assert video["enc_util_pct"] == 78.0 and video["dec_util_pct"] == 85.0 and video["tensor_active_pct"] == 0.0
    assert (video["xid_last"], video["throttle_thermal"], video["mem_repair_pending"]) == (63, True, True)
    assert video["nvlink_errors"] is None  # no NVLink series on the page: not reported, not 0
    for npu in npus:
        assert _stored(url, npu.device_uuid) == dict.fromkeys(ACTIVITY_HEALTH_COLUMNS)


def test_every_counter_column_reads_back_as_the_wire_sent_it(test_settings: Settings) -> None:
    # each column on its own, at its catalogue bound where it has one, so a swapped column shows
    migrate(test_settings.effective_database_url, test_settings)
    base = {"device_uuid": "7e57c0de-0000-4000-8000-000000000001", "vendor": "nvidia", "kind": "gpu"}
    values = {
        "nvlink_errors": 2**53,
        "sm_active_pct": 100.0,
        "tensor_active_pct": 12.5,
        "dram_active_pct": 0.25,
        "enc_util_pct": 3.0,
        "dec_util_pct": 4.0,
        "xid_last": 9999,
        "mem_rows_retired": 16384,
        "throttle_power": False,
        "throttle_thermal": True,
        "mem_repair_pending": True,
        "mem_repair_failed": True,
    }
    snap = _snapshot("act-bounds-0", "prom:dcgm", [DeviceSample(**base, **values)])
    sink = SampleSink(test_settings)
    try:
        sink.write([snap])
    finally:
        sink.close()
    assert _stored(test_settings.effective_database_url, base["device_uuid"]) == values
