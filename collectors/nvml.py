"""NVIDIA GPUs through NVML (`nvidia-ml-py`, imported as `pynvml`) as a telemetry source.

`fetch()` calls NVML and returns a plain, JSON-able structure of raw readings in NVML's own units,
each reading either `{"value": ...}` or `{"error": "<NVML error name>", "message": ...}`; `parse(raw)`
is pure and turns it into samples: mW → W, mJ → J, MIG instances as subdevices (`mig:gi<N>`).
What tells AI from video work: GPM metrics (SM, any-tensor and DRAM-bandwidth utilisation; Hopper and
later, computed between consecutive ticks, so null on the first) and the encoder and decoder
utilisation. Health signals: the clock event reasons bitmask (power, thermal), NVLink error counters
summed over active links, retired pages or remapped rows and whether a repair is pending or failed.
NVML reports XIDs only as events, not as a reading: `xid_last` stays null from this source. MIG slices
carry memory and utilisation only; the device-wide counters go on the GPU's own sample.
A reading NVML does not support (`NotSupported`) is null; a GPU that answers `GpuIsLost` is reported
with health `failed` (its UUID remembered from an earlier tick when NVML can no longer read it); a host
without the driver raises `CollectorUnavailable` ("no NVIDIA driver on this host: ...").

`capture_readings()` / `dump_capture()` write the raw structure as JSON, so that a real GPU's capture
can be committed under `tests/fixtures/nvml/` and replayed by the tests (`python -m collectors.nvml_capture`).

Example:
    >>> capture = Path("tests/fixtures/nvml/h100-sxm5-mig-capture1-synthetic.json")
    >>> samples, stats = parse_readings(json.loads(capture.read_text()))
    >>> samples[0].power_w, samples[-1].health
    (412.337, 'failed')
"""

from __future__ import annotations

import contextlib
import importlib
import json
import numbers
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pydantic import Field

from collectors.base import (
    BaseCollector,
    CollectorConfig,
    CollectorError,
    CollectorUnavailable,
    ParseStats,
    build_sample,
    register_collector,
)
from collectors.units import MILLI, SAME, Converter, throttle_power, throttle_thermal
from kcloud.records import DeviceSample

__all__ = [
    "ALSO",
    "CAPTURE_FORMAT",
    "GPM_METRICS",
    "READING_MAP",
    "NvmlCollector",
    "NvmlConfig",
    "capture_readings",
    "dump_capture",
    "parse_readings",
]

CAPTURE_FORMAT = "kcloud.nvml-capture/1"

# Measurement readings (NVML units) → (canonical field, conversion).
READING_MAP: dict[str, tuple[str, Converter]] = {
    "utilization_gpu_pct": ("util_pct", SAME),  # nvmlDeviceGetUtilizationRates().gpu, %
    "memory_used_bytes": ("mem_used_bytes", SAME),  # nvmlDeviceGetMemoryInfo().used, bytes
    "memory_total_bytes": ("mem_total_bytes", SAME),  # nvmlDeviceGetMemoryInfo().total, bytes
    "power_mw": ("power_w", MILLI),  # nvmlDeviceGetPowerUsage, mW
    "power_limit_mw": ("power_limit_w", MILLI),  # nvmlDeviceGetEnforcedPowerLimit, mW
    "energy_mj": ("energy_j", MILLI),  # nvmlDeviceGetTotalEnergyConsumption, mJ since driver load
    "temperature_c": ("temp_c", SAME),  # nvmlDeviceGetTemperature(NVML_TEMPERATURE_GPU), °C
    "sm_clock_mhz": ("clock_mhz", SAME),  # nvmlDeviceGetClockInfo(NVML_CLOCK_SM), MHz
    "ecc_uncorrected_volatile": (
        "ecc_uncorrected",
        SAME,
    ),  # nvmlDeviceGetTotalEccErrors(UNCORRECTED, VOLATILE)
    # what kind of work: GPM metrics (Hopper and later) between this tick's sample and the last one, %
    "gpm_sm_util_pct": ("sm_active_pct", SAME),  # NVML_GPM_METRIC_SM_UTIL
    "gpm_any_tensor_util_pct": ("tensor_active_pct", SAME),  # NVML_GPM_METRIC_ANY_TENSOR_UTIL
    "gpm_dram_bw_util_pct": ("dram_active_pct", SAME),  # NVML_GPM_METRIC_DRAM_BW_UTIL
    "encoder_util_pct": ("enc_util_pct", SAME),  # nvmlDeviceGetEncoderUtilization()[0], %
    "decoder_util_pct": ("dec_util_pct", SAME),  # nvmlDeviceGetDecoderUtilization()[0], %
    # health: throttling, NVLink, memory taken out of service
    "clocks_event_reasons": ("throttle_power", throttle_power),  # nvmlDeviceGetCurrentClocksEventReasons
    "nvlink_errors": ("nvlink_errors", SAME),  # nvmlDeviceGetNvLinkErrorCounter, 4 kinds x active links
    "retired_pages_sbe": ("mem_rows_retired", SAME),  # len(nvmlDeviceGetRetiredPages(MULTIPLE_SINGLE_BIT))
    "retired_pages_dbe": ("mem_rows_retired", SAME),  # len(nvmlDeviceGetRetiredPages(DOUBLE_BIT))
    "remapped_rows_correctable": ("mem_rows_retired", SAME),  # nvmlDeviceGetRemappedRows()[0]
    "remapped_rows_uncorrectable": ("mem_rows_retired", SAME),  # nvmlDeviceGetRemappedRows()[1]
    "retired_pages_pending": ("mem_repair_pending", SAME),  # nvmlDeviceGetRetiredPagesPendingStatus
    "remapped_rows_pending": ("mem_repair_pending", SAME),  # nvmlDeviceGetRemappedRows()[2]
    "remapped_rows_failure": ("mem_repair_failed", SAME),  # nvmlDeviceGetRemappedRows()[3]
}
#: further fields one reading fills: the clock event reasons bitmask gives both throttle flags
ALSO: dict[str, tuple[tuple[str, Converter], ...]] = {
    "clocks_event_reasons": (("throttle_thermal", throttle_thermal),),
}
#: fields several readings add up to (a GPU has either retired pages or remapped rows)
_SUMMED = frozenset({"mem_rows_retired", "mem_repair_pending"})
#: GPM metric ids (nvml.h) of the readings above
GPM_METRICS = {"gpm_sm_util_pct": 2, "gpm_any_tensor_util_pct": 5, "gpm_dram_bw_util_pct": 10}
_NVLINK_KINDS = (0, 1, 2, 3)  # NVML_NVLINK_ERROR_DL_REPLAY, _RECOVERY, _CRC_FLIT, _CRC_DATA
_LOST = "GpuIsLost"
_NOT_SUPPORTED = "NotSupported"

Reading = dict[str, Any]


# --- parse: pure ------------------------------------------------------------------------------------


def _value(readings: Mapping[str, Any], name: str) -> Any:
    reading = readings.get(name)
    return reading.get("value") if isinstance(reading, Mapping) else None


def _errors(entry: Mapping[str, Any]) -> list[str]:
    found = []
    handle_error = entry.get("handle_error")
    if isinstance(handle_error, Mapping):
        found.append(str(handle_error.get("error")))
    readings = entry.get("readings")
    if isinstance(readings, Mapping):
        found += [str(r["error"]) for r in readings.values() if isinstance(r, Mapping) and "error" in r]
    return found


def _measurements(readings: Mapping[str, Any], stats: ParseStats, where: str) -> dict[str, float]:
    values: dict[str, float] = {}
    for name, (target, convert) in READING_MAP.items():
        reading = readings.get(name)
        if not isinstance(reading, Mapping):
            continue  # not read (e.g. utilisation of a MIG slice)
        if "error" in reading:
            error = str(reading["error"])
            if error != _LOST:  # a lost GPU is counted once, with its device
                reason = "not_supported" if error == _NOT_SUPPORTED else "nvml_error"
                stats.note(reason, f"{where}: {name}: {error} ({reading.get('message', '')})")
            continue
        raw = reading.get("value")
        if isinstance(raw, bool) or not isinstance(raw, numbers.Real):
            stats.note("value_error", f"{where}: {name} = {raw!r} is not a number")
            continue
        for field, conv in ((target, convert), *ALSO.get(name, ())):
            converted = conv(float(raw))
            if converted is None:
                stats.note("value_error", f"{where}: {name} = {raw!r} is not a valid {field}")
            elif field in _SUMMED and field in values:
                values[field] += converted
            else:
                values[field] = converted
        stats.produced[name] += 1
    return values


def _mig_samples(parent: Mapping[str, Any], migs: list[Any], stats: ParseStats, where: str) -> list[DeviceSample]:
    samples = []
    for mig in migs:
        readings = mig.get("readings") if isinstance(mig, Mapping) else None
        if not isinstance(readings, Mapping):
            stats.note("nvml_error", f"{where}: MIG slot {mig.get('slot') if isinstance(mig, Mapping) else '?'}")
            continue
        gi, ci = _value(readings, "gpu_instance_id"), _value(readings, "compute_instance_id")
        if not isinstance(gi, int):
            stats.note("no_device_identity", f"{where}: MIG slot {mig.get('slot')} has no GPU instance id")
            continue
        subdevice = f"mig:gi{gi}" + (f".ci{ci}" if isinstance(ci, int) and ci else "")
        mig_where = f"{where} {subdevice}"
        values = {**parent, "subdevice": subdevice, **_measurements(readings, stats, mig_where)}
        sample = build_sample(values, stats, mig_where)
        if sample is not None:
            samples.append(sample)
    return samples


def parse_readings(raw: Mapping[str, Any]) -> tuple[list[DeviceSample], ParseStats]:
    """The pure parse of one NVML fetch (or capture): one sample per GPU plus one per MIG instance."""
    stats = ParseStats(source="nvml")
    devices = raw.get("devices") if isinstance(raw, Mapping) else None
    if not isinstance(devices, list):
        stats.note("invalid_capture", f"expected a mapping with a `devices` list, got {type(raw).__name__}")
        return [], stats
    samples: list[DeviceSample] = []
    for entry in devices:
        if not isinstance(entry, Mapping):
            stats.note("invalid_capture", f"device entry {entry!r} is not a mapping")
            continue
        where = f"gpu {entry.get('index')}"
        found = entry.get("readings")
        readings: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        lost = _LOST in _errors(entry)
        uuid = _value(readings, "uuid") or entry.get("uuid_cached")
        if not isinstance(uuid, str) or not uuid:
            stats.note("no_device_identity", f"{where}: no UUID (errors: {', '.join(_errors(entry)) or 'none'})")
            continue
        parent: dict[str, Any] = {
            "device_uuid": uuid,
            "vendor": "nvidia",
            "kind": "gpu",
            "index": str(entry.get("index")) if entry.get("index") is not None else None,
            "model": _value(readings, "name"),
            "pci_bus_id": _value(readings, "pci_bus_id"),
            "health": "failed" if lost else "ok",
        }
        if lost:
            stats.note("gpu_lost", f"{where} ({uuid}): NVML reports the GPU is lost; health failed")
        sample = build_sample({**parent, **_measurements(readings, stats, where)}, stats, f"{where} ({uuid})")
        if sample is not None:
            samples.append(sample)
        migs = entry.get("mig")
        if isinstance(migs, list):
            samples += _mig_samples(parent, migs, stats, where)
    return samples, stats


# --- fetch: NVML I/O --------------------------------------------------------------------------------


def _error(exc: Exception) -> Reading:
    return {"error": type(exc).__name__.removeprefix("NVMLError_"), "message": str(exc)}


def _plain(value: Any) -> Any:
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


class _Reader:
    """Calls NVML functions and records each result or error as a reading."""

    def __init__(self, nvml: Any) -> None:
        self.nvml = nvml

    def read(self, fn: Callable[..., Any], *args: Any) -> Reading:
        try:
            return {"value": _plain(fn(*args))}
        except self.nvml.NVMLError as exc:
            return _error(exc)

    def read_many(self, fn: Callable[..., Any], handle: Any, fields: Mapping[str, str]) -> dict[str, Reading]:
        try:
            result = fn(handle)
        except self.nvml.NVMLError as exc:
            return dict.fromkeys(fields, _error(exc))
        return {name: {"value": int(getattr(result, attr))} for name, attr in fields.items()}

    def device(self, handle: Any) -> dict[str, Reading]:
        n = self.nvml
        readings = {
            "uuid": self.read(n.nvmlDeviceGetUUID, handle),
            "name": self.read(n.nvmlDeviceGetName, handle),
            "pci_bus_id": self.read(lambda h: n.nvmlDeviceGetPciInfo(h).busId, handle),
            "utilization_gpu_pct": self.read(lambda h: n.nvmlDeviceGetUtilizationRates(h).gpu, handle),
            **self.memory(handle),
            "power_mw": self.read(n.nvmlDeviceGetPowerUsage, handle),
            "power_limit_mw": self.read(n.nvmlDeviceGetEnforcedPowerLimit, handle),
            "energy_mj": self.read(n.nvmlDeviceGetTotalEnergyConsumption, handle),
            "temperature_c": self.read(n.nvmlDeviceGetTemperature, handle, n.NVML_TEMPERATURE_GPU),
            "sm_clock_mhz": self.read(n.nvmlDeviceGetClockInfo, handle, n.NVML_CLOCK_SM),
            "ecc_uncorrected_volatile": self.read(
                n.nvmlDeviceGetTotalEccErrors,
                handle,
                n.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
                n.NVML_VOLATILE_ECC,
            ),
            "mig_mode": self.read(n.nvmlDeviceGetMigMode, handle),
            "encoder_util_pct": self.read(lambda h: n.nvmlDeviceGetEncoderUtilization(h)[0], handle),
            "decoder_util_pct": self.read(lambda h: n.nvmlDeviceGetDecoderUtilization(h)[0], handle),
            "clocks_event_reasons": self.read(
                getattr(n, "nvmlDeviceGetCurrentClocksEventReasons", None)
                or n.nvmlDeviceGetCurrentClocksThrottleReasons,
                handle,
            ),
            "nvlink_errors": self.nvlink_errors(handle),
            "retired_pages_sbe": self.read(
                lambda h: len(
                    n.nvmlDeviceGetRetiredPages(h, n.NVML_PAGE_RETIREMENT_CAUSE_MULTIPLE_SINGLE_BIT_ECC_ERRORS)
                ),
                handle,
            ),
            "retired_pages_dbe": self.read(
                lambda h: len(n.nvmlDeviceGetRetiredPages(h, n.NVML_PAGE_RETIREMENT_CAUSE_DOUBLE_BIT_ECC_ERROR)),
                handle,
            ),
            "retired_pages_pending": self.read(n.nvmlDeviceGetRetiredPagesPendingStatus, handle),
            **self.remapped_rows(handle),
        }
        return readings

    def remapped_rows(self, handle: Any) -> dict[str, Reading]:
        names = (
            "remapped_rows_correctable",
            "remapped_rows_uncorrectable",
            "remapped_rows_pending",
            "remapped_rows_failure",
        )
        try:
            found = self.nvml.nvmlDeviceGetRemappedRows(handle)
        except self.nvml.NVMLError as exc:
            return dict.fromkeys(names, _error(exc))
        return {name: {"value": int(value)} for name, value in zip(names, found, strict=True)}

    def nvlink_errors(self, handle: Any) -> Reading:
        """Replay, recovery and CRC (flit, data) errors summed over the active links; the error of the
        first link when the GPU has no NVLink (`NotSupported` on PCIe cards)."""
        n, total, active = self.nvml, 0, 0
        for link in range(int(getattr(n, "NVML_NVLINK_MAX_LINKS", 18))):
            try:
                if n.nvmlDeviceGetNvLinkState(handle, link) != 1:  # NVML_FEATURE_ENABLED
                    continue
                total += sum(int(n.nvmlDeviceGetNvLinkErrorCounter(handle, link, kind)) for kind in _NVLINK_KINDS)
            except n.NVMLError as exc:
                if link == 0:
                    return _error(exc)
                break  # past the last link this GPU has
            active += 1
        if active == 0:
            return {"error": "NotSupported", "message": "no active NVLink"}
        return {"value": total}

    def memory(self, handle: Any) -> dict[str, Reading]:
        fields = {"memory_used_bytes": "used", "memory_total_bytes": "total"}
        return self.read_many(self.nvml.nvmlDeviceGetMemoryInfo, handle, fields)

    def migs(self, handle: Any) -> list[dict[str, Any]]:
        n = self.nvml
        count = self.read(n.nvmlDeviceGetMaxMigDeviceCount, handle)
        out: list[dict[str, Any]] = []
        for slot in range(int(count.get("value") or 0)):
            try:
                mig = n.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except n.NVMLError_NotFound:
                continue  # an empty slot
            except n.NVMLError as exc:
                out.append({"slot": slot, "handle_error": _error(exc)})
                continue
            readings = {
                "gpu_instance_id": self.read(n.nvmlDeviceGetGpuInstanceId, mig),
                "compute_instance_id": self.read(n.nvmlDeviceGetComputeInstanceId, mig),
                "uuid": self.read(n.nvmlDeviceGetUUID, mig),
                "utilization_gpu_pct": self.read(lambda h: n.nvmlDeviceGetUtilizationRates(h).gpu, mig),
                **self.memory(mig),
            }
            out.append({"slot": slot, "readings": readings})
        return out


class NvmlConfig(CollectorConfig):
    """Settings of the NVML source."""

    include_mig: bool = Field(True, description="Report each MIG instance as a subdevice sample.")
    replay_file: Path | None = Field(
        None, description="Return this capture (JSON written by dump_capture) instead of calling NVML."
    )


@register_collector("nvml")
class NvmlCollector(BaseCollector[NvmlConfig]):
    """Reads every GPU through NVML once per tick; NVML stays initialised until `close()`."""

    config_model = NvmlConfig

    def __init__(self, config: NvmlConfig, nvml: Any = None) -> None:
        super().__init__(config)
        self._nvml: Any = nvml
        self._initialised = False
        self._uuid_by_index: dict[int, str] = {}
        self._gpm: dict[int, list[Any]] = {}  # index -> [previous sample, spare sample]
        self._gpm_unsupported: set[int] = set()

    @property
    def source(self) -> str:
        return "nvml"

    def _init(self) -> Any:
        if self._nvml is None:
            try:
                self._nvml = importlib.import_module("pynvml")
            except ImportError as exc:
                raise CollectorUnavailable(
                    "nvml: the nvidia-ml-py package is not installed (pip install nvidia-ml-py)"
                ) from exc
        if not self._initialised:
            try:
                self._nvml.nvmlInit()
            except self._nvml.NVMLError as exc:
                raise CollectorUnavailable(
                    f"no NVIDIA driver on this host: {exc} ({type(exc).__name__}); "
                    "use a host with the NVIDIA driver loaded, or another source"
                ) from exc
            self._initialised = True
        return self._nvml

    def fetch(self) -> dict[str, Any]:
        """The raw readings of every GPU (see the module docstring for the shape)."""
        if self.config.replay_file is not None:
            try:
                loaded: dict[str, Any] = json.loads(self.config.replay_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise CollectorError(f"nvml: cannot replay {self.config.replay_file}: {exc}") from exc
            return loaded
        nvml = self._init()
        reader = _Reader(nvml)
        count = reader.read(nvml.nvmlDeviceGetCount)
        if "error" in count:
            raise CollectorError(f"nvml: cannot count GPUs: {count['error']} ({count['message']})")
        devices = [self._device(reader, index) for index in range(int(count["value"]))]
        return {
            "format": CAPTURE_FORMAT,
            "driver_version": reader.read(nvml.nvmlSystemGetDriverVersion),
            "devices": devices,
        }

    def _device(self, reader: _Reader, index: int) -> dict[str, Any]:
        entry: dict[str, Any] = {"index": index}
        try:
            handle = reader.nvml.nvmlDeviceGetHandleByIndex(index)
        except reader.nvml.NVMLError as exc:
            entry["handle_error"] = _error(exc)
        else:
            entry["readings"] = readings = reader.device(handle)
            uuid = readings["uuid"].get("value")
            if isinstance(uuid, str) and uuid:
                self._uuid_by_index[index] = uuid
            readings.update(self._gpm_readings(reader.nvml, index, handle))
            mode = readings["mig_mode"].get("value")
            if self.config.include_mig and isinstance(mode, list) and mode and mode[0] == 1:
                entry["mig"] = reader.migs(handle)
        if "value" not in entry.get("readings", {}).get("uuid", {}) and index in self._uuid_by_index:
            entry["uuid_cached"] = self._uuid_by_index[index]
        return entry

    def _gpm_readings(self, n: Any, index: int, handle: Any) -> dict[str, Reading]:
        """SM, tensor and DRAM activity from GPM over the time since the previous tick: nothing on the
        first tick (no earlier sample), `NotSupported` before Hopper or with an older binding."""
        if index in self._gpm_unsupported:
            return {name: {"error": _NOT_SUPPORTED, "message": "GPM not supported"} for name in GPM_METRICS}
        try:
            if not n.nvmlGpmQueryDeviceSupport(handle).isSupportedDevice:
                raise n.NVMLError_NotSupported()
            pair = self._gpm.get(index)
            if pair is None:
                pair = self._gpm[index] = [None, n.nvmlGpmSampleAlloc()]
            previous, current = pair
            n.nvmlGpmSampleGet(handle, current)
        except (n.NVMLError, AttributeError) as exc:
            error = _error(exc) if isinstance(exc, n.NVMLError) else {"error": _NOT_SUPPORTED, "message": str(exc)}
            if error["error"] in (_NOT_SUPPORTED, "FunctionNotFound"):
                self._gpm_unsupported.add(index)  # asked once: no GPM on this GPU or with this driver
            return dict.fromkeys(GPM_METRICS, error)
        if previous is None:
            pair[0] = current
            pair[1] = n.nvmlGpmSampleAlloc()
            return {}
        request = n.c_nvmlGpmMetricsGet_t()
        request.version = n.NVML_GPM_METRICS_GET_VERSION
        request.numMetrics = len(GPM_METRICS)
        request.sample1, request.sample2 = previous, current
        for i, metric_id in enumerate(GPM_METRICS.values()):
            request.metrics[i].metricId = metric_id
        pair[0], pair[1] = current, previous  # this tick's sample is the next one's start
        try:
            n.nvmlGpmMetricsGet(request)
        except n.NVMLError as exc:
            return dict.fromkeys(GPM_METRICS, _error(exc))
        out: dict[str, Reading] = {}
        for i, name in enumerate(GPM_METRICS):
            metric = request.metrics[i]
            if metric.nvmlReturn != 0:
                out[name] = {
                    "error": "NVMLError",
                    "message": f"GPM metric {metric.metricId}: return {metric.nvmlReturn}",
                }
            else:
                out[name] = {"value": float(metric.value)}
        return out

    def parse_with_stats(self, raw: Mapping[str, Any]) -> tuple[list[DeviceSample], ParseStats]:
        return parse_readings(raw)

    def close(self) -> None:
        """Free the GPM samples and shut NVML down if this collector initialised it."""
        if self._nvml is not None:
            for pair in self._gpm.values():
                for sample in pair:
                    if sample is not None:
                        with contextlib.suppress(self._nvml.NVMLError, AttributeError):
                            self._nvml.nvmlGpmSampleFree(sample)
        self._gpm.clear()
        if self._initialised and self._nvml is not None:
            with contextlib.suppress(self._nvml.NVMLError):
                self._nvml.nvmlShutdown()
            self._initialised = False


def capture_readings(config: NvmlConfig | None = None) -> dict[str, Any]:
    """One NVML fetch on this host, for committing as a fixture. Raises `CollectorUnavailable` without
    a driver."""
    collector = NvmlCollector(config or NvmlConfig())
    try:
        return collector.fetch()
    finally:
        collector.close()


def dump_capture(raw: Mapping[str, Any], path: Path) -> Path:
    """Write a raw-readings structure as indented JSON (the fixture format `parse_readings` replays)."""
    path.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    return path
