-- 0006 the evidence reports' own rollup: served throughput and energy-counter coverage per device, bucket
-- and workload, which the device rollups (utilization, power, energy) do not carry.
--
-- Written only by reports.rollup.refresh_report_rollup, from device_samples, for the (device, bucket)
-- pairs whose sample count differs from device_rollup_1h / device_rollup_1d (new, late or replayed data);
-- a pair whose raw samples are gone (retention) keeps its rows. Plain tables in both storage modes.
--   workload_id   0 = samples without a throughput, else workloads.workload_id
--   samples       samples of the device in the bucket carrying this workload (0: without a throughput)
--   units         sum of throughput value x the nominal sample interval (e.g. tokens for tokens/s)
--   counter_samples  samples whose energy came from the device's own energy counter

CREATE TABLE device_report_1h (
    device_id       integer NOT NULL,
    bucket          timestamptz NOT NULL,
    workload_id     smallint NOT NULL,
    samples         integer NOT NULL,
    units           double precision NOT NULL,
    counter_samples integer NOT NULL,
    PRIMARY KEY (device_id, bucket, workload_id)
);
CREATE INDEX device_report_1h_bucket_idx ON device_report_1h (bucket);

CREATE TABLE device_report_1d (
    LIKE device_report_1h INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (device_id, bucket, workload_id)
);
CREATE INDEX device_report_1d_bucket_idx ON device_report_1d (bucket);
