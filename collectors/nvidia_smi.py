"""`nvidia-smi` CSV as a telemetry source, for hosts where NVML cannot be loaded from Python.

`fetch()` runs `nvidia-smi --query-gpu=<QUERY_FIELDS> --format=csv,noheader,nounits` with a timeout;
`parse(raw)` is pure: one row per GPU, columns in `QUERY_FIELDS` order, units as `nounits` prints
them (MiB, W, °C, MHz, %, a `0x` bitmask, Yes/No). A row of the legacy query (`LEGACY_QUERY_FIELDS`,
older captures and drivers) parses too, with the newer fields null. `[N/A]`, `[Not Supported]` and
`N/A` make that field null (counted as
`not_available`); other bracketed errors (`[Unknown Error]`) and unparseable numbers are nulls counted
as `value_error`; a row with the wrong number of columns is dropped (`csv_column_mismatch`).
nvidia-smi has no query field for cumulative energy: `energy_j` comes only from NVML or DCGM.

Example:
    >>> row = "0, GPU-8f4c1d2e-5a6b-4c7d-9e8f-0a1b2c3d4e5f, NVIDIA H100 80GB HBM3, 00000000:19:00.0, " \\
    ...       "87, 61440, 81559, 412.33, 700.00, 47, 1980, 0"
    >>> samples, stats = parse_csv(row)
    >>> samples[0].power_w, samples[0].mem_used_bytes
    (412.33, 64424509440)
"""

from __future__ import annotations

import csv
import io
import math
import shutil
import subprocess
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
from collectors.units import MIB_TO_BYTES, SAME, Converter, throttle_power, throttle_thermal
from kcloud.records import DeviceSample

__all__ = [
    "ALSO",
    "COLUMN_MAP",
    "LEGACY_QUERY_FIELDS",
    "QUERY_FIELDS",
    "NvidiaSmiCollector",
    "NvidiaSmiConfig",
    "parse_csv",
    "query_command",
]

# The query of older releases, in column order; a capture of it still parses (the rest null).
LEGACY_QUERY_FIELDS: tuple[str, ...] = (
    "index",
    "uuid",
    "name",
    "pci.bus_id",
    "utilization.gpu",
    "memory.used",
    "memory.total",
    "power.draw",
    "enforced.power.limit",
    "temperature.gpu",
    "clocks.sm",
    "ecc.errors.uncorrected.volatile.total",
)
# The query, in column order: the legacy columns, then the video engines, the throttle bitmask, retired
# pages (before Ampere) and remapped rows (Ampere and later). Every field exists in
# `nvidia-smi --help-query-gpu` of current drivers (`clocks_throttle_reasons.*` is still accepted after
# its renaming to `clocks_event_reasons.*`); a driver that refuses one makes `fetch()` fall back to the
# legacy query. nvidia-smi has no query field for SM, tensor or DRAM activity, XID or NVLink errors.
QUERY_FIELDS: tuple[str, ...] = (
    *LEGACY_QUERY_FIELDS,
    "utilization.encoder",
    "utilization.decoder",
    "clocks_throttle_reasons.active",
    "retired_pages.sbe",
    "retired_pages.dbe",
    "retired_pages.pending",
    "remapped_rows.correctable",
    "remapped_rows.uncorrectable",
    "remapped_rows.pending",
    "remapped_rows.failure",
)
_QUERIES = {len(q): q for q in (QUERY_FIELDS, LEGACY_QUERY_FIELDS)}

# Measurement columns → (canonical field, conversion from the `nounits` unit).
COLUMN_MAP: dict[str, tuple[str, Converter]] = {
    "utilization.gpu": ("util_pct", SAME),  # %
    "memory.used": ("mem_used_bytes", MIB_TO_BYTES),  # MiB
    "memory.total": ("mem_total_bytes", MIB_TO_BYTES),  # MiB
    "power.draw": ("power_w", SAME),  # W
    "enforced.power.limit": ("power_limit_w", SAME),  # W
    "temperature.gpu": ("temp_c", SAME),  # °C
    "clocks.sm": ("clock_mhz", SAME),  # MHz
    "ecc.errors.uncorrected.volatile.total": ("ecc_uncorrected", SAME),  # count
    "utilization.encoder": ("enc_util_pct", SAME),  # %
    "utilization.decoder": ("dec_util_pct", SAME),  # %
    "clocks_throttle_reasons.active": ("throttle_power", throttle_power),  # hex bitmask
    "retired_pages.sbe": ("mem_rows_retired", SAME),  # count of pages, summed with the next three
    "retired_pages.dbe": ("mem_rows_retired", SAME),
    "remapped_rows.correctable": ("mem_rows_retired", SAME),  # count of rows
    "remapped_rows.uncorrectable": ("mem_rows_retired", SAME),
    "retired_pages.pending": ("mem_repair_pending", SAME),  # Yes/No, either pending makes it true
    "remapped_rows.pending": ("mem_repair_pending", SAME),
    "remapped_rows.failure": ("mem_repair_failed", SAME),  # Yes/No
}
#: further fields one column fills: the throttle bitmask gives both flags
ALSO: dict[str, tuple[tuple[str, Converter], ...]] = {
    "clocks_throttle_reasons.active": (("throttle_thermal", throttle_thermal),),
}
#: fields several columns add up to (a device reports either retired pages or remapped rows)
_SUMMED = frozenset({"mem_rows_retired", "mem_repair_pending"})
#: how nvidia-smi prints a yes/no field
_WORDS = {"yes": 1.0, "no": 0.0, "active": 1.0, "not active": 0.0, "enabled": 1.0, "disabled": 0.0}
# Descriptive columns → DeviceSample field.
_IDENTITY_COLUMNS = {"uuid": "device_uuid", "index": "index", "name": "model", "pci.bus_id": "pci_bus_id"}
_NOT_AVAILABLE = frozenset({"[N/A]", "[Not Supported]", "N/A", "[Not Available]", ""})


def query_command(binary: str = "nvidia-smi", fields: tuple[str, ...] = QUERY_FIELDS) -> list[str]:
    """The argv `fetch()` runs."""
    return [binary, f"--query-gpu={','.join(fields)}", "--format=csv,noheader,nounits"]


def _number(text: str) -> float:
    """A cell as a number: decimal, `0x` hexadecimal (bitmasks) or a yes/no word."""
    word = _WORDS.get(text.lower())
    if word is not None:
        return word
    if text.lower().startswith("0x"):
        return float(int(text, 16))
    return float(text)


def _cell(column: str, text: str, stats: ParseStats, where: str) -> str | float | None:
    if text in _NOT_AVAILABLE:
        stats.note("not_available", f"{where}: {column} = {text!r}")
        return None
    if text.startswith("[") and text.endswith("]"):
        stats.note("value_error", f"{where}: {column} = {text!r}")
        return None
    if column not in COLUMN_MAP:
        return text
    try:
        number = _number(text)
    except ValueError:
        stats.note("value_error", f"{where}: {column} = {text!r} is not a number")
        return None
    if not math.isfinite(number):
        stats.note("non_finite_value", f"{where}: {column} = {text!r}")
        return None
    return number


def parse_csv(raw: bytes | str) -> tuple[list[DeviceSample], ParseStats]:
    """The pure parse of one `nvidia-smi` run: one sample per well-formed row, and what was dropped."""
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    stats = ParseStats(source="nvidia-smi")
    samples: list[DeviceSample] = []
    for lineno, row in enumerate(csv.reader(io.StringIO(text), skipinitialspace=True), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        where = f"row {lineno}"
        columns = _QUERIES.get(len(row))
        if columns is None:
            stats.note(
                "csv_column_mismatch",
                f"{where}: {len(row)} columns, expected {len(QUERY_FIELDS)} "
                f"(or {len(LEGACY_QUERY_FIELDS)}, the legacy query): {row[:4]}",
            )
            continue
        values: dict[str, Any] = {"vendor": "nvidia", "kind": "gpu"}
        for column, cell in zip(columns, row, strict=True):
            value = _cell(column, cell.strip(), stats, where)
            if value is None:
                continue
            if column not in COLUMN_MAP:
                values[_IDENTITY_COLUMNS[column]] = str(value)
                continue
            target, convert = COLUMN_MAP[column]
            for field, conv in ((target, convert), *ALSO.get(column, ())):
                converted = conv(float(value))
                if converted is None:
                    stats.note("value_error", f"{where}: {column} = {cell.strip()!r} is not a valid {field}")
                elif field in _SUMMED and field in values:
                    values[field] += converted
                else:
                    values[field] = converted
            stats.produced[column] += 1
        if "device_uuid" not in values:
            stats.note("no_device_identity", f"{where}: no uuid")
            continue
        sample = build_sample(values, stats, f"nvidia-smi {where} ({values['device_uuid']})")
        if sample is not None:
            samples.append(sample)
    return samples, stats


class NvidiaSmiConfig(CollectorConfig):
    """Settings of the nvidia-smi source."""

    binary: str = Field("nvidia-smi", description="nvidia-smi executable (a name on PATH or a path).")
    timeout_s: float = Field(10.0, gt=0, le=120, description="Longest wait for one nvidia-smi run, in seconds.")
    file: Path | None = Field(None, description="Read captured CSV from this file instead of running nvidia-smi.")


@register_collector("nvidia-smi")
class NvidiaSmiCollector(BaseCollector[NvidiaSmiConfig]):
    """Runs nvidia-smi once per tick and parses its CSV."""

    config_model = NvidiaSmiConfig

    def __init__(self, config: NvidiaSmiConfig) -> None:
        super().__init__(config)
        self._fields = QUERY_FIELDS  # LEGACY_QUERY_FIELDS once the driver has refused a newer field

    @property
    def source(self) -> str:
        return "nvidia-smi"

    def fetch(self) -> str:
        """nvidia-smi's stdout. Raises `CollectorUnavailable` when the binary is missing, `CollectorError`
        when it fails or times out."""
        cfg = self.config
        if cfg.file is not None:
            try:
                return cfg.file.read_text(encoding="utf-8", errors="replace")
            except OSError as exc:
                raise CollectorError(f"nvidia-smi: cannot read {cfg.file}: {exc.strerror or exc}") from exc
        if shutil.which(cfg.binary) is None:
            raise CollectorUnavailable(f"no NVIDIA driver on this host: {cfg.binary!r} is not an executable on PATH")
        done = self._run(query_command(cfg.binary, self._fields))
        if done.returncode != 0 and self._fields is QUERY_FIELDS and "not a valid field" in done.stdout + done.stderr:
            # an older driver that lacks one of the newer fields: the legacy query, remembered
            self._fields = LEGACY_QUERY_FIELDS
            done = self._run(query_command(cfg.binary, self._fields))
        if done.returncode != 0:
            first = (done.stdout.strip() or done.stderr.strip() or "no output").splitlines()[0]
            raise CollectorError(f"nvidia-smi exited with status {done.returncode}: {first}")
        return done.stdout

    def _run(self, argv: list[str]) -> subprocess.CompletedProcess[str]:
        cfg = self.config
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=cfg.timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise CollectorError(
                f"nvidia-smi: no answer within {cfg.timeout_s} s; a hung GPU or driver can cause this "
                "(check `dmesg` for Xid errors)"
            ) from exc
        except OSError as exc:
            raise CollectorUnavailable(f"no NVIDIA driver on this host: cannot run {cfg.binary}: {exc}") from exc

    def parse_with_stats(self, raw: bytes | str) -> tuple[list[DeviceSample], ParseStats]:
        return parse_csv(raw)
