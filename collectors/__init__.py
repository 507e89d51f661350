"""Telemetry sources → Kafka: the collectors of the edge agent.

`collectors.base` holds the Collector protocol, the `COLLECTORS` registry and `build_collector`; one
module per source (`nvml`, `nvidia_smi`, `prom` with its exporter maps under `prom_maps/`) registers
itself there when `collectors.base` is imported.
"""

__all__: list[str] = []
