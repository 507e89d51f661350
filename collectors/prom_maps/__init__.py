"""Exporter maps for `collectors/prom.py`: one module per Prometheus exporter, each with a METRIC_MAP.

`EXPORTERS` maps the `exporter` key of the prom collector's config (and the `prom:<name>` wire source)
to its `ExporterMap`.
"""

from __future__ import annotations

from collectors.prom_maps import amd, ascend, dcgm, furiosa, gaudi, nvidia_smi_exporter, rbln
from collectors.prom_maps.spec import AUX_FIELDS, ExporterMap, IdentityRules, MetricSpec

__all__ = ["AUX_FIELDS", "EXPORTERS", "ExporterMap", "IdentityRules", "MetricSpec"]

EXPORTERS: dict[str, ExporterMap] = {
    m.EXPORTER.name: m.EXPORTER for m in (dcgm, furiosa, rbln, ascend, amd, gaudi, nvidia_smi_exporter)
}
