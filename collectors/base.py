"""The Collector protocol: how every telemetry source turns into `DeviceSample`s.

A collector has two halves. `fetch()` talks to the world (an HTTP scrape, a subprocess, NVML) and
returns the raw reading untouched; `parse(raw)` is pure and turns that reading into vendor-neutral
`DeviceSample`s, which is what most tests call. Parsing is lenient with data: a bad value drops that
field, a bad line drops that line, a reading with no device identity drops that reading; each is
counted in a `ParseStats` and logged once per collector, never raised. Configuration is strict: every
collector has a pydantic config model with `extra="forbid"`, and `build_collector` stops start-up with
a `ConfigError` naming the unknown source or key.

Example:
    >>> from pathlib import Path
    >>> collector = build_collector("prom", {"exporter": "dcgm", "url": "http://127.0.0.1:9400/metrics"})
    >>> collector.source
    'prom:dcgm'
    >>> page = Path("tests/fixtures/prometheus/titan-v-dcgm-exporter-issue58.prom").read_text()
    >>> [s.clock_mhz for s in collector.parse(page)]
    [135.0, 135.0]
"""

from __future__ import annotations

import importlib
import logging
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, ValidationError

from kcloud.records import DeviceSample

__all__ = [
    "COLLECTORS",
    "INFO_REASONS",
    "BaseCollector",
    "Collector",
    "CollectorConfig",
    "CollectorError",
    "CollectorUnavailable",
    "ConfigError",
    "ParseStats",
    "build_collector",
    "build_sample",
    "register_collector",
]

log = logging.getLogger("kcloud.collectors")

# Reasons that describe the source rather than a fault in it: logged at INFO, not WARNING.
INFO_REASONS = frozenset({"not_supported", "not_available", "page_parse_fallback"})
_IDENTITY_FIELDS = frozenset({"device_uuid", "vendor", "kind"})
# integer and true/false fields of the wire, read off the model: a collector's float becomes an int
# (rounded) or a bool (non-zero is true) before strict validation
_INT_FIELDS = frozenset(n for n, f in DeviceSample.model_fields.items() if f.annotation == int | None)
_BOOL_FIELDS = frozenset(n for n, f in DeviceSample.model_fields.items() if f.annotation == bool | None)
_MODULES = ("collectors.nvml", "collectors.nvidia_smi", "collectors.prom")


class CollectorError(Exception):
    """A fetch failed: the message says which source, what happened and what to check."""


class CollectorUnavailable(CollectorError):  # noqa: N818 -- reads as a state, like `Unavailable`
    """The source cannot work on this host at all (no driver, no binary); retrying will not help."""


class ConfigError(ValueError):
    """A collector configuration problem, with a message naming the source and key at fault."""


class CollectorConfig(BaseModel):
    """Base of every collector's settings: unknown keys are an error, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass
class ParseStats:
    """What one `parse` call dropped and why, and which source fields produced output.

    `problems` counts stable reason codes (`malformed_line`, `no_device_identity`, `blank_value`,
    `out_of_range`, ...); `first_detail` keeps the first occurrence of each reason for the log;
    `produced` counts, per vendor metric (or CSV column, or NVML reading), the canonical fields it
    filled; `shadowed` counts metrics that were present but lost to a higher-priority one.
    """

    source: str
    problems: Counter[str] = field(default_factory=Counter)
    first_detail: dict[str, str] = field(default_factory=dict)
    produced: Counter[str] = field(default_factory=Counter)
    shadowed: Counter[str] = field(default_factory=Counter)

    def note(self, reason: str, detail: str) -> None:
        """Count one occurrence of `reason`; the first detail per reason is kept for the log."""
        self.problems[reason] += 1
        self.first_detail.setdefault(reason, detail)

    def count(self, reason: str) -> int:
        """How many times `reason` was noted (0 when never)."""
        return self.problems[reason]

    @property
    def dropped(self) -> int:
        """Every problem noted, informational reasons excluded."""
        return sum(n for reason, n in self.problems.items() if reason not in INFO_REASONS)


def build_sample(values: Mapping[str, Any], stats: ParseStats, where: str) -> DeviceSample | None:
    """Validate one device's canonical values leniently: a field the wire model rejects is dropped (and
    counted as `out_of_range` or `memory_inconsistent`) instead of losing the device. Returns None, and
    counts `invalid_identity`, only when the identity itself (uuid, vendor, kind) is invalid."""
    data: dict[str, Any] = {
        key: round(value)
        if key in _INT_FIELDS and isinstance(value, float)
        else value != 0
        if key in _BOOL_FIELDS and isinstance(value, float | int) and not isinstance(value, bool)
        else value
        for key, value in values.items()
        if value is not None
    }
    for _ in range(len(data) + 1):
        try:
            return DeviceSample.model_validate(data)
        except ValidationError as exc:
            bad: dict[str, str] = {}
            for err in exc.errors(include_url=False):
                loc = err["loc"]
                if loc:
                    bad[str(loc[0])] = err["msg"]
                else:  # the model-level check: used memory above total
                    for name in ("mem_used_bytes", "mem_total_bytes"):
                        if name in data:
                            bad[name] = err["msg"]
            if not bad or bad.keys() & _IDENTITY_FIELDS:
                stats.note("invalid_identity", f"{where}: {exc.errors(include_url=False)[0]['msg']}")
                return None
            for name, msg in bad.items():
                reason = "memory_inconsistent" if name.startswith("mem_") and "exceeds" in msg else "out_of_range"
                stats.note(reason, f"{where}: {name}={data.pop(name, None)!r} dropped: {msg}")
    return None  # pragma: no cover -- every round drops at least one field


@runtime_checkable
class Collector(Protocol):
    """What the agent loop needs from a source: its wire tag, the I/O half and the pure half."""

    @property
    def source(self) -> str:
        """The `source` of the snapshot on the wire, e.g. `nvml` or `prom:dcgm`."""
        ...

    def fetch(self) -> object:
        """Read the source once; raise `CollectorError` (or `CollectorUnavailable`) on failure."""
        ...

    def parse(self, raw: Any) -> list[DeviceSample]:
        """Turn what `fetch` returned into samples; never raises on bad data."""
        ...


ConfigT = TypeVar("ConfigT", bound=CollectorConfig)


class BaseCollector(ABC, Generic[ConfigT]):
    """Shared plumbing: keeps the config, the last parse's stats, and logs each problem reason once."""

    name: ClassVar[str]
    config_model: ClassVar[type[CollectorConfig]]

    def __init__(self, config: ConfigT) -> None:
        self.config = config
        self.last_stats = ParseStats(source=self.source)
        self._reported: set[str] = set()

    @property
    @abstractmethod
    def source(self) -> str:
        """The wire `source` tag of this collector."""

    @abstractmethod
    def fetch(self) -> Any:
        """Read the source once (I/O only)."""

    @abstractmethod
    def parse_with_stats(self, raw: Any) -> tuple[list[DeviceSample], ParseStats]:
        """The pure parse: samples plus what was dropped and why."""

    def parse(self, raw: Any) -> list[DeviceSample]:
        """Parse `raw`, keep its `ParseStats` in `last_stats` and log new problem reasons once."""
        samples, stats = self.parse_with_stats(raw)
        self.last_stats = stats
        self._report(stats)
        return samples

    def collect(self) -> list[DeviceSample]:
        """`parse(fetch())`: one tick of this source."""
        return self.parse(self.fetch())

    def close(self) -> None:
        """Release what `fetch` holds open (nothing by default)."""

    def _report(self, stats: ParseStats) -> None:
        for reason, count in sorted(stats.problems.items()):
            if reason in self._reported:
                log.debug("%s: %s x%d", stats.source, reason, count)
                continue
            self._reported.add(reason)
            level = logging.INFO if reason in INFO_REASONS else logging.WARNING
            log.log(
                level,
                "%s: %s x%d, first: %s (later occurrences are counted in last_stats, not logged)",
                stats.source,
                reason,
                count,
                stats.first_detail.get(reason, ""),
            )


COLLECTORS: dict[str, type[BaseCollector[Any]]] = {}

CollectorT = TypeVar("CollectorT", bound=type[BaseCollector[Any]])


def register_collector(name: str) -> Callable[[CollectorT], CollectorT]:
    """Class decorator: make a collector buildable by `build_collector(name, ...)`."""

    def decorate(cls: CollectorT) -> CollectorT:
        if COLLECTORS.get(name, cls) is not cls:
            raise RuntimeError(f"collector source {name!r} is registered twice")
        cls.name = name
        COLLECTORS[name] = cls
        return cls

    return decorate


def _load_builtin_collectors() -> None:
    for module in _MODULES:
        importlib.import_module(module)


def _describe(name: str, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown key {loc!r}")
        else:
            parts.append(f"{loc}: {err['msg']}")
    return f"collector {name!r}: " + "; ".join(parts)


def build_collector(name: str, config: Mapping[str, Any]) -> BaseCollector[Any]:
    """Build the collector registered as `name` from a plain config mapping.

    Raises `ConfigError` for an unknown source name or an unknown or invalid key, naming it and
    listing what is known.
    """
    _load_builtin_collectors()
    cls = COLLECTORS.get(name)
    if cls is None:
        raise ConfigError(f"unknown collector source {name!r}; known sources: {', '.join(sorted(COLLECTORS))}")
    try:
        cfg = cls.config_model.model_validate(dict(config))
    except ValidationError as exc:
        known = ", ".join(sorted(cls.config_model.model_fields))
        raise ConfigError(f"{_describe(name, exc)} (known keys: {known})") from exc
    return cls(cfg)


# Register the built-in sources now, so that COLLECTORS is complete for whoever imports this module.
# (Each source module imports this one; Python's import cache makes the cycle harmless.)
_load_builtin_collectors()
