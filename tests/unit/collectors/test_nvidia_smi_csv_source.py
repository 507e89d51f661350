"""nvidia-smi CSV: golden rows, N/A handling, malformed rows, and the subprocess half."""

from __future__ import annotations

import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collectors.base import CollectorError, CollectorUnavailable, build_collector
from collectors.nvidia_smi import QUERY_FIELDS, parse_csv, query_command
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
