"""The metric catalogue (`kcloud/catalog.yaml`) against the wire model, in both directions, and the
vendor table's domestic flag."""

from __future__ import annotations

import re
import types
import typing
from pathlib import Path
from typing import Any

import annotated_types
import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

import kcloud
from kcloud.catalog import Catalog, CatalogError, UnknownMetricError, load_catalog, parse_catalog
from kcloud.records import Attribution, DeviceSample, Throughput

# DeviceSample fields that identify or label a device rather than measure it: never catalogued.
_DESCRIPTIVE = frozenset(
    {"device_uuid", "vendor", "kind", "model", "arch", "index", "pci_bus_id", "subdevice", "attribution"}
)
# A catalogued metric whose value is a nested model: its bounds are those of this field of that model.
_NESTED_VALUE: dict[str, tuple[type[BaseModel], str]] = {"throughput": (Throughput, "value")}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def _without_none(annotation: Any) -> Any:
    """`X | None` → X; anything else unchanged."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return annotation


def _bounds(field: FieldInfo) -> tuple[object, object]:
    """The (ge, le) bounds pydantic enforces on a field, None where it has none."""
    low = next((m.ge for m in field.metadata if isinstance(m, annotated_types.Ge)), None)
    high = next((m.le for m in field.metadata if isinstance(m, annotated_types.Le)), None)
    return low, high


def _bounded_field(metric: str) -> FieldInfo:
    model, name = _NESTED_VALUE.get(metric, (DeviceSample, metric))
    return model.model_fields[name]


# --- catalogue ⇄ DeviceSample --------------------------------------------------------------------


def test_every_measurement_field_of_device_sample_is_catalogued(catalog: Catalog) -> None:
    measurements = set(DeviceSample.model_fields) - _DESCRIPTIVE
    assert measurements - set(catalog.metric_names) == set()


def test_every_catalogued_metric_is_a_device_sample_field(catalog: Catalog) -> None:
    assert set(catalog.metric_names) - set(DeviceSample.model_fields) == set()
    assert set(catalog.metric_names).isdisjoint(_DESCRIPTIVE)


def test_every_numeric_or_state_field_of_device_sample_is_catalogued(catalog: Catalog) -> None:
    # Derived from the types alone, so a new number cannot hide in the descriptive list above.
    numeric_or_state = {
        name
        for name, field in DeviceSample.model_fields.items()
        if _without_none(field.annotation) in (int, float, bool, Throughput)
        or (typing.get_origin(_without_none(field.annotation)) is typing.Literal and not field.is_required())
    }
    assert numeric_or_state == set(catalog.metric_names)


def test_fields_left_out_of_the_catalogue_are_labels_not_measurements() -> None:
    for name in _DESCRIPTIVE:
        annotation = _without_none(DeviceSample.model_fields[name].annotation)
        assert annotation not in (int, float, bool), name
        assert (
            annotation is str
            or annotation is Attribution
            or typing.get_origin(annotation)
            in (
                typing.Annotated,
                typing.Literal,
            )
        ), name


@pytest.mark.parametrize("metric", load_catalog().metric_names)
def test_catalogued_range_matches_the_model_field_bounds(catalog: Catalog, metric: str) -> None:
    entry = catalog.metric(metric)
    low, high = _bounds(_bounded_field(metric))
    if entry.range is None:
        assert (low, high) == (None, None), f"{metric}: model bounds it but the catalogue has no range"
    else:
        assert (entry.range.min, entry.range.max) == (low, high), metric


def test_health_values_are_exactly_the_model_states(catalog: Catalog) -> None:
    health = catalog.metric("health")
    assert health.type == "state"
    literal = _without_none(DeviceSample.model_fields["health"].annotation)
    assert health.values == typing.get_args(literal)


def test_only_state_metrics_list_values_and_every_number_has_a_range(catalog: Catalog) -> None:
    for metric in catalog.metrics:
        assert (metric.values is not None) == (metric.type == "state"), metric.name
        assert (metric.range is not None) == (metric.type not in ("state", "flag")), metric.name


def test_flags_are_exactly_the_true_or_false_fields_of_the_model(catalog: Catalog) -> None:
    flags = {m.name for m in catalog.metrics if m.type == "flag"}
    booleans = {n for n, f in DeviceSample.model_fields.items() if _without_none(f.annotation) is bool}
    assert flags == booleans
    assert {"throttle_power", "throttle_thermal", "mem_repair_pending", "mem_repair_failed"} <= flags
    assert all(catalog.metric(name).unit == "boolean" for name in flags)


#: the largest finite value of each device_samples column type (real is float4: beyond it, `inf` is stored)
_STORAGE_MAX = {
    "real": 3.4028234e38,
    "double precision": 1.7976931348623157e308,
    "bigint": 2**63 - 1,
    "integer": 2**31 - 1,
    "smallint": 2**15 - 1,
}
_TYPES = r"(real|double precision|bigint|smallint|integer|boolean|timestamptz)"


def _device_samples_columns() -> dict[str, str]:
    """Every device_samples column and its type: the 0002 table plus columns later migrations add."""
    folder = Path(kcloud.__file__).parent / "db" / "migrations"
    sql = (folder / "0002_timeseries_postgresql.sql").read_text()
    body = sql.split("CREATE TABLE device_samples (", 1)[1].split(") PARTITION BY", 1)[0]
    columns = {}
    for line in body.splitlines():
        match = re.match(rf"^\s+([a-z_]+)\s+{_TYPES}\b", line)
        if match:
            columns[match.group(1)] = match.group(2)
    for later in sorted(folder.glob("*.sql")):
        if later.name[:4] > "0002":
            for match in re.finditer(rf"ADD COLUMN\s+([a-z_]+)\s+{_TYPES}\b", later.read_text()):
                columns[match.group(1)] = match.group(2)
    return columns


def test_every_number_has_an_upper_bound_its_storage_column_holds_finitely(catalog: Catalog) -> None:
    columns = _device_samples_columns()
    for metric in catalog.metrics:
        if metric.range is None:
            continue
        assert metric.range.max is not None, f"{metric.name}: no upper bound; a vendor could send 1e39"
        kind = columns[metric.name]
        assert metric.range.max < _STORAGE_MAX[kind], f"{metric.name}: {metric.range.max} overflows {kind}"


def test_every_metric_has_a_storage_column_of_its_kind(catalog: Catalog) -> None:
    columns = _device_samples_columns()
    for metric in catalog.metrics:
        stored = "health" if metric.type == "state" else metric.name
        assert stored in columns, f"{metric.name}: no device_samples column"
        if metric.type == "flag":
            assert columns[stored] == "boolean", metric.name
        elif metric.name != "health":
            assert columns[stored] in _STORAGE_MAX, metric.name


def test_cumulative_metrics_are_counters_and_instant_readings_gauges(catalog: Catalog) -> None:
    assert {m.name for m in catalog.metrics if m.type == "counter"} == {
        "energy_j",
        "ecc_uncorrected",
        "nvlink_errors",
        "mem_rows_retired",
    }
    assert catalog.metric("power_w").type == "gauge"


def test_every_description_is_a_full_sentence(catalog: Catalog) -> None:
    for metric in catalog.metrics:
        text = metric.description
        assert text[0].isupper() and text.endswith("."), metric.name
        assert len(text.split()) >= 6, metric.name


def test_units_follow_the_field_name_suffixes(catalog: Catalog) -> None:
    suffix_unit = {"_pct": "percent", "_bytes": "bytes", "_w": "watts", "_j": "joules", "_c": "celsius"}
    suffix_unit["_mhz"] = "megahertz"
    for metric in catalog.metrics:
        for suffix, unit in suffix_unit.items():
            if metric.name.endswith(suffix):
                assert metric.unit == unit, metric.name


# --- lookups ---------------------------------------------------------------------------------------


def test_metric_is_looked_up_by_its_canonical_name(catalog: Catalog) -> None:
    power = catalog.metric("power_w")
    assert (power.name, power.unit, power.type) == ("power_w", "watts", "gauge")


def test_unknown_metric_is_refused_naming_it_and_the_known_ones(catalog: Catalog) -> None:
    with pytest.raises(UnknownMetricError) as excinfo:
        catalog.metric("power_mw")
    assert isinstance(excinfo.value, KeyError)
    assert "'power_mw'" in str(excinfo.value)
    assert "power_w" in str(excinfo.value)


@pytest.mark.parametrize("vendor", ["furiosa", "rebellions", "sapeon", "deepx", "mobilint"])
def test_korean_vendors_are_domestic(catalog: Catalog, vendor: str) -> None:
    assert catalog.is_domestic(vendor) is True


@pytest.mark.parametrize("vendor", ["nvidia", "amd", "intel", "huawei"])
def test_foreign_vendors_are_not_domestic(catalog: Catalog, vendor: str) -> None:
    assert catalog.is_domestic(vendor) is False


def test_unknown_vendor_is_not_domestic(catalog: Catalog) -> None:
    assert catalog.vendor("acme-npu") is None
    assert catalog.is_domestic("acme-npu") is False


def test_vendor_lookup_ignores_case_and_blanks_like_the_wire(catalog: Catalog) -> None:
    assert catalog.is_domestic(" Rebellions ") is True
    vendor = catalog.vendor("FURIOSA")
    assert vendor is not None
    assert vendor.display_name == "FuriosaAI"


def test_catalogue_is_read_once_per_process() -> None:
    assert load_catalog() is load_catalog()


# --- a malformed catalogue stops loading, naming what is wrong -----------------------------------

_METRIC = "{name: x_w, unit: watts, type: gauge, description: A made-up metric for the test., range: {min: 0}}"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"metrics: [{_METRIC[:-1]}, colour: red}}]\nvendors: []", "metrics.0.colour: Extra inputs"),
        (f"metrics: [{_METRIC}, {_METRIC}]\nvendors: []", "metric(s) listed more than once: x_w"),
        ("metrics: []\nvendors: [{name: acme, display_name: Acme, domestic: 'yes'}]", "vendors.0.domestic"),
        (
            "metrics: [{name: h, unit: state, type: state, description: D.}]\nvendors: []",
            "must list its allowed",
        ),
        (f"metrics: [{_METRIC.replace('min: 0', 'min: 9, max: 1')}]\nvendors: []", "min (9.0) is above max"),
        ("- just a list", "expected a mapping"),
    ],
)
def test_malformed_catalogue_is_refused_naming_the_file_and_key(text: str, expected: str) -> None:
    with pytest.raises(CatalogError) as excinfo:
        parse_catalog(text, source="test.yaml")
    assert str(excinfo.value).startswith("test.yaml: ")
    assert expected in str(excinfo.value)
