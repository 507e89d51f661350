-- 0002 time series on TimescaleDB (plain PostgreSQL gets ../0002_timeseries_postgresql.sql instead).
--
-- device_samples and device_rollup_1m are hypertables with 1-day chunks (no plain partitioning);
-- device_rollup_1h and device_rollup_1d are continuous aggregates, hierarchical on device_rollup_1m,
-- with the same column names as the plain tables. Raw samples are compressed (segmented by device_id)
-- after settings.compress_after_days and dropped after settings.retention_days: the runner passes those
-- as the transaction-local parameters kcloud.compress_after_days and kcloud.retention_days, and
-- kcloud.db.timescale.sync_policies keeps the policies in step when the settings change later.
-- Keep the column lists identical to the plain file (tests/unit/db checks it).

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
);
SELECT create_hypertable(
    'device_samples', 'time',
    chunk_time_interval => INTERVAL '1 day',
    create_default_indexes => false
);
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
SELECT create_hypertable(
    'device_rollup_1m', 'bucket',
    chunk_time_interval => INTERVAL '1 day',
    create_default_indexes => false
);
CREATE INDEX device_rollup_1m_bucket_brin ON device_rollup_1m USING brin (bucket) WITH (pages_per_range = 32);

-- averages are weighted by the samples behind them, so an hour is the mean of its samples, not of its minutes
CREATE MATERIALIZED VIEW device_rollup_1h
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    device_id,
    time_bucket(INTERVAL '1 hour', bucket) AS bucket,
    (sum(util_avg::float8 * samples)
        / nullif(sum(CASE WHEN util_avg IS NOT NULL THEN samples END), 0))::real AS util_avg,
    max(util_max) AS util_max,
    (sum(power_avg::float8 * samples)
        / nullif(sum(CASE WHEN power_avg IS NOT NULL THEN samples END), 0))::real AS power_avg,
    sum(energy_j) AS energy_j,
    (sum(temp_avg::float8 * samples)
        / nullif(sum(CASE WHEN temp_avg IS NOT NULL THEN samples END), 0))::real AS temp_avg,
    sum(samples)::integer AS samples,
    sum(seconds_observed::float8)::real AS seconds_observed
FROM device_rollup_1m
GROUP BY device_id, time_bucket(INTERVAL '1 hour', bucket)
WITH NO DATA;

CREATE MATERIALIZED VIEW device_rollup_1d
WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
SELECT
    device_id,
    time_bucket(INTERVAL '1 day', bucket) AS bucket,
    (sum(util_avg::float8 * samples)
        / nullif(sum(CASE WHEN util_avg IS NOT NULL THEN samples END), 0))::real AS util_avg,
    max(util_max) AS util_max,
    (sum(power_avg::float8 * samples)
        / nullif(sum(CASE WHEN power_avg IS NOT NULL THEN samples END), 0))::real AS power_avg,
    sum(energy_j) AS energy_j,
    (sum(temp_avg::float8 * samples)
        / nullif(sum(CASE WHEN temp_avg IS NOT NULL THEN samples END), 0))::real AS temp_avg,
    sum(samples)::integer AS samples,
    sum(seconds_observed::float8)::real AS seconds_observed
FROM device_rollup_1h
GROUP BY device_id, time_bucket(INTERVAL '1 day', bucket)
WITH NO DATA;

SELECT add_continuous_aggregate_policy(
    'device_rollup_1h',
    start_offset => INTERVAL '3 days',
    end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '5 minutes'
);
SELECT add_continuous_aggregate_policy(
    'device_rollup_1d',
    start_offset => INTERVAL '10 days',
    end_offset => INTERVAL '1 day',
    schedule_interval => INTERVAL '1 hour'
);

-- compression (the columnstore): the compression API is still supported after 2.18's rename
ALTER TABLE device_samples SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'device_id',
    timescaledb.compress_orderby = 'time DESC'
);
SELECT add_compression_policy(
    'device_samples',
    compress_after => make_interval(days => current_setting('kcloud.compress_after_days')::integer)
);
SELECT add_retention_policy(
    'device_samples',
    drop_after => make_interval(days => current_setting('kcloud.retention_days')::integer)
);
