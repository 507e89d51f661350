"""NVIDIA dcgm-exporter (github.com/NVIDIA/dcgm-exporter) → canonical fields.

Units from its `etc/default-counters.csv`: clocks MHz, temperatures °C, power W, total energy a
counter in mJ, framebuffer (FB_*) in MiB, `DCGM_FI_PROF_*` ratios 0-1. Older builds print DCGM's
"blank" sentinels (≥ 0x7FFFFFFFFFFFFFF0, and 0x7FFFFFF0 for 32-bit fields) instead of omitting a
series: every value passes a blank guard. On MIG GPUs each GPU instance has its own series
(`GPU_I_ID` label): framebuffer and engine activity belong to that slice, device-wide fields (power,
energy, temperature, clocks, ECC) to the whole GPU.

Labels: `UUID` keeps the `GPU-` prefix; `gpu` is the index; `modelName`, `pci_bus_id`; `container`,
`namespace`, `pod` (may be empty); `Hostname` is the pod's unless NODE_NAME is set, so it is ignored.
"""

from __future__ import annotations

from collectors.prom_maps.spec import ExporterMap, IdentityRules, MetricSpec
from collectors.units import MIB_TO_BYTES, MILLI, RATIO_TO_PCT, SAME, dcgm_counter, dcgm_gauge

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
