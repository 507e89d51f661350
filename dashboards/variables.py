"""The template variables the dashboards share: site, vendor, kind (gpu/npu), node, device, tenant.

Multi-value variables with "All" are filtered with `dashboards.sqlparts.var_in`; node and device
options follow the site (and node) chosen above them.
"""

from __future__ import annotations

from dashboards.spec import VariableSpec
from dashboards.sqlparts import var_in

__all__ = ["DEVICE", "DOMESTIC_VENDOR", "KIND", "NODE", "NODE_ONE", "SITE", "TENANT", "VENDOR"]

SITE = VariableSpec(
    name="site",
    label="Site",
    description="Sites to show (from the sites table).",
    query="SELECT site_id FROM sites ORDER BY 1",
)
VENDOR = VariableSpec(
    name="vendor",
    label="Vendor",
    description="Accelerator vendors that have devices in the fleet.",
    query=(
        "SELECT v.vendor_id FROM vendors v "
        "WHERE EXISTS (SELECT 1 FROM devices d WHERE d.vendor_id = v.vendor_id) ORDER BY 1"
    ),
)
DOMESTIC_VENDOR = VariableSpec(
    name="vendor",
    label="Vendor",
    description="Domestic (Korean) accelerator vendors, as flagged in the vendors table.",
    query="SELECT vendor_id FROM vendors WHERE domestic ORDER BY 1",
)
KIND = VariableSpec(
    name="kind",
    label="Kind",
    description="GPU or NPU.",
    query="gpu,npu",
    kind="custom",
)
NODE = VariableSpec(
    name="node",
    label="Node",
    description="Nodes at the selected sites.",
    query=f"SELECT node_id FROM nodes WHERE {var_in('site_id', 'site')} ORDER BY 1",
)
#: one node at a time (the drill-down)
NODE_ONE = VariableSpec(
    name="node",
    label="Node",
    description="The node to look at, among the nodes of the selected sites.",
    query=f"SELECT node_id FROM nodes WHERE {var_in('site_id', 'site')} ORDER BY 1",
    multi=False,
    include_all=False,
)
DEVICE = VariableSpec(
    name="device",
    label="Device",
    description="Devices (uuid) on the selected node.",
    query="SELECT device_uuid FROM devices WHERE node_id = ${node:sqlstring} ORDER BY 1",
)
TENANT = VariableSpec(
    name="tenant",
    label="Organisation",
    description="Organisations (tenants) devices have been allocated to.",
    query="SELECT DISTINCT tenant FROM device_allocations WHERE tenant IS NOT NULL ORDER BY 1",
)
