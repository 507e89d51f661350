-- The service runs as a role that owns nothing (so it can neither change the ledger's rows nor switch its
-- triggers off). CREATE TABLE ... PARTITION OF needs the owner of device_samples, so the daily partitions a
-- writer needs (plain PostgreSQL) are made by this function, which runs as the schema owner and makes one
-- UTC day's partition of device_samples and nothing else. `migrate` grants EXECUTE to the service role.
CREATE FUNCTION kcloud_make_sample_partition(day date) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    part text := 'device_samples_p' || to_char(day, 'YYYYMMDD');
BEGIN
    IF to_regclass(part) IS NOT NULL THEN
        RETURN false;
    END IF;
    EXECUTE format(
        'CREATE TABLE %I PARTITION OF device_samples FOR VALUES FROM (%L) TO (%L)',
        part, day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC'
    );
    RETURN true;
END;
$$;
REVOKE EXECUTE ON FUNCTION kcloud_make_sample_partition(date) FROM PUBLIC;
