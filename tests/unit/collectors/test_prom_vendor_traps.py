"""Each vendor trap the exporters are known for has a test: unit guards, sentinels, per-core averages,
the parser's `_total` suffix, malformed lines, missing identities and health encodings."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from collectors.base import ParseStats
from collectors.prom import parse_exposition, parse_page
from collectors.prom_maps import EXPORTERS
from collectors.units import DCGM_INT32_BLANK, DCGM_INT64_BLANK

FixtureText = Callable[[str], str]
MiB = 2**20
GiB = 2**30

FURIOSA = 'arch="rngd",core="{core}",device="npu{n}",pci_bus_id="0000:c{n}:00.0",uuid="uuid-{n}"'
DCGM = 'gpu="0",UUID="GPU-8f4c1d2e-5a6b-4c7d-9e8f-0a1b2c3d4e5f",modelName="NVIDIA H100 80GB HBM3"'
ASCEND = 'id="{id}",model_name="Ascend310P3",vdie_id="{uuid}",pcie_bus_info="0000:0B:00.0"'


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


# --- units and magnitude guards ----------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "watts"), [("4795000", 4.795), ("10001", 0.010001), ("180", 180.0), ("10000", None)])
def test_furiosa_power_above_ten_thousand_is_read_as_microwatts(raw: str, watts: float | None) -> None:
    page = _lines(f'furiosa_npu_hw_power{{{FURIOSA.format(core="0-7", n=0)},label="rms"}} {raw}')
    (sample,), stats = parse_page(page, EXPORTERS["furiosa"])
    if watts is None:  # 10 kW taken as W is beyond any card: dropped, not clamped
        assert (sample.power_w, stats.count("out_of_range")) == (None, 1)
    else:
        assert sample.power_w == pytest.approx(watts)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("15.71875", int(15.71875 * GiB)),
        ("1048575", 1048575 * GiB),
        ("1048576", 1048576),
        ("16877882368", 16877882368),
    ],
)
def test_rebellions_memory_below_two_to_the_twenty_is_read_as_gib(raw: str, expected: int) -> None:
    page = _lines(f'RBLN_DEVICE_STATUS:DRAM_TOTAL{{uuid="u-1",name="rbln0"}} {raw}')
    (sample,), _ = parse_page(page, EXPORTERS["rbln"])
    assert sample.mem_total_bytes == expected


def test_dcgm_framebuffer_is_mib_and_energy_is_millijoules() -> None:
    page = _lines(
        "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter",
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{DCGM}}} 123456",
        f"DCGM_FI_DEV_FB_USED{{{DCGM}}} 1024",
        f"DCGM_FI_DEV_FB_FREE{{{DCGM}}} 3072",
    )
    (sample,), _ = parse_page(page, EXPORTERS["dcgm"])
    assert sample.energy_j == pytest.approx(123.456)
    assert (sample.mem_used_bytes, sample.mem_total_bytes) == (GiB, 4 * GiB)


def test_amd_energy_is_microjoules_and_vram_is_mib() -> None:
    labels = 'gpu_id="0",gpu_uuid="c3ff74a1-0000-1000-80e0-c6d49f5b0d86"'
    page = _lines(f"gpu_energy_consumed{{{labels}}} 2500000", f"gpu_total_vram{{{labels}}} 196592")
    (sample,), _ = parse_page(page, EXPORTERS["amd"])
    assert sample.energy_j == pytest.approx(2.5)
    assert sample.mem_total_bytes == 196592 * MiB


@pytest.mark.parametrize(
    ("metric", "value", "field", "expected"),
    [
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "0.425", "util_pct", 42.5),
        ("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "1", "util_pct", 100.0),
    ],
)
def test_dcgm_prof_ratios_are_multiplied_by_one_hundred(metric: str, value: str, field: str, expected: float) -> None:
    (sample,), _ = parse_page(_lines(f"{metric}{{{DCGM}}} {value}"), EXPORTERS["dcgm"])
    assert getattr(sample, field) == pytest.approx(expected)


def test_nvidia_gpu_exporter_ratio_is_multiplied_by_one_hundred() -> None:
    page = _lines('nvidia_smi_utilization_gpu_ratio{uuid="df6e7a7c-7314-46f8-abc4-b88b36dcf3aa"} 0.37')
    (sample,), _ = parse_page(page, EXPORTERS["nvidia_smi_exporter"])
    assert sample.util_pct == pytest.approx(37.0)


# --- DCGM blank sentinels ----------------------------------------------------------------------------


@pytest.mark.parametrize("blank", [DCGM_INT64_BLANK, DCGM_INT64_BLANK + 2, 9223372036854775807])
def test_dcgm_int64_blank_sentinel_becomes_null_and_is_counted(blank: int) -> None:
    page = _lines(
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{DCGM}}} {blank}",
        f"DCGM_FI_DEV_GPU_TEMP{{{DCGM}}} 47",
    )
    (sample,), stats = parse_page(page, EXPORTERS["dcgm"])
    assert (sample.energy_j, sample.temp_c) == (None, 47.0)
    assert stats.count("blank_value") == 1


def test_dcgm_int32_blank_on_a_gauge_becomes_null_but_a_large_counter_does_not() -> None:
    page = _lines(
        f"DCGM_FI_DEV_SM_CLOCK{{{DCGM}}} {DCGM_INT32_BLANK}",
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{DCGM}}} {DCGM_INT32_BLANK}",
    )
    (sample,), stats = parse_page(page, EXPORTERS["dcgm"])
    assert sample.clock_mhz is None
    assert sample.energy_j == pytest.approx(DCGM_INT32_BLANK / 1000)
    assert stats.count("blank_value") == 1


# --- per-core utilisation ----------------------------------------------------------------------------


def test_furiosa_per_core_utilisation_is_averaged_per_device() -> None:
    page = _lines(
        *(
            f"furiosa_npu_core_utilization{{{FURIOSA.format(core=core, n=n)}}} {value}"
            for n, values in ((0, (10, 20, 30, 40)), (1, (100, 100, 50, 50, 0, 0, 0, 0)))
            for core, value in enumerate(values)
        )
    )
    samples, _ = parse_page(page, EXPORTERS["furiosa"])
    assert [(s.device_uuid, s.util_pct) for s in samples] == [("uuid-0", 25.0), ("uuid-1", 37.5)]


def test_furiosa_ambient_temperature_does_not_replace_the_peak() -> None:
    labels = FURIOSA.format(core="0-7", n=0)
    page = _lines(
        f'furiosa_npu_hw_temperature{{{labels},label="ambient"}} 35',
        f'furiosa_npu_hw_temperature{{{labels},label="peak"}} 39',
    )
    (sample,), _ = parse_page(page, EXPORTERS["furiosa"])
    assert sample.temp_c == 39.0


# --- the parser's _total suffix ------------------------------------------------------------------------


def test_parser_appends_total_to_counters_and_the_map_still_matches() -> None:
    page = _lines(
        "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter",
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{DCGM}}} 8123456789",
    )
    parsed = parse_exposition(page, ParseStats(source="test"))
    assert [s.name for s in parsed] == ["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION_total"]
    (sample,), stats = parse_page(page, EXPORTERS["dcgm"])
    assert sample.energy_j == pytest.approx(8123456.789)
    assert stats.produced["DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"] == 1


def test_metric_whose_real_name_ends_in_total_maps_as_spelled() -> None:
    labels = 'gpu_id="0",gpu_uuid="c3ff74a1-0000-1000-80e0-c6d49f5b0d86"'
    page = _lines("# TYPE gpu_ecc_uncorrect_total counter", f"gpu_ecc_uncorrect_total{{{labels}}} 3")
    (sample,), _ = parse_page(page, EXPORTERS["amd"])
    assert sample.ecc_uncorrected == 3


# --- malformed lines -----------------------------------------------------------------------------------


def test_malformed_line_is_skipped_and_counted_without_losing_the_page(fixture_text: FixtureText) -> None:
    page = fixture_text("prometheus/h100-sxm5-dcgm-exporter-3.3-synthetic.prom")
    broken = page.replace(
        "# HELP DCGM_FI_DEV_GPU_UTIL",
        f"DCGM_FI_DEV_GPU_UTIL{{{DCGM} 87\nthis is not exposition text\n# HELP DCGM_FI_DEV_GPU_UTIL",
    )
    whole, _ = parse_page(page, EXPORTERS["dcgm"])
    samples, stats = parse_page(broken, EXPORTERS["dcgm"])
    assert samples == whole
    assert stats.count("malformed_line") == 2
    assert stats.count("page_parse_fallback") == 1
    first_bad = broken.splitlines().index(f"DCGM_FI_DEV_GPU_UTIL{{{DCGM} 87") + 1
    assert stats.first_detail["malformed_line"].startswith(f"line {first_bad}: ")


def test_counter_maps_also_when_the_page_is_parsed_line_by_line() -> None:
    page = _lines(
        "# TYPE DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION counter",
        f"DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION{{{DCGM}}} 5000",
        "garbage{",
    )
    (sample,), stats = parse_page(page, EXPORTERS["dcgm"])
    assert sample.energy_j == pytest.approx(5.0)
    assert stats.count("malformed_line") == 1


def test_non_finite_value_drops_the_field_and_is_counted() -> None:
    page = _lines(f"DCGM_FI_DEV_POWER_USAGE{{{DCGM}}} NaN", f"DCGM_FI_DEV_GPU_TEMP{{{DCGM}}} +Inf")
    (sample,), stats = parse_page(page, EXPORTERS["dcgm"])
    assert (sample.power_w, sample.temp_c) == (None, None)
    assert stats.count("non_finite_value") == 2


def test_value_outside_the_physical_range_drops_only_that_field() -> None:
    page = _lines(f"DCGM_FI_DEV_GPU_TEMP{{{DCGM}}} 900", f"DCGM_FI_DEV_POWER_USAGE{{{DCGM}}} 300")
    (sample,), stats = parse_page(page, EXPORTERS["dcgm"])
    assert (sample.temp_c, sample.power_w) == (None, 300.0)
    assert stats.count("out_of_range") == 1
    assert "temp_c=900.0" in stats.first_detail["out_of_range"]


# --- identity --------------------------------------------------------------------------------------------


def test_sample_without_device_identity_is_dropped_and_counted() -> None:
    page = _lines(
        'npu_chip_info_power{id="0"} 44.7 1613993498553',  # npu-exporter before v5: no vdie_id
        'npu_chip_info_temperature{id="0"} 57 1613993498553',
        f"npu_chip_info_power{{{ASCEND.format(id=1, uuid='a1b2')}}} 40",
    )
    samples, stats = parse_page(page, EXPORTERS["ascend"])
    assert [(s.device_uuid, s.power_w) for s in samples] == [("a1b2", 40.0)]
    assert stats.count("no_device_identity") == 2


def test_unmapped_metrics_without_identity_are_ignored_silently(fixture_text: FixtureText) -> None:
    _, stats = parse_page(
        fixture_text("prometheus/rtx2080super-nvidia-gpu-exporter-readme.prom"),
        EXPORTERS["nvidia_smi_exporter"],
    )
    assert stats.count("no_device_identity") == 0  # go_threads, nvidia_smi_failed_scrapes_total


def test_dcgm_uuid_loses_its_gpu_prefix_and_case() -> None:
    page = _lines('DCGM_FI_DEV_GPU_TEMP{gpu="0",UUID="GPU-8F4C1D2E-5A6B-4C7D-9E8F-0A1B2C3D4E5F"} 47')
    (sample,), _ = parse_page(page, EXPORTERS["dcgm"])
    assert sample.device_uuid == "8f4c1d2e-5a6b-4c7d-9e8f-0a1b2c3d4e5f"


# --- health encodings and priorities -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exporter", "line", "health"),
    [
        ("rbln", 'rbln_npu_health{uuid="u-1",name="rbln0"} 0', "ok"),
        ("rbln", 'rbln_npu_health{uuid="u-1",name="rbln0"} 1', "failed"),
        ("rbln", 'RBLN_DEVICE_STATUS:HEALTH{uuid="u-1",name="rbln0"} 0', "ok"),
        ("ascend", f"npu_chip_info_health_status{{{ASCEND.format(id=0, uuid='a1')}}} 1", "ok"),
        ("ascend", f"npu_chip_info_health_status{{{ASCEND.format(id=0, uuid='a1')}}} 0", "failed"),
        ("furiosa", f"furiosa_npu_alive{{{FURIOSA.format(core='0-7', n=0)}}} 1", "ok"),
        ("furiosa", f"furiosa_npu_alive{{{FURIOSA.format(core='0-7', n=0)}}} 0", "failed"),
    ],
)
def test_vendor_health_codes_map_to_vendor_neutral_states(exporter: str, line: str, health: str) -> None:
    (sample,), _ = parse_page(_lines(line), EXPORTERS[exporter])
    assert sample.health == health


def test_unknown_health_code_is_reported_as_unknown_and_counted() -> None:
    (sample,), stats = parse_page(_lines('rbln_npu_health{uuid="u-1",name="rbln0"} 7'), EXPORTERS["rbln"])
    assert sample.health == "unknown"
    assert stats.count("unknown_health_state") == 1


def test_higher_priority_metric_wins_whatever_the_order_of_lines() -> None:
    labels = 'gpu_id="0",gpu_uuid="c3ff74a1-0000-1000-80e0-c6d49f5b0d86"'
    page = _lines(f"gpu_power_usage{{{labels}}} 598", f"gpu_package_power{{{labels}}} 612")
    (sample,), stats = parse_page(page, EXPORTERS["amd"])
    assert sample.power_w == 612.0
    assert stats.shadowed["gpu_power_usage"] == 1


def test_ascend_ddr_memory_is_used_when_no_hbm_is_reported() -> None:
    labels = ASCEND.format(id=0, uuid="a1")
    page = _lines(f"npu_chip_info_used_memory{{{labels}}} 2818", f"npu_chip_info_total_memory{{{labels}}} 21534")
    (sample,), _ = parse_page(page, EXPORTERS["ascend"])
    assert (sample.mem_used_bytes, sample.mem_total_bytes) == (2818 * MiB, 21534 * MiB)


def test_used_memory_above_total_drops_both_and_is_counted() -> None:
    labels = 'UUID="01P0-X",id="0"'
    page = _lines(f"habanalabs_memory_used_bytes{{{labels}}} 200", f"habanalabs_memory_total_bytes{{{labels}}} 100")
    (sample,), stats = parse_page(page, EXPORTERS["gaudi"])
    assert (sample.mem_used_bytes, sample.mem_total_bytes) == (None, None)
    assert stats.count("memory_inconsistent") == 2


def test_two_pods_on_one_device_keep_the_first_attribution_and_count_the_conflict() -> None:
    a = 'gpu="0",UUID="GPU-1",namespace="a",pod="p-a",container="c"'
    b = 'gpu="0",UUID="GPU-1",namespace="b",pod="p-b",container="c"'
    page = _lines(f"DCGM_FI_DEV_GPU_TEMP{{{a}}} 40", f"DCGM_FI_DEV_GPU_TEMP{{{b}}} 40")
    (sample,), stats = parse_page(page, EXPORTERS["dcgm"])
    assert sample.attribution is not None and sample.attribution.pod == "p-a"
    assert stats.count("attribution_conflict") == 1
