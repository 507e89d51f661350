"""Golden tests: each exporter fixture parses to exactly these canonical samples, device by device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from collectors.prom import parse_page
from collectors.prom_maps import EXPORTERS
from kcloud.records import DeviceSample

Flat = Callable[[DeviceSample], dict[str, Any]]
MiB = 2**20
GiB = 2**30

H100 = {"vendor": "nvidia", "kind": "gpu", "model": "NVIDIA H100 80GB HBM3"}
RBLN = {"vendor": "rebellions", "kind": "npu", "model": "RBLN-CA25"}
RBLN_POD = {
    "attribution.namespace": "default",
    "attribution.pod": "rebel-device-plugin-testpod-1",
    "attribution.container": "ubuntu",
}


def _golden(text: str, exporter: str, flat: Flat) -> list[dict[str, Any]]:
    samples, stats = parse_page(text, EXPORTERS[exporter])
    assert stats.dropped == 0, stats.problems
    return [flat(s) for s in samples]


def _assert_golden(got: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """Same devices in the same order, same fields; floats compared to 1e-6 relative (pytest.approx)."""
    assert got == [pytest.approx(e) for e in expected]


def test_dcgm_issue58_excerpt_gives_two_titan_v_with_sm_clock(fixture_text: Callable[[str], str], flat: Flat) -> None:
    got = _golden(fixture_text("prometheus/titan-v-dcgm-exporter-issue58.prom"), "dcgm", flat)
    common = {"vendor": "nvidia", "kind": "gpu", "model": "NVIDIA TITAN V", "clock_mhz": 135.0}
    _assert_golden(
        got,
        [
            {**common, "device_uuid": "55274b56-9033-f166-7723-77088b0ff94d", "index": "0"},
            {**common, "device_uuid": "dad58a68-8239-6bb7-1f07-539b85fabfee", "index": "1"},
        ],
    )


def test_dcgm_h100_page_gives_whole_gpu_mig_parent_and_two_mig_slices(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    samples, stats = parse_page(
        fixture_text("prometheus/h100-sxm5-dcgm-exporter-3.3-synthetic.prom"), EXPORTERS["dcgm"]
    )
    gpu1 = {
        **H100,
        "device_uuid": "1a2b3c4d-0000-4e5f-8a9b-cdef01234567",
        "index": "1",
        "pci_bus_id": "00000000:3B:00.0",
    }
    _assert_golden(
        [flat(s) for s in samples],
        [
            {
                **H100,
                "device_uuid": "8f4c1d2e-5a6b-4c7d-9e8f-0a1b2c3d4e5f",
                "index": "0",
                "pci_bus_id": "00000000:19:00.0",
                "util_pct": 87.0,
                "mem_used_bytes": 61440 * MiB,
                "mem_total_bytes": (61440 + 18985 + 559) * MiB,
                "power_w": 412.337,
                "power_limit_w": 700.0,
                "energy_j": 8123456.789,
                "temp_c": 47.0,
                "clock_mhz": 1980.0,
                "ecc_uncorrected": 0,
                "xid_last": 0,
                "attribution.namespace": "llm",
                "attribution.pod": "vllm-0",
                "attribution.container": "vllm",
            },
            {
                **gpu1,
                "power_w": 201.5,
                "power_limit_w": 650.0,
                "energy_j": 5000000.0,
                "temp_c": 39.0,
                "clock_mhz": 1755.0,
                "xid_last": 0,  # device-wide: on the GPU, not on its MIG slices
            },
            {
                **gpu1,
                "subdevice": "mig:gi1",
                "util_pct": 42.5,
                "mem_used_bytes": 10240 * MiB,
                "mem_total_bytes": (10240 + 30238 + 42) * MiB,
                "attribution.namespace": "research",
                "attribution.pod": "finetune-7b-0",
                "attribution.container": "trainer",
            },
            {
                **gpu1,
                "subdevice": "mig:gi2",
                "util_pct": 0.0,
                "mem_used_bytes": 0,
                "mem_total_bytes": (0 + 40438 + 42) * MiB,
            },
        ],
    )
    assert dict(stats.problems) == {"blank_value": 2}  # the MIG GPU's ECC counter, on both slices' series


def test_dcgm_profiling_page_tells_training_from_video_and_reads_every_health_signal(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/h100-sxm5-dcgm-exporter-profiling-synthetic.prom"), "dcgm", flat)
    _assert_golden(
        got,
        [
            {
                **H100,
                "device_uuid": "3c9e1f70-2b4d-4a8e-9c1f-5d6e7f809a1b",
                "index": "0",
                "pci_bus_id": "00000000:19:00.0",
                "util_pct": 98.0,
                "sm_active_pct": 92.3,
                "tensor_active_pct": 61.4,
                "dram_active_pct": 48.2,
                "enc_util_pct": 0.0,
                "dec_util_pct": 0.0,
                "xid_last": 0,  # DCGM's INT32 blank: no XID seen yet, not "not reported"
                "throttle_power": True,  # bit 0x4, SW power cap
                "throttle_thermal": False,
                "nvlink_errors": 4,  # CRC flit 3 + CRC data 1 + replay 0 + recovery 0
                "mem_rows_retired": 2,
                "mem_repair_pending": False,
                "mem_repair_failed": False,
                "attribution.namespace": "research-sft",
                "attribution.pod": "llama-3-1-8b-sft-worker-0",
                "attribution.container": "trainer",
            },
            {
                **H100,
                "device_uuid": "7d2a5b81-6c3e-4f90-8a1b-2c3d4e5f6a7b",
                "index": "1",
                "pci_bus_id": "00000000:3B:00.0",
                "util_pct": 71.0,
                "sm_active_pct": 8.1,
                "tensor_active_pct": 0.0,
                "dram_active_pct": 12.5,
                "enc_util_pct": 78.0,
                "dec_util_pct": 85.0,
                "xid_last": 63,
                "throttle_power": False,
                "throttle_thermal": True,  # 0x60: SW and HW thermal slowdown
                # no NVLink series on the page: nvlink_errors stays null
                "mem_rows_retired": 1,
                "mem_repair_pending": True,
                "mem_repair_failed": False,
                "attribution.namespace": "media-chat",
                "attribution.pod": "llama-3-1-8b-5f7c9d2e1a-x7k2p",
                "attribution.container": "vllm",
            },
        ],
    )


def test_dcgm_issue317_excerpt_reads_tensor_activity_per_mig_slice_and_xid_per_gpu(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/a30-mig-dcgm-exporter-issue317.prom"), "dcgm", flat)
    a30 = {"vendor": "nvidia", "kind": "gpu", "model": "NVIDIA A30"}
    gpu0 = {**a30, "device_uuid": "265c9814-6156-355b-e589-ff2064894f16", "index": "0"}
    gpu1 = {**a30, "device_uuid": "2d20791a-b4a6-ba59-97f1-e95b99fe5b49", "index": "1"}
    _assert_golden(
        got,
        [
            {**gpu0, "xid_last": 0},
            *({**gpu0, "subdevice": f"mig:gi{i}", "tensor_active_pct": 0.0} for i in (3, 4, 5, 6)),
            {**gpu1, "xid_last": 0},
            {**gpu1, "subdevice": "mig:gi3", "tensor_active_pct": 0.0},
        ],
    )


def test_dcgm_pr736_excerpt_reads_the_video_engines_of_an_ada_card(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/rtx2000ada-dcgm-exporter-pr736.prom"), "dcgm", flat)
    _assert_golden(
        got,
        [
            {
                "vendor": "nvidia",
                "kind": "gpu",
                "model": "NVIDIA RTX 2000 Ada Generation",
                "device_uuid": "fc60126e-514d-3522-2828-c5daa8e99d85",
                "index": "1",
                "pci_bus_id": "00000000:B1:00.0",
                "enc_util_pct": 9.0,
                "dec_util_pct": 46.0,
            }
        ],
    )


def test_dcgm_volta_page_reads_retired_pages_and_the_old_throttle_bitmask(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/v100-sxm2-dcgm-exporter-3.1-retired-pages-synthetic.prom"), "dcgm", flat)
    _assert_golden(
        got,
        [
            {
                "vendor": "nvidia",
                "kind": "gpu",
                "model": "Tesla V100-SXM2-32GB",
                "device_uuid": "a6158b59-0000-1e63-0068-9178c4298abd",
                "index": "0",
                "throttle_power": True,  # 0x80 HW power-brake slowdown (0x8 HW slowdown alone says nothing)
                "throttle_thermal": False,
                "mem_rows_retired": 3,  # two single-bit and one double-bit retired page
                "mem_repair_pending": True,
                "xid_last": 48,
            }
        ],
    )


_ACTIVITY_HEALTH = (
    "sm_active_pct",
    "tensor_active_pct",
    "dram_active_pct",
    "enc_util_pct",
    "dec_util_pct",
    "xid_last",
    "throttle_power",
    "throttle_thermal",
    "nvlink_errors",
    "mem_rows_retired",
    "mem_repair_pending",
    "mem_repair_failed",
)


@pytest.mark.parametrize(
    ("fixture", "exporter"),
    [
        ("titan-v-dcgm-exporter-issue58.prom", "dcgm"),
        ("rngd-furiosa-exporter-2025.1.prom", "furiosa"),
        ("rbln-ca25-rbln-exporter-new-names-synthetic.prom", "rbln"),
        ("rbln-ca25-rbln-exporter-old-names-synthetic.prom", "rbln"),
        ("ascend910b-npu-exporter-v6-synthetic.prom", "ascend"),
        ("mi300x-amd-device-metrics-exporter-v1.2-synthetic.prom", "amd"),
        ("gaudi2-habana-metric-exporter-1.18-synthetic.prom", "gaudi"),
        ("rtx2080super-nvidia-gpu-exporter-readme.prom", "nvidia_smi_exporter"),
    ],
)
def test_a_page_without_the_activity_and_health_series_leaves_them_null(
    fixture_text: Callable[[str], str], fixture: str, exporter: str
) -> None:
    samples, _ = parse_page(fixture_text(f"prometheus/{fixture}"), EXPORTERS[exporter])
    assert samples
    for sample in samples:
        assert {name: getattr(sample, name) for name in _ACTIVITY_HEALTH} == dict.fromkeys(_ACTIVITY_HEALTH)


def test_furiosa_readme_excerpt_gives_one_rngd_with_averaged_cores(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/rngd-furiosa-exporter-2025.1.prom"), "furiosa", flat)
    _assert_golden(
        got,
        [
            {
                "device_uuid": "09512c86-0702-4303-8f40-474746474a40",
                "vendor": "furiosa",
                "kind": "npu",
                "model": "rngd",
                "arch": "rngd",
                "index": "0",
                "pci_bus_id": "0000:c7:00.0",
                "util_pct": 99.68363645361265,
                "power_w": 50.0,
                "temp_c": 67.756,
                "health": "ok",
                "attribution.namespace": "default",
                "attribution.pod": "furiosa",
                "attribution.container": "furiosa",
            }
        ],
    )


def test_furiosa_real_world_example_reads_power_in_microwatts(fixture_text: Callable[[str], str], flat: Flat) -> None:
    got = _golden(fixture_text("prometheus/rngd-furiosa-exporter-readme.prom"), "furiosa", flat)
    _assert_golden(
        got,
        [
            {
                "device_uuid": "uuid",
                "vendor": "furiosa",
                "kind": "npu",
                "model": "rngd",
                "arch": "rngd",
                "index": "0",
                "power_w": 4.795,
                "temp_c": 39.0,
                "health": "ok",
            }
        ],
    )


@pytest.mark.parametrize(
    ("fixture", "mem_total"),
    [
        ("prometheus/rbln-ca25-rbln-exporter-old-names.prom", 15.71875 * GiB),
        ("prometheus/rbln-ca25-rbln-exporter-new-names.prom", 16877882368),
    ],
)
def test_rebellions_readme_excerpts_give_the_same_three_devices_in_both_generations(
    fixture_text: Callable[[str], str], flat: Flat, fixture: str, mem_total: float
) -> None:
    got = _golden(fixture_text(fixture), "rbln", flat)
    _assert_golden(
        got,
        [
            {
                **RBLN,
                **RBLN_POD,
                "device_uuid": "55668c63-d739-4193-8212-ad7ba933520c",
                "index": "0",
                "mem_total_bytes": int(mem_total),
            },
            {
                **RBLN,
                **RBLN_POD,
                "device_uuid": "84389d45-ebf3-4b74-9d80-6ec8a09d8be4",
                "index": "1",
                "temp_c": 54.0,
            },
            {
                **RBLN,
                **RBLN_POD,
                "device_uuid": "8e65fc0d-df7d-4e21-a81b-a76a1a1e69ab",
                "index": "3",
                "health": "ok",
            },
        ],
    )


def test_rebellions_old_names_page_gives_every_field_with_gib_memory(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/rbln-ca25-rbln-exporter-old-names-synthetic.prom"), "rbln", flat)
    _assert_golden(
        got,
        [
            {
                **RBLN,
                "device_uuid": "55668c63-d739-4193-8212-ad7ba933520c",
                "index": "0",
                "util_pct": 78.5,
                "mem_used_bytes": int(9.5 * GiB),
                "mem_total_bytes": int(15.71875 * GiB),
                "power_w": 96.5,
                "temp_c": 57.0,
                "health": "ok",
            },
            {
                **RBLN,
                "device_uuid": "84389d45-ebf3-4b74-9d80-6ec8a09d8be4",
                "index": "1",
                "util_pct": 0.0,
                "mem_used_bytes": int(0.25 * GiB),
                "mem_total_bytes": int(15.71875 * GiB),
                "power_w": 31.0,
                "temp_c": 44.0,
                "health": "ok",
            },
        ],
    )


def test_rebellions_new_names_page_gives_every_field_and_inactive_as_failed(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/rbln-ca25-rbln-exporter-new-names-synthetic.prom"), "rbln", flat)
    _assert_golden(
        got,
        [
            {
                **RBLN,
                **RBLN_POD,
                "device_uuid": "55668c63-d739-4193-8212-ad7ba933520c",
                "index": "0",
                "util_pct": 92.5,
                "mem_used_bytes": 12884901888,
                "mem_total_bytes": 16877882368,
                "power_w": 118.5,
                "temp_c": 61.0,
                "health": "ok",
            },
            {
                **RBLN,
                "device_uuid": "84389d45-ebf3-4b74-9d80-6ec8a09d8be4",
                "index": "1",
                "util_pct": 0.0,
                "mem_used_bytes": 0,
                "mem_total_bytes": 16877882368,
                "power_w": 27.25,
                "temp_c": 43.0,
                "health": "failed",
            },
        ],
    )


def test_ascend_page_gives_two_chips_with_hbm_in_mib_and_health_one_as_ok(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/ascend910b-npu-exporter-v6-synthetic.prom"), "ascend", flat)
    chip = {"vendor": "huawei", "kind": "npu", "model": "Ascend910B3", "mem_total_bytes": 65536 * MiB}
    _assert_golden(
        got,
        [
            {
                **chip,
                "device_uuid": "4a0f3c2e-91b7-11ee-9b21-00163e0a0b0c",
                "index": "0",
                "pci_bus_id": "0000:C1:00.0",
                "util_pct": 36.0,
                "mem_used_bytes": 8192 * MiB,
                "power_w": 188.3,
                "temp_c": 62.0,
                "health": "ok",
                "attribution.namespace": "llm",
                "attribution.pod": "qwen-infer-0",
                "attribution.container": "server",
            },
            {
                **chip,
                "device_uuid": "4a0f3c2e-91b7-11ee-9b21-00163e0a0b0d",
                "index": "1",
                "pci_bus_id": "0000:C2:00.0",
                "util_pct": 0.0,
                "mem_used_bytes": 3 * MiB,
                "power_w": 71.5,
                "temp_c": 41.0,
                "health": "failed",
            },
        ],
    )


def test_amd_page_gives_two_mi300x_with_fallbacks_for_the_second(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/mi300x-amd-device-metrics-exporter-v1.2-synthetic.prom"), "amd", flat)
    gpu = {
        "vendor": "amd",
        "kind": "gpu",
        "model": "AMD Instinct MI300X OAM",
        "mem_total_bytes": 196592 * MiB,
    }
    _assert_golden(
        got,
        [
            {
                **gpu,
                "device_uuid": "c3ff74a1-0000-1000-80e0-c6d49f5b0d86",
                "index": "0",
                "util_pct": 73.0,
                "mem_used_bytes": 65536 * MiB,
                "power_w": 612.0,
                "energy_j": 1.5e6,
                "temp_c": 71.0,
                "ecc_uncorrected": 0,
                "attribution.namespace": "llm",
                "attribution.pod": "sglang-0",
                "attribution.container": "server",
            },
            {
                **gpu,
                "device_uuid": "5dff74a1-0000-1000-8048-71ab2cf0e8d2",
                "index": "1",
                "util_pct": 0.0,
                "mem_used_bytes": 283 * MiB,
                "power_w": 141.0,
                "energy_j": 2.25e5,
                "temp_c": 38.0,
                "ecc_uncorrected": 2,
            },
        ],
    )


def test_gaudi_page_gives_two_gaudi2_with_milliwatts_as_watts(fixture_text: Callable[[str], str], flat: Flat) -> None:
    got = _golden(fixture_text("prometheus/gaudi2-habana-metric-exporter-1.18-synthetic.prom"), "gaudi", flat)
    card = {
        "vendor": "intel",
        "kind": "npu",
        "mem_total_bytes": 103079215104,
        "power_limit_w": 600.0,
        "clock_mhz": 1600.0,
    }
    _assert_golden(
        got,
        [
            {
                **card,
                "device_uuid": "01p0-hl2080a0-15-tnf0b5-06-07-01",
                "index": "0",
                "util_pct": 55.0,
                "mem_used_bytes": 68719476736,
                "power_w": 312.0,
                "temp_c": 44.0,
                "attribution.namespace": "vision",
                "attribution.pod": "resnet-train-0",
            },
            {
                **card,
                "device_uuid": "01p0-hl2080a0-15-tnf0b5-06-07-02",
                "index": "1",
                "util_pct": 0.0,
                "mem_used_bytes": 805306368,
                "power_w": 97.5,
                "temp_c": 31.0,
            },
        ],
    )


def test_nvidia_gpu_exporter_readme_excerpt_takes_identity_from_gpu_info(
    fixture_text: Callable[[str], str], flat: Flat
) -> None:
    got = _golden(fixture_text("prometheus/rtx2080super-nvidia-gpu-exporter-readme.prom"), "nvidia_smi_exporter", flat)
    _assert_golden(
        got,
        [
            {
                "device_uuid": "df6e7a7c-7314-46f8-abc4-b88b36dcf3aa",
                "vendor": "nvidia",
                "kind": "gpu",
                "model": "NVIDIA GeForce RTX 2080 SUPER",
                "index": "0",
                "pci_bus_id": "00000000:71:00.0",
                "util_pct": 0.0,
                "mem_used_bytes": 706740224,
                "mem_total_bytes": 8589934592,
                "power_w": 28.07,
                "power_limit_w": 250.0,
                "temp_c": 34.0,
                "clock_mhz": 6.0,
            }
        ],
    )


def test_nvidia_gpu_exporter_page_converts_ratio_and_hertz(fixture_text: Callable[[str], str], flat: Flat) -> None:
    got = _golden(fixture_text("prometheus/a100-sxm4-nvidia-gpu-exporter-synthetic.prom"), "nvidia_smi_exporter", flat)
    _assert_golden(
        got,
        [
            {
                "device_uuid": "5b9e2d61-7c3a-4f08-b1d2-93e4f5a6b7c8",
                "vendor": "nvidia",
                "kind": "gpu",
                "model": "NVIDIA A100-SXM4-80GB",
                "index": "3",
                "pci_bus_id": "00000000:07:00.0",
                "util_pct": 64.0,
                "mem_used_bytes": 42949672960,
                "mem_total_bytes": 85899345920,
                "power_w": 287.61,
                "power_limit_w": 400.0,
                "temp_c": 52.0,
                "clock_mhz": 1410.0,
                "ecc_uncorrected": 1,
                "enc_util_pct": 12.0,
                "dec_util_pct": 31.0,
            }
        ],
    )
