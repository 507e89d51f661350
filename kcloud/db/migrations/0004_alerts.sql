-- 0004 alerts and silence detection.
-- nodes.kafka_partition: the telemetry partition a node's snapshots arrive on, so that each stream worker
-- checks for silence only the nodes of the partitions it owns, against those partitions' own event-time
-- progress (a lagging partition never makes its nodes look silent).
-- devices.ecc_last / ecc_rise_at: the last uncorrected-ECC count seen and when it last rose, for the
-- "uncorrected ECC increasing" alert.

ALTER TABLE nodes ADD COLUMN kafka_partition integer CHECK (kafka_partition >= 0);
CREATE INDEX nodes_kafka_partition_idx ON nodes (kafka_partition, last_seen);

ALTER TABLE devices
    ADD COLUMN ecc_last    bigint CHECK (ecc_last >= 0),
    ADD COLUMN ecc_rise_at timestamptz;

CREATE INDEX alerts_open_node_idx ON alerts (node_id) WHERE resolved_at IS NULL;
CREATE INDEX alerts_open_device_idx ON alerts (device_id) WHERE resolved_at IS NULL;
