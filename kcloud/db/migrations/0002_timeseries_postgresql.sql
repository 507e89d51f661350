-- kcloud: mode=postgresql
-- 0002 time series on plain PostgreSQL (TimescaleDB gets migrations/timescale/0002_timeseries.sql instead).
--
-- device_samples is range-partitioned by time into daily partitions device_samples_pYYYYMMDD, made
-- ahead by kcloud.db.partitions.ensure_partitions and dropped past retention by drop_expired_partitions.
-- There is no default partition on purpose: a sample for a day without a partition fails loudly.
-- The 1h and 1d rollups are tables refreshed by kcloud.db.rollups.refresh_rollups.
-- Keep the column lists identical to the TimescaleDB file (tests/unit/db checks it).

CREATE TABLE device_samples (
    time            timestamptz NOT NULL,
    device_id       integer NOT NULL,
    util_pct        real,
    mem_used_bytes  bigint,
    mem_total_bytes bigint,
    energy_j        double precision,
    ecc_uncorrected bigint,
    power_w         real,
    power_limit_w   real,
    temp_c          real,
    clock_mhz       real,
    throughput      real,
    health          smallint CHECK (health BETWEEN 0 AND 3),
    workload_id     smallint,
    PRIMARY KEY (device_id, time)
) PARTITION BY RANGE (time);
CREATE INDEX device_samples_time_brin ON device_samples USING brin (time) WITH (pages_per_range = 32);

CREATE TABLE device_rollup_1m (
    device_id        integer NOT NULL,
    bucket           timestamptz NOT NULL,
    util_avg         real,
    util_max         real,
    power_avg        real,
    energy_j         double precision,
    temp_avg         real,
    samples          integer NOT NULL,
    seconds_observed real NOT NULL,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX device_rollup_1m_bucket_brin ON device_rollup_1m USING brin (bucket) WITH (pages_per_range = 32);

CREATE TABLE device_rollup_1h (
    LIKE device_rollup_1m INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX device_rollup_1h_bucket_idx ON device_rollup_1h (bucket);

CREATE TABLE device_rollup_1d (
    LIKE device_rollup_1m INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (device_id, bucket)
);
CREATE INDEX device_rollup_1d_bucket_idx ON device_rollup_1d (bucket);
