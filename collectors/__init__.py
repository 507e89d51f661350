"""Telemetry sources → Kafka: the collectors of the edge agent.

`collectors.base` holds the Collector protocol, the `COLLECTORS` registry and `build_collector`; one
module per source (`nvml`, `nvidia_smi`, `prom` with its exporter maps under `prom_maps/`) registers
itself there when `collectors.base` is imported. `simulator` (with `sim/`) is a deterministic fleet.

The agent (`kcloud collect SOURCE`, `collectors.cli`) runs a source on an interval (`agent`) and hands
each tick's snapshots to `producer.SnapshotProducer`, whose delivery thread (`delivery`) sends them to
Kafka or, while Kafka is away, to the bounded disk spool (`spool`); `metrics` are the agent's own
Prometheus metrics.

A stage: imports only the core (`kcloud`).
"""

__all__: list[str] = []
