"""The metric maps against the wire model, the catalogue and the fixtures, in both directions.

Every canonical field a map emits is a DeviceSample field and a catalogued metric; every vendor a map
names is in the catalogue's vendor table; every mapped metric a fixture contains is produced (or lost
to a higher-priority metric for the same field); every mapped metric appears in some fixture.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from collectors.base import ParseStats
from collectors.nvidia_smi import ALSO, COLUMN_MAP, QUERY_FIELDS, parse_csv
from collectors.nvml import ALSO as NVML_ALSO
from collectors.nvml import READING_MAP, parse_readings
from collectors.prom import parse_exposition, parse_page
from collectors.prom_maps import AUX_FIELDS, EXPORTERS, MetricSpec
from kcloud.catalog import load_catalog
from kcloud.records import DeviceSample

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"

# fixture file → exporter whose map applies
PROM_FIXTURES = {
    "titan-v-dcgm-exporter-issue58.prom": "dcgm",
    "h100-sxm5-dcgm-exporter-3.3-synthetic.prom": "dcgm",
    "h100-sxm5-dcgm-exporter-profiling-synthetic.prom": "dcgm",
    "v100-sxm2-dcgm-exporter-3.1-retired-pages-synthetic.prom": "dcgm",
    "a30-mig-dcgm-exporter-issue317.prom": "dcgm",
    "rtx2000ada-dcgm-exporter-pr736.prom": "dcgm",
    "rngd-furiosa-exporter-2025.1.prom": "furiosa",
    "rngd-furiosa-exporter-readme.prom": "furiosa",
    "rbln-ca25-rbln-exporter-old-names.prom": "rbln",
    "rbln-ca25-rbln-exporter-old-names-synthetic.prom": "rbln",
    "rbln-ca25-rbln-exporter-new-names.prom": "rbln",
    "rbln-ca25-rbln-exporter-new-names-synthetic.prom": "rbln",
    "ascend910b-npu-exporter-v6-synthetic.prom": "ascend",
    "mi300x-amd-device-metrics-exporter-v1.2-synthetic.prom": "amd",
    "gaudi2-habana-metric-exporter-1.18-synthetic.prom": "gaudi",
    "rtx2080super-nvidia-gpu-exporter-readme.prom": "nvidia_smi_exporter",
    "a100-sxm4-nvidia-gpu-exporter-synthetic.prom": "nvidia_smi_exporter",
}
_DESCRIPTIVE = {
    "device_uuid",
    "vendor",
    "kind",
    "model",
    "arch",
    "index",
    "pci_bus_id",
    "subdevice",
    "attribution",
}


def _emitted_fields() -> dict[str, set[str]]:
    """Every canonical field each source can emit, by source."""
    fields = {
        f"prom:{name}": {f for spec in emap.metric_map.values() for f in (spec.field, *(t for t, _ in spec.also))}
        for name, emap in EXPORTERS.items()
    }
    fields["nvidia-smi"] = {target for target, _ in COLUMN_MAP.values()} | {t for a in ALSO.values() for t, _ in a}
    fields["nvml"] = {target for target, _ in READING_MAP.values()} | {"health"}
    fields["nvml"] |= {t for a in NVML_ALSO.values() for t, _ in a}
    return fields


def _mapped_names_in(text: str, metric_map: Mapping[str, object]) -> set[str]:
    """The names of `metric_map` that occur in `text` (counters as well as their `_total` samples)."""
    names = {s.name for s in parse_exposition(text, ParseStats(source="test"))}
    names |= {n.removesuffix("_total") for n in names}
    return names & set(metric_map)


@pytest.mark.parametrize(("source", "fields"), sorted(_emitted_fields().items()))
def test_every_field_a_source_emits_is_a_device_sample_field_and_catalogued(source: str, fields: set[str]) -> None:
    wire = fields - AUX_FIELDS
    assert wire - set(DeviceSample.model_fields) == set(), source
    assert wire - _DESCRIPTIVE - set(load_catalog().metric_names) == set(), source


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
def test_every_exporter_vendor_is_in_the_catalogue_and_its_source_tag_is_valid(exporter: str) -> None:
    emap = EXPORTERS[exporter]
    assert load_catalog().vendor(emap.vendor) is not None
    assert emap.name == exporter and len(f"prom:{exporter}") <= len("prom:") + 32


@pytest.mark.parametrize(("fixture", "exporter"), sorted(PROM_FIXTURES.items()))
def test_every_mapped_metric_in_a_fixture_is_produced(fixture: str, exporter: str) -> None:
    text = (FIXTURES / "prometheus" / fixture).read_text(encoding="utf-8")
    emap = EXPORTERS[exporter]
    present = _mapped_names_in(text, emap.metric_map)
    samples, stats = parse_page(text, emap)
    assert samples, fixture
    assert present, f"{fixture} contains no metric of the {exporter} map"
    assert present - set(stats.produced) - set(stats.shadowed) == set()
    assert set(stats.produced) <= set(emap.metric_map)


@pytest.mark.parametrize("exporter", sorted(EXPORTERS))
def test_every_mapped_metric_appears_in_some_fixture_of_its_exporter(exporter: str) -> None:
    emap = EXPORTERS[exporter]
    covered: set[str] = set()
    for fixture, owner in PROM_FIXTURES.items():
        if owner == exporter:
            covered |= _mapped_names_in(
                (FIXTURES / "prometheus" / fixture).read_text(encoding="utf-8"), emap.metric_map
            )
    assert set(emap.metric_map) - covered == set()


def test_every_prometheus_fixture_is_listed_here_and_in_its_readme() -> None:
    on_disk = {p.name for p in (FIXTURES / "prometheus").glob("*.prom")}
    readme = (FIXTURES / "prometheus" / "README.md").read_text(encoding="utf-8")
    assert on_disk == set(PROM_FIXTURES)
    assert {name for name in on_disk if f"`{name}`" not in readme} == set()


def test_synthetic_prometheus_fixtures_say_so_on_their_first_line() -> None:
    for path in (FIXTURES / "prometheus").glob("*-synthetic.prom"):
        assert path.read_text(encoding="utf-8").startswith("# SYNTHETIC:"), path.name


def test_every_nvidia_smi_measurement_column_is_queried_and_produced_by_the_fixture(
    fixture_text: Callable[[str], str],
) -> None:
    assert set(COLUMN_MAP) <= set(QUERY_FIELDS)
    produced: set[str] = set()
    for fixture in ("h100-sxm5-query-gpu-csv-synthetic.csv", "mixed-query-gpu-csv-activity-synthetic.csv"):
        _, stats = parse_csv(fixture_text(f"nvidia_smi/{fixture}"))
        produced |= set(stats.produced)
    assert set(COLUMN_MAP) - produced == set()


def test_every_nvml_reading_is_produced_by_the_fixture(fixture_text: Callable[[str], str]) -> None:
    produced: set[str] = set()
    for fixture in ("h100-sxm5-mig-capture1-synthetic.json", "h100-l4-capture2-synthetic.json"):
        _, stats = parse_readings(json.loads(fixture_text(f"nvml/{fixture}")))
        produced |= set(stats.produced)
    assert set(READING_MAP) - produced == set()


def test_map_specs_reject_a_field_the_wire_model_does_not_have() -> None:
    with pytest.raises(ValueError, match="not a DeviceSample field"):
        MetricSpec("power_watts")
