"""kcloud-observatory: telemetry from GPU and domestic-NPU fleets into auditable deployment evidence.

The core: the wire records and their catalogue, settings, topic names and topic creation, the event-time
window, who owns what, the API's answer shapes, the database layer, the deployment ledger and the child
process supervisor. Every stage imports it; it imports no stage, not the application (`console/`) and not
`infra/` (tests/unit/test_layout.py holds every package to its layer).
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
