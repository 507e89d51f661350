"""utkuozdemir/nvidia_gpu_exporter (`nvidia_smi_*` names) → canonical fields.

The exporter runs `nvidia-smi` and converts units itself: `_bytes`, `_watts`, `_ratio` (0-1, so
times 100 here), `_clock_hz` (divided by 1e6 here). Measurement series carry only a `uuid` label
(lower-case, no `GPU-`); `nvidia_smi_gpu_info` carries the rest of the identity (`name`, `index`,
`pci_bus_id`) with value 1. nvidia-smi has no SM, tensor or DRAM activity field and no XID, so those
stay null from this exporter.
"""

from __future__ import annotations

from collectors.prom_maps.spec import ExporterMap, IdentityRules, MetricSpec
from collectors.units import HZ_TO_MHZ, RATIO_TO_PCT, SAME

__all__ = ["EXPORTER", "IDENTITY", "METRIC_MAP"]

METRIC_MAP: dict[str, MetricSpec] = {
    "nvidia_smi_utilization_gpu_ratio": MetricSpec("util_pct", RATIO_TO_PCT),
    "nvidia_smi_memory_used_bytes": MetricSpec("mem_used_bytes", SAME),
    "nvidia_smi_memory_total_bytes": MetricSpec("mem_total_bytes", SAME),
    "nvidia_smi_power_draw_watts": MetricSpec("power_w", SAME),
    "nvidia_smi_enforced_power_limit_watts": MetricSpec("power_limit_w", SAME),
    "nvidia_smi_power_limit_watts": MetricSpec("power_limit_w", SAME),
    "nvidia_smi_temperature_gpu": MetricSpec("temp_c", SAME),
    "nvidia_smi_clocks_current_sm_clock_hz": MetricSpec("clock_mhz", HZ_TO_MHZ),
    "nvidia_smi_ecc_errors_uncorrected_volatile_total": MetricSpec("ecc_uncorrected", SAME),
    # video engines (nvidia-smi utilization.encoder / .decoder as ratios)
    "nvidia_smi_utilization_encoder_ratio": MetricSpec("enc_util_pct", RATIO_TO_PCT),
    "nvidia_smi_utilization_decoder_ratio": MetricSpec("dec_util_pct", RATIO_TO_PCT),
}

IDENTITY = IdentityRules(
    uuid=("uuid",),
    index=("index",),
    model=("name",),
    pci_bus_id=("pci_bus_id",),
    namespace=(),
    pod=(),
    container=(),
)

EXPORTER = ExporterMap(
    name="nvidia_smi_exporter",
    vendor="nvidia",
    kind="gpu",
    metric_map=METRIC_MAP,
    identity=IDENTITY,
    info_metrics=frozenset({"nvidia_smi_gpu_info"}),
    docs="https://github.com/utkuozdemir/nvidia_gpu_exporter#metrics",
)
