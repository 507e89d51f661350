-- 0013 activity and health counters on device_samples (both storage modes: a hypertable and a
-- partitioned table both take ADD COLUMN, which reaches every partition and chunk).
--
-- What tells AI work from other work (SM, tensor and DRAM activity, video encoder and decoder), and the
-- health signals operators ask for most (last XID, power and thermal throttling, NVLink errors, memory
-- rows retired or remapped and whether a repair is pending or failed). Every column is nullable with no
-- default: a source without the counter leaves it null, never 0, and old rows stay as they were
-- (adding a column without a default rewrites nothing). Types are the smallest that hold the
-- catalogue's bounds (kcloud/catalog.yaml; tests/unit/test_catalog.py checks them): the bigint first,
-- then 4-, 2- and 1-byte columns, so no alignment padding comes between them.
-- One ADD COLUMN per statement: TimescaleDB refuses several at once on a hypertable with compression.

ALTER TABLE device_samples ADD COLUMN nvlink_errors bigint;
ALTER TABLE device_samples ADD COLUMN sm_active_pct real;
ALTER TABLE device_samples ADD COLUMN tensor_active_pct real;
ALTER TABLE device_samples ADD COLUMN dram_active_pct real;
ALTER TABLE device_samples ADD COLUMN enc_util_pct real;
ALTER TABLE device_samples ADD COLUMN dec_util_pct real;
ALTER TABLE device_samples ADD COLUMN xid_last smallint;
ALTER TABLE device_samples ADD COLUMN mem_rows_retired smallint;
ALTER TABLE device_samples ADD COLUMN throttle_power boolean;
ALTER TABLE device_samples ADD COLUMN throttle_thermal boolean;
ALTER TABLE device_samples ADD COLUMN mem_repair_pending boolean;
ALTER TABLE device_samples ADD COLUMN mem_repair_failed boolean;
