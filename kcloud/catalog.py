"""The metric catalogue: the typed view of `kcloud/catalog.yaml`, the contract every stage emits against.

A canonical metric exists in the catalogue (name, unit, type, description, physical range, state
values; a `flag` is true or false) before a collector emits it, a processor stores it or a dashboard
queries it; the vendor table says which vendors are domestic (Korean), so that `domestic` is derived,
never sent on the wire. The YAML file ships as package data and is read once per process; a malformed
catalogue stops start-up with a `CatalogError` naming the entry and key at fault.

Example:
    >>> catalog = load_catalog()
    >>> catalog.metric("power_w").unit
    'watts'
    >>> catalog.is_domestic("furiosa"), catalog.is_domestic("nvidia"), catalog.is_domestic("acme")
    (True, False, False)
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    PrivateAttr,
    StrictBool,
    StrictFloat,
    StringConstraints,
    ValidationError,
    model_validator,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "Metric",
    "MetricType",
    "Range",
    "UnknownMetricError",
    "Vendor",
    "load_catalog",
    "parse_catalog",
]

MetricType = Literal["gauge", "counter", "state", "flag"]

_Name = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")]
_Slug = Annotated[str, StringConstraints(strict=True, min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
_Text = Annotated[str, StringConstraints(strict=True, min_length=1, strip_whitespace=True)]
_Number = StrictFloat  # a YAML integer is accepted and held as a float
_CONFIG = ConfigDict(extra="forbid", frozen=True)


class CatalogError(ValueError):
    """The catalogue file is malformed; the message names the file, the entry and the key."""


class UnknownMetricError(KeyError):
    """A metric name that is not in the catalogue."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Range(BaseModel):
    """Physical bounds of a metric, inclusive; `max` is None where there is no physical ceiling."""

    model_config = _CONFIG
    min: _Number
    max: _Number | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.max is not None and self.max < self.min:
            raise ValueError(f"range min ({self.min}) is above max ({self.max})")
        return self


class Metric(BaseModel):
    """One canonical metric: a `DeviceSample` field and what its values mean."""

    model_config = _CONFIG
    name: _Name
    unit: _Name
    type: MetricType
    description: _Text
    range: Range | None = None
    values: tuple[_Name, ...] | None = None

    @model_validator(mode="after")
    def _values_only_for_states(self) -> Metric:
        if self.type == "state" and not self.values:
            raise ValueError(f"state metric {self.name!r} must list its allowed values")
        if self.type != "state" and self.values is not None:
            raise ValueError(f"{self.type} metric {self.name!r} cannot list values; only state metrics do")
        if self.type in ("state", "flag") and self.range is not None:
            raise ValueError(f"{self.type} metric {self.name!r} cannot have a range")
        return self


class Vendor(BaseModel):
    """An accelerator vendor as it appears in the wire `vendor` field."""

    model_config = _CONFIG
    name: _Slug
    display_name: _Text
    domestic: StrictBool


class Catalog(BaseModel):
    """Every canonical metric and every known vendor, in file order."""

    model_config = _CONFIG
    metrics: tuple[Metric, ...]
    vendors: tuple[Vendor, ...]

    _metric_index: dict[str, Metric] = PrivateAttr(default_factory=dict)
    _vendor_index: dict[str, Vendor] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _names_unique(self) -> Catalog:
        for what, names in (
            ("metric", [m.name for m in self.metrics]),
            ("vendor", [v.name for v in self.vendors]),
        ):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"{what}(s) listed more than once: {', '.join(dupes)}")
        return self

    def model_post_init(self, context: Any, /) -> None:
        self._metric_index = {m.name: m for m in self.metrics}
        self._vendor_index = {v.name: v for v in self.vendors}

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The canonical metric names, in catalogue order."""
        return tuple(m.name for m in self.metrics)

    def metric(self, name: str) -> Metric:
        """The catalogued metric called `name`.

        Raises `UnknownMetricError` (a `KeyError`) naming the known metrics when it is not catalogued.
        """
        try:
            return self._metric_index[name]
        except KeyError:
            raise UnknownMetricError(
                f"metric {name!r} is not in kcloud/catalog.yaml; known metrics: {', '.join(self.metric_names)}"
            ) from None

    def vendor(self, name: str) -> Vendor | None:
        """The known vendor with wire slug `name` (case and surrounding blanks ignored), else None."""
        return self._vendor_index.get(name.strip().lower())

    def is_domestic(self, vendor: str) -> bool:
        """True when `vendor` is a known domestic (Korean) vendor.

        Case and surrounding blanks are ignored, as on the wire. A vendor not in the catalogue is
        reported as not domestic (False): domestic status is a claim the catalogue must make.
        """
        known = self.vendor(vendor)
        return known is not None and known.domestic


def parse_catalog(text: str, source: str = "<string>") -> Catalog:
    """Build a `Catalog` from YAML text; `source` names the file in errors.

    Raises `CatalogError` naming the entry and key at fault, e.g.
    `kcloud/catalog.yaml: metrics.3.range.min: Input should be a valid number`.
    """
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{source}: not valid YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise CatalogError(f"{source}: expected a mapping with `metrics` and `vendors`, got {type(doc).__name__}")
    try:
        return Catalog.model_validate(doc)
    except ValidationError as exc:
        parts = []
        for err in exc.errors(include_url=False):
            loc = ".".join(str(p) for p in err["loc"]) or "catalogue"
            parts.append(f"{loc}: {err['msg']}")
        raise CatalogError(f"{source}: " + "; ".join(parts)) from exc


@functools.cache
def load_catalog() -> Catalog:
    """The catalogue shipped with the package (`kcloud/catalog.yaml`), parsed once per process."""
    text = resources.files("kcloud").joinpath("catalog.yaml").read_text(encoding="utf-8")
    return parse_catalog(text, source="kcloud/catalog.yaml")
