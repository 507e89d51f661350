-- 0015 the reports' own rollup counts the samples whose throughput it left out: a throughput outside the
-- catalogue's physical range (kcloud/catalog.yaml: 0 to 1e9 per second), infinite or NaN, stored before the
-- wire contract bounded it or written by another path. Such a sample is kept as a sample without a
-- throughput (workload_id 0), so a bucket's sample count still equals the device rollup's, and is counted
-- here, on its bucket's workload-0 row, so that a report states how many it excluded.
--   excluded_samples  samples of the bucket whose throughput was left out as impossible
ALTER TABLE device_report_1h ADD COLUMN excluded_samples integer NOT NULL DEFAULT 0;
ALTER TABLE device_report_1d ADD COLUMN excluded_samples integer NOT NULL DEFAULT 0;
