"""nvidia-smi CSV: golden rows, N/A handling, malformed rows, and the subprocess half."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collectors.base import CollectorError, CollectorUnavailable, build_collector
from collectors.nvidia_smi import LEGACY_QUERY_FIELDS, QUERY_FIELDS, parse_csv, query_command
from kcloud.records import DeviceSample

Flat = Callable[[DeviceSample], dict[str, Any]]
MiB = 2**20
FIXTURE = "nvidia_smi/h100-sxm5-query-gpu-csv-synthetic.csv"
H100 = {"vendor": "nvidia", "kind": "gpu", "model": "NVIDIA H100 80GB HBM3", "mem_total_bytes": 81559 * MiB}


def test_query_output_gives_one_sample_per_row_in_canonical_units(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    samples, _ = parse_csv(fixture_text(FIXTURE))
    assert [flat(s) for s in samples] == [
        pytest.approx(e)
        for e in [
            {
                **H100,
                "device_uuid": "8f4c1d2e-5a6b-4c7d-9e8f-0a1b2c3d4e5f",
                "index": "0",
                "pci_bus_id": "00000000:19:00.0",
                "util_pct": 87.0,
                "mem_used_bytes": 61440 * MiB,
                "power_w": 412.33,
                "power_limit_w": 700.0,
                "temp_c": 47.0,
                "clock_mhz": 1980.0,
                "ecc_uncorrected": 0,
            },
            {
                **H100,
                "device_uuid": "1a2b3c4d-0000-4e5f-8a9b-cdef01234567",
                "index": "1",
                "pci_bus_id": "00000000:3B:00.0",
                "mem_used_bytes": 10282 * MiB,
                "power_w": 201.5,
                "power_limit_w": 650.0,
                "temp_c": 39.0,
                "clock_mhz": 1755.0,
                "ecc_uncorrected": 0,
            },
            {
                **H100,
                "device_uuid": "77aa88bb-1234-4cde-9f01-23456789abcd",
                "index": "2",
                "pci_bus_id": "00000000:5D:00.0",
                "util_pct": 0.0,
                "mem_used_bytes": 0,
                "power_limit_w": 700.0,
                "temp_c": 31.0,
                "clock_mhz": 345.0,
            },
        ]
    ]


ACTIVITY = "nvidia_smi/mixed-query-gpu-csv-activity-synthetic.csv"


def test_full_query_reads_video_engines_throttling_and_retired_rows(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    samples, stats = parse_csv(fixture_text(ACTIVITY))
    assert stats.dropped == 0, stats.problems
    assert [flat(s) for s in samples] == [
        pytest.approx(e)
        for e in [
            {
                **H100,
                "device_uuid": "8f4c1d2e-5a6b-4c7d-9e8f-0a1b2c3d4e5f",
                "index": "0",
                "pci_bus_id": "00000000:19:00.0",
                "util_pct": 97.0,
                "mem_used_bytes": 71680 * MiB,
                "power_w": 688.1,
                "power_limit_w": 700.0,
                "temp_c": 71.0,
                "clock_mhz": 1755.0,
                "ecc_uncorrected": 0,
                "enc_util_pct": 0.0,
                "dec_util_pct": 0.0,
                "throttle_power": True,
                "throttle_thermal": False,
                "mem_rows_retired": 0,  # remapped rows 0 + 0; retired pages [N/A] on Hopper
                "mem_repair_pending": False,
                "mem_repair_failed": False,
            },
            {
                "vendor": "nvidia",
                "kind": "gpu",
                "model": "NVIDIA L4",
                "device_uuid": "4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f60718",
                "index": "1",
                "pci_bus_id": "00000000:3B:00.0",
                "util_pct": 64.0,
                "mem_used_bytes": 4120 * MiB,
                "mem_total_bytes": 23034 * MiB,
                "power_w": 61.2,
                "power_limit_w": 72.0,
                "temp_c": 83.0,
                "clock_mhz": 1500.0,
                "ecc_uncorrected": 0,
                "enc_util_pct": 63.0,
                "dec_util_pct": 88.0,
                "throttle_power": False,
                "throttle_thermal": True,
                "mem_rows_retired": 1,
                "mem_repair_pending": True,
                "mem_repair_failed": False,
            },
            {
                "vendor": "nvidia",
                "kind": "gpu",
                "model": "Tesla V100-SXM2-32GB",
                "device_uuid": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d",
                "index": "2",
                "pci_bus_id": "00000000:5D:00.0",
                "util_pct": 0.0,
                "mem_used_bytes": 0,
                "mem_total_bytes": 32768 * MiB,
                "power_w": 41.0,
                "power_limit_w": 300.0,
                "temp_c": 35.0,
                "clock_mhz": 135.0,
                "ecc_uncorrected": 1,
                "enc_util_pct": 0.0,
                "dec_util_pct": 0.0,
                "throttle_power": False,  # 0x1 is idle, not throttling
                "throttle_thermal": False,
                "mem_rows_retired": 3,
                "mem_repair_pending": True,
                # remapped_rows.failure [N/A]: mem_repair_failed stays null
            },
        ]
    ]


def test_a_legacy_query_row_parses_with_the_newer_fields_null(fixture_text: Callable[[str], str]) -> None:
    samples, stats = parse_csv(fixture_text(FIXTURE))
    assert len(samples) == 3 and stats.count("csv_column_mismatch") == 0
    newer = ("enc_util_pct", "dec_util_pct", "throttle_power", "throttle_thermal", "mem_rows_retired")
    newer += ("mem_repair_pending", "mem_repair_failed", "sm_active_pct", "tensor_active_pct", "xid_last")
    assert all(getattr(s, name) is None for s in samples for name in newer)


def test_fetch_falls_back_to_the_legacy_query_when_the_driver_refuses_a_newer_field(tmp_path: Path) -> None:
    csv_file = Path(__file__).resolve().parents[2] / "fixtures" / FIXTURE
    refuse = """echo 'Field "remapped_rows.pending" is not a valid field to query.'; exit 2"""
    binary = _script(
        tmp_path,
        f'echo "$@" >> {tmp_path}/argv\ncase "$1" in *remapped_rows*) {refuse};; esac\ncat {csv_file}\n',
    )
    collector = build_collector("nvidia-smi", {"binary": str(binary)})
    assert [s.index for s in collector.collect()] == ["0", "1", "2"]
    assert [s.index for s in collector.collect()] == ["0", "1", "2"]
    asked = (tmp_path / "argv").read_text().splitlines()
    legacy = " ".join(query_command(str(binary), LEGACY_QUERY_FIELDS)[1:])
    assert asked == [" ".join(query_command(str(binary))[1:]), legacy, legacy]  # the fallback is remembered


def test_na_and_not_supported_become_null_and_are_counted(fixture_text: Callable[[str], str]) -> None:
    samples, stats = parse_csv(fixture_text(FIXTURE))
    assert samples[1].util_pct is None  # [N/A]
    assert samples[2].power_w is None  # N/A
    assert samples[2].ecc_uncorrected is None  # [Not Supported]
    assert stats.count("not_available") == 3
    assert stats.dropped == 0


def test_row_with_wrong_column_count_is_dropped_and_counted(fixture_text: Callable[[str], str]) -> None:
    text = fixture_text(FIXTURE) + "3, GPU-ffff, NVIDIA H100 80GB HBM3\n"
    samples, stats = parse_csv(text)
    assert len(samples) == 3
    assert stats.count("csv_column_mismatch") == 1


def test_unparseable_number_and_bracketed_error_become_null_and_are_counted() -> None:
    row = "0, GPU-a, NVIDIA H100, 00000000:19:00.0, busy, 1, 2, [Unknown Error], 700, 47, 1980, 0\n"
    (sample,), stats = parse_csv(row)
    assert (sample.util_pct, sample.power_w, sample.temp_c) == (None, None, 47.0)
    assert stats.count("value_error") == 2


def test_query_command_asks_for_every_query_field_without_units_or_header() -> None:
    argv = query_command("/usr/bin/nvidia-smi")
    assert argv == [
        "/usr/bin/nvidia-smi",
        "--query-gpu=" + ",".join(QUERY_FIELDS),
        "--format=csv,noheader,nounits",
    ]


def _script(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "nvidia-smi"
    path.write_text("#!/bin/sh\n" + body, encoding="utf-8")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_fetch_runs_the_binary_and_parse_reads_its_output(tmp_path: Path) -> None:
    csv_file = Path(__file__).resolve().parents[2] / "fixtures" / FIXTURE
    binary = _script(tmp_path, f'echo "$@" > {tmp_path}/argv\ncat {csv_file}\n')
    collector = build_collector("nvidia-smi", {"binary": str(binary)})
    samples = collector.collect()
    assert [s.index for s in samples] == ["0", "1", "2"]
    assert (tmp_path / "argv").read_text().split() == query_command(str(binary))[1:]


def test_fetch_without_the_binary_reports_no_driver() -> None:
    collector = build_collector("nvidia-smi", {"binary": "/nonexistent/nvidia-smi"})
    with pytest.raises(CollectorUnavailable, match=r"^no NVIDIA driver on this host: '/nonexistent/nvidia-smi'"):
        collector.fetch()


def test_fetch_of_a_failing_binary_raises_with_its_first_line(tmp_path: Path) -> None:
    binary = _script(
        tmp_path, 'echo "NVIDIA-SMI has failed because it couldn\'t communicate with the driver."\nexit 9\n'
    )
    collector = build_collector("nvidia-smi", {"binary": str(binary)})
    with pytest.raises(CollectorError, match=r"nvidia-smi exited with status 9: NVIDIA-SMI has failed"):
        collector.fetch()


def test_fetch_of_a_hung_binary_times_out(tmp_path: Path) -> None:
    binary = _script(tmp_path, "exec sleep 5\n")
    collector = build_collector("nvidia-smi", {"binary": str(binary), "timeout_s": 0.2})
    with pytest.raises(CollectorError, match=r"no answer within 0.2 s"):
        collector.fetch()
