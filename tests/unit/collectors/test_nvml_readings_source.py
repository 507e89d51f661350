# ruff: noqa: N802 -- the stand-in NVML module mirrors pynvml's camelCase function names
"""NVML: parsing raw readings (golden, NotSupported, GpuIsLost), the fetch half against a stand-in NVML
module, the no-driver error and the capture round trip."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pynvml  # type: ignore[import-untyped]
import pytest

from collectors.base import CollectorUnavailable, build_collector
from collectors.nvml import NvmlCollector, NvmlConfig, dump_capture, parse_readings
from kcloud.records import DeviceSample

Flat = Callable[[DeviceSample], dict[str, Any]]
MiB = 2**20
FIXTURE = "nvml/h100-sxm5-mig-capture1-synthetic.json"
H100 = {"vendor": "nvidia", "kind": "gpu", "model": "NVIDIA H100 80GB HBM3"}


def _capture(fixture_text: Callable[[str], str]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(fixture_text(FIXTURE))
    return loaded


def test_capture_gives_whole_gpus_mig_slices_and_the_lost_gpu(fixture_text: Callable[[str], str], flat: Flat) -> None:
    samples, stats = parse_readings(_capture(fixture_text))
    gpu1 = {
        **H100,
        "device_uuid": "1a2b3c4d-0000-4e5f-8a9b-cdef01234567",
        "index": "1",
        "pci_bus_id": "00000000:3B:00.0",
        "health": "ok",
    }
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
                "mem_total_bytes": 81559 * MiB,
                "power_w": 412.337,
                "power_limit_w": 700.0,
                "energy_j": 8123456.789,
                "temp_c": 47.0,
                "clock_mhz": 1980.0,
                "ecc_uncorrected": 0,
                "health": "ok",
            },
            {
                **gpu1,
                "mem_used_bytes": 10282 * MiB,
                "mem_total_bytes": 81559 * MiB,
                "power_w": 201.5,
                "power_limit_w": 650.0,
                "energy_j": 5000000.0,
                "temp_c": 39.0,
                "clock_mhz": 1755.0,
                "ecc_uncorrected": 0,
            },
            {**gpu1, "subdevice": "mig:gi1", "mem_used_bytes": 10240 * MiB, "mem_total_bytes": 40320 * MiB},
            {**gpu1, "subdevice": "mig:gi2", "mem_used_bytes": 13 * MiB, "mem_total_bytes": 40320 * MiB},
            {
                "vendor": "nvidia",
                "kind": "gpu",
                "device_uuid": "77aa88bb-1234-4cde-9f01-23456789abcd",
                "index": "2",
                "health": "failed",
            },
        ]
    ]
    assert dict(stats.problems) == {"not_supported": 3, "gpu_lost": 1}


ACTIVITY = "nvml/h100-l4-capture2-synthetic.json"


def test_capture_reads_gpm_activity_video_engines_throttling_nvlink_and_repaired_memory(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    samples, stats = parse_readings(json.loads(fixture_text(ACTIVITY)))
    common = {"health": "ok", "ecc_uncorrected": 0}
    assert [flat(s) for s in samples] == [
        pytest.approx(e)
        for e in [
            {
                **H100,
                **common,
                "device_uuid": "3c9e1f70-2b4d-4a8e-9c1f-5d6e7f809a1b",
                "index": "0",
                "pci_bus_id": "00000000:19:00.0",
                "util_pct": 98.0,
                "mem_used_bytes": 70 * 2**30,
                "mem_total_bytes": 80 * 2**30,
                "power_w": 688.1,
                "power_limit_w": 700.0,
                "energy_j": 9123456.789,
                "temp_c": 71.0,
                "clock_mhz": 1755.0,
                "sm_active_pct": 91.5,
                "tensor_active_pct": 62.25,
                "dram_active_pct": 47.0,
                "enc_util_pct": 0.0,
                "dec_util_pct": 0.0,
                "throttle_power": True,
                "throttle_thermal": False,
                "nvlink_errors": 4,
                "mem_rows_retired": 2,  # remapped rows; retired pages NotSupported after Volta/Turing
                "mem_repair_pending": False,
                "mem_repair_failed": False,
            },
            {
                **common,
                "vendor": "nvidia",
                "kind": "gpu",
                "model": "NVIDIA L4",
                "device_uuid": "4e5f6a7b-8c9d-4e0f-a1b2-c3d4e5f60718",
                "index": "1",
                "pci_bus_id": "00000000:3B:00.0",
                "util_pct": 64.0,
                "mem_used_bytes": 4 * 2**30,
                "mem_total_bytes": 22 * 2**30,
                "power_w": 61.2,
                "power_limit_w": 72.0,
                "energy_j": 412345.678,
                "temp_c": 83.0,
                "clock_mhz": 1500.0,
                "sm_active_pct": 7.5,
                "tensor_active_pct": 0.0,
                "dram_active_pct": 11.0,
                "enc_util_pct": 63.0,
                "dec_util_pct": 88.0,
                "throttle_power": False,
                "throttle_thermal": True,
                # no NVLink on a PCIe card: nvlink_errors NotSupported, so null
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
                "health": "ok",
                "util_pct": 0.0,
                "mem_used_bytes": 0,
                "mem_total_bytes": 32 * 2**30,
                "power_w": 41.0,
                "power_limit_w": 300.0,
                "energy_j": 77000.0,
                "temp_c": 35.0,
                "clock_mhz": 135.0,
                "ecc_uncorrected": 1,
                "enc_util_pct": 0.0,
                "dec_util_pct": 0.0,
                "throttle_power": False,  # 0x1 is GPU idle, not throttling
                "throttle_thermal": False,
                "nvlink_errors": 0,
                "mem_rows_retired": 3,  # retired pages: two single-bit, one double-bit
                "mem_repair_pending": True,
                # no GPM before Hopper, no row remapping before Ampere: those stay null
            },
        ]
    ]
    assert dict(stats.problems) == {"not_supported": 14}


def test_a_capture_without_the_newer_readings_leaves_them_null(fixture_text: Callable[[str], str]) -> None:
    samples, _ = parse_readings(_capture(fixture_text))
    newer = ("sm_active_pct", "tensor_active_pct", "enc_util_pct", "throttle_power", "nvlink_errors", "xid_last")
    assert all(getattr(s, name) is None for s in samples for name in newer)


def test_not_supported_reading_becomes_null_not_zero(fixture_text: Callable[[str], str]) -> None:
    samples, stats = parse_readings(_capture(fixture_text))
    assert samples[1].util_pct is None
    assert stats.first_detail["not_supported"] == "gpu 1: utilization_gpu_pct: NotSupported (Not Supported)"


def test_lost_gpu_is_reported_failed_under_its_remembered_uuid(fixture_text: Callable[[str], str]) -> None:
    samples, stats = parse_readings(_capture(fixture_text))
    lost = samples[-1]
    assert (lost.device_uuid, lost.health, lost.power_w) == (
        "77aa88bb-1234-4cde-9f01-23456789abcd",
        "failed",
        None,
    )
    assert stats.count("gpu_lost") == 1


def test_lost_gpu_never_seen_before_is_dropped_and_counted() -> None:
    raw = {"devices": [{"index": 0, "handle_error": {"error": "GpuIsLost", "message": "GPU is lost"}}]}
    samples, stats = parse_readings(raw)
    assert samples == []
    assert stats.count("no_device_identity") == 1


@pytest.mark.parametrize("raw", [{}, {"devices": "x"}, []])
def test_malformed_capture_is_counted_not_raised(raw: Any) -> None:
    samples, stats = parse_readings(raw)
    assert samples == [] and stats.count("invalid_capture") == 1


# --- fetch, against a stand-in for the pynvml module --------------------------------------------------


class _Memory:
    def __init__(self, used: int, total: int) -> None:
        self.used, self.total = used, total


class _FakeNvml:
    """Two GPUs: 0 answers everything but ECC; 1 answers until `lose()` makes it fall off the bus."""

    NVMLError = pynvml.NVMLError
    NVMLError_NotFound = pynvml.NVMLError_NotFound
    NVML_TEMPERATURE_GPU = pynvml.NVML_TEMPERATURE_GPU
    NVML_CLOCK_SM = pynvml.NVML_CLOCK_SM
    NVML_MEMORY_ERROR_TYPE_UNCORRECTED = pynvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED
    NVML_VOLATILE_ECC = pynvml.NVML_VOLATILE_ECC

    NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS = 0
    NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR = 1
    NVML_NVLINK_MAX_LINKS = pynvml.NVML_NVLINK_MAX_LINKS
    NVML_GPM_METRICS_GET_VERSION = 1
    NVMLError_NotSupported = pynvml.NVMLError_NotSupported

    def __init__(self) -> None:
        self.lost = False
        self.init_calls = 0
        self.shutdown_calls = 0
        self.gpm_allocated = self.gpm_freed = self.gpm_ticks = 0

    def _check(self, handle: int) -> None:
        if handle == 1 and self.lost:
            raise pynvml.NVMLError_GpuIsLost()

    def nvmlInit(self) -> None:
        self.init_calls += 1

    def nvmlShutdown(self) -> None:
        self.shutdown_calls += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        return 2

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetUUID(self, h: int) -> str:
        self._check(h)
        return f"GPU-0000000{h}-aaaa-bbbb-cccc-dddddddddddd"

    def nvmlDeviceGetName(self, h: int) -> str:
        self._check(h)
        return "NVIDIA H100 80GB HBM3"

    def nvmlDeviceGetPciInfo(self, h: int) -> SimpleNamespace:
        self._check(h)
        return SimpleNamespace(busId=f"00000000:1{h}:00.0".encode())

    def nvmlDeviceGetUtilizationRates(self, h: int) -> SimpleNamespace:
        self._check(h)
        return SimpleNamespace(gpu=50 + h, memory=10)

    def nvmlDeviceGetMemoryInfo(self, h: int) -> _Memory:
        self._check(h)
        return _Memory(used=MiB * (h + 1), total=81559 * MiB)

    def nvmlDeviceGetPowerUsage(self, h: int) -> int:
        self._check(h)
        return 250500

    def nvmlDeviceGetEnforcedPowerLimit(self, h: int) -> int:
        self._check(h)
        return 700000

    def nvmlDeviceGetTotalEnergyConsumption(self, h: int) -> int:
        self._check(h)
        return 123456789

    def nvmlDeviceGetTemperature(self, h: int, sensor: int) -> int:
        self._check(h)
        return 40 + h

    def nvmlDeviceGetClockInfo(self, h: int, clock: int) -> int:
        self._check(h)
        return 1980

    def nvmlDeviceGetTotalEccErrors(self, h: int, kind: int, counter: int) -> int:
        self._check(h)
        if h == 0:
            raise pynvml.NVMLError_NotSupported()
        return 0

    def nvmlDeviceGetMigMode(self, h: int) -> list[int]:
        self._check(h)
        return [0, 0]

    # GPU 0 is an SXM H100 doing AI work; GPU 1 a PCIe card doing video, without NVLink or GPM
    def nvmlDeviceGetEncoderUtilization(self, h: int) -> list[int]:
        self._check(h)
        return [0 if h == 0 else 63, 167000]

    def nvmlDeviceGetDecoderUtilization(self, h: int) -> list[int]:
        self._check(h)
        return [0 if h == 0 else 88, 167000]

    def nvmlDeviceGetCurrentClocksEventReasons(self, h: int) -> int:
        self._check(h)
        return 0x4 if h == 0 else 0x40

    def nvmlDeviceGetNvLinkState(self, h: int, link: int) -> int:
        self._check(h)
        if h == 1 or link >= 18:
            raise pynvml.NVMLError_NotSupported() if h == 1 else pynvml.NVMLError_InvalidArgument()
        return 1 if link < 2 else 0  # two active links

    def nvmlDeviceGetNvLinkErrorCounter(self, h: int, link: int, counter: int) -> int:
        return {pynvml.NVML_NVLINK_ERROR_DL_CRC_FLIT: 3, pynvml.NVML_NVLINK_ERROR_DL_REPLAY: 1}.get(counter, 0)

    def nvmlDeviceGetRetiredPages(self, h: int, cause: int) -> list[int]:
        raise pynvml.NVMLError_NotSupported()

    def nvmlDeviceGetRetiredPagesPendingStatus(self, h: int) -> int:
        raise pynvml.NVMLError_NotSupported()

    def nvmlDeviceGetRemappedRows(self, h: int) -> tuple[int, int, int, int]:
        self._check(h)
        return (2, 0, 0, 0) if h == 0 else (0, 1, 1, 0)

    def nvmlGpmQueryDeviceSupport(self, h: int) -> SimpleNamespace:
        return SimpleNamespace(isSupportedDevice=int(h == 0))

    def nvmlGpmSampleAlloc(self) -> SimpleNamespace:
        self.gpm_allocated += 1
        return SimpleNamespace(taken=None)

    def nvmlGpmSampleFree(self, sample: SimpleNamespace) -> None:
        self.gpm_freed += 1

    def nvmlGpmSampleGet(self, h: int, sample: SimpleNamespace) -> SimpleNamespace:
        self.gpm_ticks += 1
        sample.taken = self.gpm_ticks
        return sample

    def nvmlGpmMetricsGet(self, request: SimpleNamespace) -> SimpleNamespace:
        assert request.sample1.taken < request.sample2.taken  # from the earlier sample to the later
        values = {2: 91.5, 5: 62.25, 10: 47.0}
        for metric in request.metrics[: request.numMetrics]:
            metric.value, metric.nvmlReturn = values[metric.metricId], 0
        return request

    def c_nvmlGpmMetricsGet_t(self) -> SimpleNamespace:
        return SimpleNamespace(metrics=[SimpleNamespace(metricId=0, value=0.0, nvmlReturn=0) for _ in range(8)])

    def lose(self) -> None:
        self.lost = True


def test_fetch_records_each_reading_or_its_error_in_nvml_units() -> None:
    fake = _FakeNvml()
    collector = NvmlCollector(NvmlConfig(), nvml=fake)
    raw = collector.fetch()
    gpu0 = raw["devices"][0]["readings"]
    assert raw["driver_version"] == {"value": "550.54.15"}
    assert gpu0["power_mw"] == {"value": 250500}
    assert gpu0["pci_bus_id"] == {"value": "00000000:10:00.0"}
    assert gpu0["memory_used_bytes"] == {"value": MiB}
    assert gpu0["ecc_uncorrected_volatile"] == {"error": "NotSupported", "message": "Not Supported"}
    samples = collector.parse(raw)
    assert [(s.index, s.power_w, s.ecc_uncorrected, s.health) for s in samples] == [
        ("0", 250.5, None, "ok"),
        ("1", 250.5, 0, "ok"),
    ]
    assert [s.energy_j for s in samples] == pytest.approx([123456.789, 123456.789])


def test_fetch_reads_activity_and_health_and_gpm_only_from_the_second_tick() -> None:
    fake = _FakeNvml()
    collector = NvmlCollector(NvmlConfig(), nvml=fake)
    first = collector.collect()
    assert [s.sm_active_pct for s in first] == [None, None]  # GPM needs an earlier sample
    second = collector.collect()
    picked = ("sm_active_pct", "tensor_active_pct", "dram_active_pct", "enc_util_pct", "dec_util_pct")
    picked += ("throttle_power", "throttle_thermal", "nvlink_errors", "mem_rows_retired", "mem_repair_pending")
    assert [tuple(getattr(s, name) for name in picked) for s in second] == [
        (91.5, 62.25, 47.0, 0.0, 0.0, True, False, 8, 2, False),  # NVLink: (CRC flit 3 + replay 1) x 2 links
        (None, None, None, 63.0, 88.0, False, True, None, 1, True),  # no GPM, no NVLink: null, not 0
    ]
    assert all(s.xid_last is None for s in second)  # NVML has XIDs only as events
    collector.close()
    assert fake.gpm_allocated == fake.gpm_freed == 2  # GPU 0's two samples, freed on close


def test_gpu_lost_after_an_earlier_tick_keeps_its_uuid_and_reports_failed() -> None:
    fake = _FakeNvml()
    collector = NvmlCollector(NvmlConfig(), nvml=fake)
    collector.collect()
    fake.lose()
    samples = collector.collect()
    assert [(s.device_uuid, s.health, s.power_w) for s in samples][1] == (
        "00000001-aaaa-bbbb-cccc-dddddddddddd",
        "failed",
        None,
    )
    assert fake.init_calls == 1
    collector.close()
    assert fake.shutdown_calls == 1


def test_no_driver_raises_collector_unavailable_with_a_one_line_message(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_driver() -> None:
        raise pynvml.NVMLError(pynvml.NVML_ERROR_DRIVER_NOT_LOADED)

    monkeypatch.setattr(pynvml, "nvmlInit", no_driver)
    collector = build_collector("nvml", {})
    with pytest.raises(CollectorUnavailable) as info:
        collector.fetch()
    message = str(info.value)
    assert message.startswith("no NVIDIA driver on this host: Driver Not Loaded (NVMLError_DriverNotLoaded)")
    assert "\n" not in message


def test_capture_written_as_json_replays_to_the_same_samples(tmp_path: Path) -> None:
    fake = _FakeNvml()
    collector = NvmlCollector(NvmlConfig(), nvml=fake)
    raw = collector.fetch()
    path = dump_capture(raw, tmp_path / "h100-capture1.json")
    replay = build_collector("nvml", {"replay_file": str(path)})
    assert replay.collect() == collector.parse(raw)
