-- 0009 what belongs to whom: a node belongs to a vendor (and, as before, to one site), and every workload
-- name was introduced by a vendor, whose count of them is capped (settings.max_workloads_per_vendor).
-- Telemetry never changes either: the ingest dead-letters a snapshot that names a registered node or
-- device of another vendor, or a registered node at another site (streams.sink). A node reporting the
-- devices of several vendors in one snapshot keeps vendor_id NULL (and so does one seen with no devices
-- yet, until its first snapshot with devices of one vendor).

ALTER TABLE nodes ADD COLUMN vendor_id text REFERENCES vendors (vendor_id);
UPDATE nodes n SET vendor_id = d.vendor_id
FROM (SELECT node_id, min(vendor_id) AS vendor_id FROM devices GROUP BY node_id HAVING count(DISTINCT vendor_id) = 1) d
WHERE d.node_id = n.node_id;
CREATE INDEX nodes_vendor_id_idx ON nodes (vendor_id);

-- NULL: a workload from before this migration (counted against no vendor)
ALTER TABLE workloads ADD COLUMN vendor_id text REFERENCES vendors (vendor_id);
CREATE INDEX workloads_vendor_id_idx ON workloads (vendor_id);
