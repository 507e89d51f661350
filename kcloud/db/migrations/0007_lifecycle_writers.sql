-- 0007 the last writer of each telemetry partition's lifecycle and alert state.
-- A stream worker keeps the lifecycle and alert state of its partitions' devices in memory between
-- batches. Every transaction that changes that state records itself here, under the partition's
-- lifecycle lock (kafka_partition -1: work on every partition, e.g. an operator's decommissioning); a
-- worker that finds another writer recorded since its own last batch reads the state again.

CREATE TABLE lifecycle_writers (
    kafka_partition integer PRIMARY KEY CHECK (kafka_partition >= -1),
    writer          uuid NOT NULL,
    since           timestamptz NOT NULL DEFAULT now()
);
