"""The registry, strict configuration, lenient sample building and log-once reporting of collectors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from collectors.base import (
    COLLECTORS,
    Collector,
    ConfigError,
    ParseStats,
    build_collector,
    build_sample,
)
from collectors.nvidia_smi import NvidiaSmiCollector
from collectors.nvml import NvmlCollector
from collectors.prom import PromCollector

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
GOOD: dict[str, dict[str, Any]] = {
    "prom": {"exporter": "dcgm", "url": "http://127.0.0.1:9400/metrics"},
    "nvidia-smi": {},
    "nvml": {},
}


def test_registry_maps_each_source_name_to_its_collector_class() -> None:
    expected = {"nvml": NvmlCollector, "nvidia-smi": NvidiaSmiCollector, "prom": PromCollector}
    assert expected == COLLECTORS


@pytest.mark.parametrize(("name", "source"), [("prom", "prom:dcgm"), ("nvidia-smi", "nvidia-smi"), ("nvml", "nvml")])
def test_built_collector_has_its_wire_source_and_satisfies_the_protocol(name: str, source: str) -> None:
    collector = build_collector(name, GOOD[name])
    assert isinstance(collector, Collector)
    assert collector.source == source


@pytest.mark.parametrize("name", sorted(GOOD))
def test_unknown_config_key_is_rejected_naming_the_key(name: str) -> None:
    with pytest.raises(ConfigError, match=rf"collector '{name}': unknown key 'timeot_s' \(known keys: .*\)"):
        build_collector(name, {**GOOD[name], "timeot_s": 3})


def test_unknown_source_name_is_rejected_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown collector source 'dcgm'; known sources: nvidia-smi, nvml, prom"):
        build_collector("dcgm", {})


def test_unknown_exporter_is_rejected_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"exporter: .*unknown exporter 'nvidia'; known exporters: amd, ascend, dcgm"):
        build_collector("prom", {"exporter": "nvidia", "url": "http://x/metrics"})


@pytest.mark.parametrize(
    "config",
    [{"exporter": "dcgm"}, {"exporter": "dcgm", "url": "http://x/metrics", "file": "page.prom"}],
)
def test_prom_source_needs_exactly_one_of_url_or_file(config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"set exactly one of `url` .* or `file`"):
        build_collector("prom", config)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"exporter": "dcgm", "url": "http://x/metrics", "timeout_s": -1}, "timeout_s"),
        ({"exporter": "dcgm", "url": "ftp://x/metrics"}, "url"),
    ],
)
def test_invalid_config_value_names_the_key(config: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"collector 'prom': {key}: "):
        build_collector("prom", config)


def test_out_of_range_value_drops_only_that_field() -> None:
    stats = ParseStats(source="test")
    sample = build_sample(
        {"device_uuid": "GPU-a", "vendor": "nvidia", "kind": "gpu", "temp_c": 500.0, "power_w": 300.0},
        stats,
        "t",
    )
    assert sample is not None and (sample.temp_c, sample.power_w) == (None, 300.0)
    assert stats.count("out_of_range") == 1 and "temp_c=500.0" in stats.first_detail["out_of_range"]


def test_integral_float_byte_counts_become_ints_for_the_strict_wire_model() -> None:
    stats = ParseStats(source="test")
    values = {
        "device_uuid": "a",
        "vendor": "amd",
        "kind": "gpu",
        "mem_used_bytes": 1024.0,
        "ecc_uncorrected": 2.0,
    }
    sample = build_sample(values, stats, "t")
    assert sample is not None and (sample.mem_used_bytes, sample.ecc_uncorrected) == (1024, 2)


def test_invalid_identity_drops_the_device_and_is_counted() -> None:
    stats = ParseStats(source="test")
    assert build_sample({"device_uuid": "a", "vendor": "nvidia", "kind": "tpu"}, stats, "t") is None
    assert stats.count("invalid_identity") == 1


def test_each_problem_reason_is_logged_once_per_collector(
    caplog: pytest.LogCaptureFixture, fixture_text: Callable[[str], str]
) -> None:
    page = fixture_text("prometheus/titan-v-dcgm-exporter-issue58.prom") + "broken line\n"
    collector = build_collector("prom", {"exporter": "dcgm", "file": str(FIXTURES / "unused.prom")})
    with caplog.at_level(logging.DEBUG, logger="kcloud.collectors"):
        collector.parse(page)
        collector.parse(page)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(",")[0] for r in warnings] == ["prom:dcgm: malformed_line x1"]
    assert "broken line" in warnings[0].getMessage()
    assert collector.last_stats.count("malformed_line") == 1
    assert len(collector.last_stats.produced) == 1


def test_collect_is_parse_of_fetch(tmp_path: Path, fixture_text: Callable[[str], str]) -> None:
    page = tmp_path / "page.prom"
    page.write_text(fixture_text("prometheus/titan-v-dcgm-exporter-issue58.prom"), encoding="utf-8")
    collector = build_collector("prom", {"exporter": "dcgm", "file": str(page)})
    assert [s.index for s in collector.collect()] == ["0", "1"]
