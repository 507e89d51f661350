"""NVIDIA dcgm-exporter (github.com/NVIDIA/dcgm-exporter) → canonical fields.

Units from its `etc/default-counters.csv`: clocks MHz, temperatures °C, power W, total energy a
counter in mJ, framebuffer (FB_*) in MiB, `DCGM_FI_PROF_*` ratios 0-1. Older builds print DCGM's
"blank" sentinels (≥ 0x7FFFFFFFFFFFFFF0, and 0x7FFFFFF0 for 32-bit fields) instead of omitting a
series: every value passes a blank guard. On MIG GPUs each GPU instance has its own series
(`GPU_I_ID` label): framebuffer and engine activity belong to that slice, device-wide fields (power,
energy, temperature, clocks, ECC, video engines, XID, throttling, NVLink, retired rows) to the whole GPU.

What tells AI from video: `DCGM_FI_PROF_SM_ACTIVE`, `_PIPE_TENSOR_ACTIVE`, `_DRAM_ACTIVE` (DCP fields,
off in the default counters, on in `dcp-metrics-included.csv`) and `DCGM_FI_DEV_ENC_UTIL` / `_DEC_UTIL`.
A page without a field leaves it null: not reported, never 0. The exception is
`DCGM_FI_DEV_XID_ERRORS` ("value of the last XID error encountered"): DCGM keeps it blank until the
first XID, so its blank sentinel reads as 0, none seen; builds from 3.3.6 add `err_code`/`err_msg`
labels (`err_msg="No Error"` with value 0).

Labels: `UUID` keeps the `GPU-` prefix; `gpu` is the index; `modelName`, `pci_bus_id`; `container`,
`namespace`, `pod` (may be empty); `Hostname` is the pod's unless NODE_NAME is set, so it is ignored.
"""

from __future__ import annotations

from collectors.prom_maps.spec import ExporterMap, IdentityRules, MetricSpec
from collectors.units import (
    MIB_TO_BYTES,
    MILLI,
    RATIO_TO_PCT,
    SAME,
    dcgm_counter,
    dcgm_gauge,
    dcgm_xid,
    throttle_power,
    throttle_thermal,
)

__all__ = ["EXPORTER", "IDENTITY", "METRIC_MAP"]

METRIC_MAP: dict[str, MetricSpec] = {
    # utilisation: whole-GPU percent first; per-instance graphics-engine ratio (MIG, DCP) second
    "DCGM_FI_DEV_GPU_UTIL": MetricSpec("util_pct", dcgm_gauge(SAME)),
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE": MetricSpec("util_pct", dcgm_gauge(RATIO_TO_PCT)),
    # framebuffer, MiB; total = used + free + reserved (reserved exists from DCGM 3.x)
    "DCGM_FI_DEV_FB_USED": MetricSpec("mem_used_bytes", dcgm_gauge(MIB_TO_BYTES)),
    "DCGM_FI_DEV_FB_FREE": MetricSpec("_mem_free_bytes", dcgm_gauge(MIB_TO_BYTES)),
    "DCGM_FI_DEV_FB_RESERVED": MetricSpec("_mem_reserved_bytes", dcgm_gauge(MIB_TO_BYTES)),
    # power, W; the enforced limit first, the management limit when only it is exported
    "DCGM_FI_DEV_POWER_USAGE": MetricSpec("power_w", dcgm_gauge(SAME), per_device=True),
    "DCGM_FI_DEV_ENFORCED_POWER_LIMIT": MetricSpec("power_limit_w", dcgm_gauge(SAME), per_device=True),
    "DCGM_FI_DEV_POWER_MGMT_LIMIT": MetricSpec("power_limit_w", dcgm_gauge(SAME), per_device=True),
    # energy since boot: counter in mJ
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION": MetricSpec("energy_j", dcgm_counter(MILLI), per_device=True),
    # thermals and clocks
    "DCGM_FI_DEV_GPU_TEMP": MetricSpec("temp_c", dcgm_gauge(SAME), per_device=True),
    "DCGM_FI_DEV_SM_CLOCK": MetricSpec("clock_mhz", dcgm_gauge(SAME), per_device=True),
    # uncorrectable (double-bit) ECC errors since the driver loaded
    "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL": MetricSpec("ecc_uncorrected", dcgm_counter(SAME), per_device=True),
    # what kind of work: profiling (DCP) ratios 0-1, per MIG instance where one is listed
    "DCGM_FI_PROF_SM_ACTIVE": MetricSpec("sm_active_pct", dcgm_gauge(RATIO_TO_PCT)),
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE": MetricSpec("tensor_active_pct", dcgm_gauge(RATIO_TO_PCT)),
    "DCGM_FI_PROF_DRAM_ACTIVE": MetricSpec("dram_active_pct", dcgm_gauge(RATIO_TO_PCT)),
    # video engines, percent; whole GPU (DCGM does not report them per MIG instance)
    "DCGM_FI_DEV_ENC_UTIL": MetricSpec("enc_util_pct", dcgm_gauge(SAME), per_device=True),
    "DCGM_FI_DEV_DEC_UTIL": MetricSpec("dec_util_pct", dcgm_gauge(SAME), per_device=True),
    # last XID code; blank until the first XID, which means none seen (0), not "not reported"
    "DCGM_FI_DEV_XID_ERRORS": MetricSpec("xid_last", dcgm_xid, per_device=True),
    # clock event (throttle) reasons bitmask, renamed in DCGM 3.3; one series gives both flags
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS": MetricSpec(
        "throttle_power", throttle_power, per_device=True, also=(("throttle_thermal", throttle_thermal),)
    ),
    "DCGM_FI_DEV_CLOCK_THROTTLE_REASONS": MetricSpec(
        "throttle_power", throttle_power, per_device=True, also=(("throttle_thermal", throttle_thermal),)
    ),
    # NVLink errors summed over links (the *_TOTAL fields) and kinds
    **{
        f"DCGM_FI_DEV_NVLINK_{kind}_ERROR_COUNT_TOTAL": MetricSpec(
            "nvlink_errors", dcgm_counter(SAME), aggregate="sum", per_device=True
        )
        for kind in ("CRC_FLIT", "CRC_DATA", "REPLAY", "RECOVERY")
    },
    # memory taken out of service: retired pages (before Ampere) or remapped rows (Ampere and later)
    **{
        name: MetricSpec("mem_rows_retired", dcgm_counter(SAME), aggregate="sum", per_device=True)
        for name in (
            "DCGM_FI_DEV_RETIRED_SBE",
            "DCGM_FI_DEV_RETIRED_DBE",
            "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
            "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        )
    },
    "DCGM_FI_DEV_RETIRED_PENDING": MetricSpec("mem_repair_pending", dcgm_gauge(SAME), aggregate="sum", per_device=True),
    "DCGM_FI_DEV_ROW_REMAP_PENDING": MetricSpec(
        "mem_repair_pending", dcgm_gauge(SAME), aggregate="sum", per_device=True
    ),
    "DCGM_FI_DEV_ROW_REMAP_FAILURE": MetricSpec("mem_repair_failed", dcgm_gauge(SAME), per_device=True),
}

IDENTITY = IdentityRules(
    uuid=("UUID",),
    index=("gpu",),
    model=("modelName",),
    pci_bus_id=("pci_bus_id",),
    subdevice=(("GPU_I_ID", "mig:gi{}"),),
)

EXPORTER = ExporterMap(
    name="dcgm",
    vendor="nvidia",
    kind="gpu",
    metric_map=METRIC_MAP,
    identity=IDENTITY,
    docs="https://github.com/NVIDIA/dcgm-exporter/blob/main/etc/default-counters.csv",
)
