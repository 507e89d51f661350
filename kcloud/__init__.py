"""kcloud-observatory: telemetry from GPU and domestic-NPU fleets into auditable deployment evidence.

The core package every pipeline stage imports: the wire records, the metric catalogue, topic names,
settings and the database layer.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
