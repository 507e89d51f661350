"""Prometheus exporters as a telemetry source: scrape (or read) exposition text, map it to samples.

`fetch()` GETs the exporter's `/metrics` (or reads a file); `parse(raw)` is pure: it reads the text
with `prometheus_client`'s parser, and when one malformed line makes that parser give up on the whole
page it parses line by line instead, skipping and counting only the bad lines. Each sample is then
mapped through its exporter's declarative `ExporterMap` (`collectors/prom_maps/`): vendor metric →
canonical field with unit conversion and magnitude guards, labels → device identity. Counter samples
come back from the parser with a `_total` suffix; both spellings map. Samples without a device
identity are dropped and counted.

Example:
    >>> page = Path("tests/fixtures/prometheus/h100-sxm5-dcgm-exporter-3.3-synthetic.prom").read_text()
    >>> samples, stats = parse_page(page, EXPORTERS["dcgm"])
    >>> samples[0].power_w, samples[0].energy_j, stats.count("blank_value")
    (412.337, 8123456.789, 2)
"""

from __future__ import annotations

import dataclasses
import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field, field_validator, model_validator

from collectors.base import (
    BaseCollector,
    CollectorConfig,
    CollectorError,
    ParseStats,
    build_sample,
    register_collector,
)
from collectors.prom_maps import AUX_FIELDS, EXPORTERS, ExporterMap, MetricSpec
from kcloud.records import Attribution, DeviceSample, canonical_device_uuid

__all__ = ["PromCollector", "PromConfig", "PromSample", "map_samples", "parse_exposition", "parse_page"]

_ACCEPT = "text/plain;version=0.0.4;q=1.0, */*;q=0.1"
_TRAILING_DIGITS = re.compile(r"(\d+)$")


@dataclass(frozen=True)
class PromSample:
    """One exposition sample: metric name (as the parser spells it), labels, value."""

    name: str
    labels: Mapping[str, str]
    value: float


def _samples_of(text: str) -> list[PromSample]:
    return [
        PromSample(s.name, s.labels, float(s.value))
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def parse_exposition(text: str, stats: ParseStats) -> list[PromSample]:
    """Every sample of a page; a malformed line is skipped and counted (`malformed_line`), not fatal."""
    try:
        return _samples_of(text)
    except Exception as exc:  # the parser raises ValueError and friends for one bad line anywhere
        stats.note("page_parse_fallback", f"whole-page parse failed ({exc}); parsing line by line")
    samples: list[PromSample] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        try:
            samples.extend(_samples_of(stripped + "\n"))
        except Exception as exc:
            stats.note("malformed_line", f"line {lineno}: {stripped[:120]!r}: {exc}")
    return samples


@dataclass
class _Slot:
    metric: str
    rank: int
    spec: MetricSpec
    values: list[float | str] = field(default_factory=list)
    parts: dict[str, float] = field(default_factory=dict)  # aggregate "sum": each metric's first value

    def value(self) -> float | str:
        if self.spec.aggregate == "sum":
            return sum(self.parts.values())
        if self.spec.aggregate == "mean":
            nums = [v for v in self.values if isinstance(v, float)]
            return sum(nums) / len(nums)
        return self.values[0]


@dataclass
class _Device:
    uuid: str
    subdevice: str | None
    order: int
    attrs: dict[str, str] = field(default_factory=dict)
    attribution: dict[str, str] = field(default_factory=dict)
    slots: dict[str, _Slot] = field(default_factory=dict)


def _first_label(labels: Mapping[str, str], names: Iterable[str]) -> str | None:
    for name in names:
        value = labels.get(name, "").strip()
        if value:
            return value
    return None


class _Mapper:
    """Accumulates one page's samples into devices according to one `ExporterMap`."""

    def __init__(self, emap: ExporterMap, stats: ParseStats) -> None:
        self.emap = emap
        self.stats = stats
        self.ranks = {name: i for i, name in enumerate(emap.metric_map)}
        self.devices: dict[tuple[str, str | None], _Device] = {}
        self.uuid_order: dict[str, int] = {}

    def lookup(self, name: str) -> str | None:
        if name in self.ranks:
            return name
        if name.endswith("_total") and name[: -len("_total")] in self.ranks:
            return name[: -len("_total")]  # a counter as prometheus_client spells it
        return None

    def device(self, uuid: str, subdevice: str | None) -> _Device:
        key = (uuid, subdevice)
        if key not in self.devices:
            order = self.uuid_order.setdefault(uuid, len(self.uuid_order))
            self.devices[key] = _Device(uuid, subdevice, order)
        return self.devices[key]

    def absorb(self, dev: _Device, labels: Mapping[str, str], attribution: bool) -> None:
        rules = self.emap.identity
        for attr, names in (
            ("index", rules.index),
            ("model", rules.model),
            ("arch", rules.arch),
            ("pci_bus_id", rules.pci_bus_id),
        ):
            value = _first_label(labels, names)
            if value is not None and attr not in dev.attrs:
                if attr == "index" and (m := _TRAILING_DIGITS.search(value)):
                    value = m.group(1)
                dev.attrs[attr] = value
        if not attribution:
            return
        found = {
            key: value
            for key, names in (
                ("namespace", rules.namespace),
                ("pod", rules.pod),
                ("container", rules.container),
            )
            if (value := _first_label(labels, names)) is not None
        }
        if found and not dev.attribution:
            dev.attribution = found
        elif found and found != dev.attribution:
            self.stats.note(
                "attribution_conflict",
                f"device {dev.uuid}: series attributed to {found} and {dev.attribution}; keeping the first",
            )

    def add(self, sample: PromSample) -> None:
        metric = self.lookup(sample.name)
        is_info = sample.name in self.emap.info_metrics
        if metric is None and not is_info:
            return  # not ours: go_*, process_*, unmapped vendor metrics
        spec = self.emap.metric_map[metric] if metric is not None else None
        if spec is not None and any(sample.labels.get(k) != v for k, v in spec.where.items()):
            return
        rules = self.emap.identity
        raw_uuid = _first_label(sample.labels, rules.uuid)
        if raw_uuid is None:
            self.stats.note("no_device_identity", f"{sample.name}{dict(sample.labels)} has no {rules.uuid} label")
            return
        try:
            uuid = canonical_device_uuid(raw_uuid)
        except ValueError as exc:
            self.stats.note("invalid_identity", f"{sample.name}: uuid {raw_uuid!r}: {exc}")
            return
        subdevice = None
        for label, template in rules.subdevice:
            if value := sample.labels.get(label, "").strip():
                subdevice = template.format(value)
                break
        if spec is not None and spec.per_device and subdevice is not None:
            dev = self.device(uuid, None)
            self.absorb(dev, sample.labels, attribution=False)
        else:
            dev = self.device(uuid, subdevice)
            self.absorb(dev, sample.labels, attribution=True)
        if spec is None or metric is None:
            return
        converted = self.convert(metric, spec, sample)
        if converted is not None:
            self.put(dev, metric, spec, converted)
        for target, convert in spec.also:
            extra = dataclasses.replace(spec, field=target, convert=convert, also=())
            if (also_value := self.convert(metric, extra, sample)) is not None:
                self.put(dev, metric, extra, also_value)

    def convert(self, metric: str, spec: MetricSpec, sample: PromSample) -> float | str | None:
        where = f"{sample.name}{dict(sample.labels)}"
        if not math.isfinite(sample.value):
            self.stats.note("non_finite_value", f"{where} = {sample.value}")
            return None
        if spec.states is not None:
            state = spec.states.get(int(sample.value)) if sample.value.is_integer() else None
            if state is None:
                self.stats.note("unknown_health_state", f"{where} = {sample.value}; reported as unknown")
                return "unknown"
            return state
        converted = spec.convert(sample.value)
        if converted is None:
            self.stats.note("blank_value", f"{where} = {sample.value:.17g} is a blank sentinel: null")
        return converted

    def put(self, dev: _Device, metric: str, spec: MetricSpec, value: float | str) -> None:
        rank = self.ranks[metric]
        slot = dev.slots.get(spec.field)
        if slot is not None and spec.aggregate == "sum" == slot.spec.aggregate:
            if metric not in slot.parts and isinstance(value, float):
                slot.parts[metric] = value  # another part of the total; a repeated series is ignored
            return
        if slot is None or rank < slot.rank:
            if slot is not None:
                self.stats.shadowed[slot.metric] += len(slot.values)
            parts = {metric: value} if spec.aggregate == "sum" and isinstance(value, float) else {}
            dev.slots[spec.field] = _Slot(metric, rank, spec, [value], parts)
        elif rank > slot.rank:
            self.stats.shadowed[metric] += 1
        elif spec.aggregate == "mean":
            slot.values.append(value)
        # same metric again with aggregate "first": a duplicate series (e.g. one per pod); keep the first

    def finish(self) -> list[DeviceSample]:
        out: list[DeviceSample] = []
        ordered = sorted(self.devices.values(), key=lambda d: (d.order, d.subdevice is not None, d.subdevice or ""))
        for dev in ordered:
            values: dict[str, Any] = {
                "device_uuid": dev.uuid,
                "vendor": self.emap.vendor,
                "kind": self.emap.kind,
                "subdevice": dev.subdevice,
                **dev.attrs,
            }
            for name, slot in dev.slots.items():
                if name not in AUX_FIELDS:
                    values[name] = slot.value()
                    for metric in slot.parts or (slot.metric,):
                        self.stats.produced[metric] += 1
            self.derive_total(dev, values)
            if dev.attribution:
                values["attribution"] = Attribution(**dev.attribution)
            where = f"{self.emap.name} device {dev.uuid}" + (f" ({dev.subdevice})" if dev.subdevice else "")
            sample = build_sample(values, self.stats, where)
            if sample is not None:
                out.append(sample)
        return out

    def derive_total(self, dev: _Device, values: dict[str, Any]) -> None:
        """mem_total_bytes = used + free (+ reserved) when the exporter does not report a total."""
        aux = [dev.slots[name] for name in sorted(AUX_FIELDS) if name in dev.slots]
        free = dev.slots.get("_mem_free_bytes")
        if "mem_total_bytes" in dev.slots or "mem_used_bytes" not in dev.slots or free is None:
            for slot in aux:
                self.stats.shadowed[slot.metric] += 1
            return
        values["mem_total_bytes"] = float(values["mem_used_bytes"]) + sum(float(s.value()) for s in aux)
        for slot in aux:
            self.stats.produced[slot.metric] += 1


def map_samples(samples: Iterable[PromSample], emap: ExporterMap, stats: ParseStats) -> list[DeviceSample]:
    """Map parsed samples to one `DeviceSample` per device (and per MIG/vNPU slice)."""
    mapper = _Mapper(emap, stats)
    for sample in samples:
        mapper.add(sample)
    return mapper.finish()


def parse_page(raw: bytes | str, emap: ExporterMap) -> tuple[list[DeviceSample], ParseStats]:
    """The pure parse of one scrape: samples, and a `ParseStats` of what was dropped and why."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    stats = ParseStats(source=f"prom:{emap.name}")
    return map_samples(parse_exposition(text, stats), emap, stats), stats


class PromConfig(CollectorConfig):
    """Settings of one Prometheus-exporter source."""

    exporter: str = Field(description="Whose metric map applies: " + ", ".join(sorted(EXPORTERS)) + ".")
    url: str | None = Field(None, description="Metrics endpoint to scrape, e.g. http://127.0.0.1:9400/metrics.")
    file: Path | None = Field(None, description="Read exposition text from this file instead (replay, tests).")
    timeout_s: float = Field(5.0, gt=0, le=120, description="Longest wait for one scrape, in seconds.")
    max_bytes: int = Field(32 * 2**20, ge=1, description="Largest page accepted, in bytes.")

    @field_validator("exporter")
    @classmethod
    def _known_exporter(cls, value: str) -> str:
        if value not in EXPORTERS:
            raise ValueError(f"unknown exporter {value!r}; known exporters: {', '.join(sorted(EXPORTERS))}")
        return value

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f"url {value!r} must start with http:// or https://")
        return value

    @model_validator(mode="after")
    def _one_origin(self) -> PromConfig:
        if (self.url is None) == (self.file is None):
            raise ValueError("set exactly one of `url` (scrape) or `file` (replay)")
        return self


@register_collector("prom")
class PromCollector(BaseCollector[PromConfig]):
    """Scrapes one exporter's `/metrics` and maps it with that exporter's `ExporterMap`."""

    config_model = PromConfig

    @property
    def source(self) -> str:
        return f"prom:{self.config.exporter}"

    @property
    def exporter(self) -> ExporterMap:
        """The metric map this collector applies."""
        return EXPORTERS[self.config.exporter]

    def fetch(self) -> bytes:
        """The page as bytes, from `url` or `file`. Raises `CollectorError` naming the target."""
        cfg = self.config
        if cfg.file is not None:
            try:
                return cfg.file.read_bytes()[: cfg.max_bytes]
            except OSError as exc:
                raise CollectorError(f"{self.source}: cannot read {cfg.file}: {exc.strerror or exc}") from exc
        assert cfg.url is not None  # the config model guarantees one origin
        request = urllib.request.Request(cfg.url, headers={"Accept": _ACCEPT, "User-Agent": "kcloud-collector"})
        try:
            with urllib.request.urlopen(request, timeout=cfg.timeout_s) as response:
                body: bytes = response.read(cfg.max_bytes + 1)
        except urllib.error.HTTPError as exc:
            raise CollectorError(
                f"{self.source}: scrape of {cfg.url} answered HTTP {exc.code} {exc.reason}; "
                "check the exporter's address and path"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CollectorError(
                f"{self.source}: scrape of {cfg.url} failed: {reason}; check that the exporter is running "
                "and reachable from this host"
            ) from exc
        if len(body) > cfg.max_bytes:
            raise CollectorError(
                f"{self.source}: scrape of {cfg.url} is larger than max_bytes={cfg.max_bytes}; "
                "raise max_bytes or filter the exporter's metrics"
            )
        return body

    def parse_with_stats(self, raw: bytes | str) -> tuple[list[DeviceSample], ParseStats]:
        return parse_page(raw, self.exporter)
