-- 0001 core: every table that is the same on plain PostgreSQL and on TimescaleDB.
-- Applied in one transaction by `kcloud db migrate`; never edit once applied, add a new file instead.

-- key/value facts about this database, e.g. storage_mode ('postgresql' | 'timescaledb') and why
CREATE TABLE kcloud_meta (
    key        text PRIMARY KEY,
    value      text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- accelerator vendors; `domestic` (a Korean vendor) is derived from here, never sent on the wire.
-- Rows are seeded from kcloud/catalog.yaml by the migration runner.
CREATE TABLE vendors (
    vendor_id    text PRIMARY KEY CHECK (vendor_id ~ '^[a-z0-9][a-z0-9_-]*$'),
    display_name text NOT NULL,
    domestic     boolean NOT NULL DEFAULT false
);

CREATE TABLE sites (
    site_id    text PRIMARY KEY,
    name       text,
    operator   text,
    programme  text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE nodes (
    node_id    text PRIMARY KEY,
    site_id    text NOT NULL REFERENCES sites (site_id),
    hostname   text,
    first_seen timestamptz NOT NULL,
    last_seen  timestamptz NOT NULL,
    CHECK (last_seen >= first_seen)
);
CREATE INDEX nodes_site_id_idx ON nodes (site_id);

-- one row per accelerator (or slice); device_id is the small key every sample carries
CREATE TABLE devices (
    device_id   integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_uuid text NOT NULL,
    vendor_id   text NOT NULL REFERENCES vendors (vendor_id),
    kind        text NOT NULL CHECK (kind IN ('gpu', 'npu')),
    model       text,
    arch        text,
    pci_bus_id  text,
    subdevice   text,
    node_id     text NOT NULL REFERENCES nodes (node_id),
    first_seen  timestamptz NOT NULL,
    last_seen   timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'commissioned' CHECK (
        status IN ('commissioned', 'active', 'idle', 'offline', 'returned', 'decommissioned')
    ),
    CHECK (last_seen >= first_seen),
    -- a device is its uuid plus, for a slice of it (MIG instance, NPU core range), the subdevice
    CONSTRAINT devices_identity_key UNIQUE NULLS NOT DISTINCT (device_uuid, subdevice)
);
CREATE INDEX devices_node_id_idx ON devices (node_id);
CREATE INDEX devices_vendor_id_idx ON devices (vendor_id);

-- health codes of device_samples.health (kcloud.db.schema.HEALTH_CODES); NULL = the source could not say
CREATE TABLE health_states (
    code smallint PRIMARY KEY,
    name text NOT NULL UNIQUE
);
INSERT INTO health_states (code, name) VALUES (0, 'ok'), (1, 'degraded'), (2, 'failed'), (3, 'unknown');

-- a throughput's (workload, unit), e.g. ('llama-3-8b', 'tokens_per_s'), as the 2-byte device_samples.workload_id
CREATE TABLE workloads (
    workload_id smallint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        text NOT NULL,
    unit        text NOT NULL,
    UNIQUE (name, unit)
);

-- who a device (or slice) is allocated to, as a change log: a row opens when the attribution a device
-- reports changes, and lasts until the device's next row. Kept out of device_samples (allocations change
-- rarely); joins use the row with the latest `since` at or before a sample's time.
CREATE TABLE device_allocations (
    device_id integer NOT NULL REFERENCES devices (device_id),
    since     timestamptz NOT NULL,
    tenant    text,
    namespace text,
    pod       text,
    container text,
    PRIMARY KEY (device_id, since)
);

-- The deployment ledger: append-only and hash-chained. Each row's prev_hash is the hash of the row
-- before it (NULL only for the first row): the foreign key and the unique prev_hash make the chain a
-- single line (no forks, no dangling links), and the trigger below refuses UPDATE, DELETE, TRUNCATE.
CREATE TABLE deployment_events (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id   integer REFERENCES devices (device_id),
    device_uuid text NOT NULL,
    event       text NOT NULL CHECK (
        event IN ('commissioned', 'active', 'idle', 'offline', 'returned', 'health_changed',
                  'relocated', 'decommissioned')
    ),
    at          timestamptz NOT NULL,
    node_id     text,
    site_id     text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    prev_hash   text REFERENCES deployment_events (hash),
    hash        text NOT NULL UNIQUE,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT deployment_events_prev_hash_key UNIQUE NULLS NOT DISTINCT (prev_hash)
);
CREATE INDEX deployment_events_device_at_idx ON deployment_events (device_uuid, at);
CREATE INDEX deployment_events_at_idx ON deployment_events (at);

CREATE FUNCTION kcloud_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_LEVEL = 'ROW' THEN
        RAISE EXCEPTION '% is append-only: % of seq % refused', TG_TABLE_NAME, TG_OP, OLD.seq
            USING ERRCODE = 'restrict_violation',
                  HINT = 'ledger rows are never changed or removed; record a correcting event instead';
    END IF;
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation',
              HINT = 'ledger rows are never changed or removed; record a correcting event instead';
END;
$$;

CREATE TRIGGER deployment_events_append_only
    BEFORE UPDATE OR DELETE ON deployment_events
    FOR EACH ROW EXECUTE FUNCTION kcloud_refuse_change();
CREATE TRIGGER deployment_events_no_truncate
    BEFORE TRUNCATE ON deployment_events
    FOR EACH STATEMENT EXECUTE FUNCTION kcloud_refuse_change();

-- alerts: one open row (resolved_at IS NULL) per fingerprint at a time
CREATE TABLE alerts (
    alert_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    fingerprint text NOT NULL,
    rule        text NOT NULL,
    severity    text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    device_id   integer REFERENCES devices (device_id),
    node_id     text,
    site_id     text,
    vendor_id   text,
    summary     text NOT NULL,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    started_at  timestamptz NOT NULL,
    resolved_at timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (resolved_at IS NULL OR resolved_at >= started_at)
);
CREATE UNIQUE INDEX alerts_open_fingerprint_idx ON alerts (fingerprint) WHERE resolved_at IS NULL;
CREATE INDEX alerts_started_at_idx ON alerts (started_at);

-- vendor push tokens: only a salt and a hash of each secret are stored, never the secret itself
CREATE TABLE vendor_tokens (
    token_id   text PRIMARY KEY,
    vendor_id  text NOT NULL REFERENCES vendors (vendor_id),
    role       text NOT NULL CHECK (role ~ '^[a-z][a-z_-]*$'),
    salt       bytea NOT NULL,
    hash       bytea NOT NULL,
    label      text,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);
CREATE INDEX vendor_tokens_vendor_id_idx ON vendor_tokens (vendor_id);

-- one row per push to the vendor gateway; token_id is what was presented (it may be unknown)
CREATE TABLE ingest_audit (
    seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    token_id    text,
    vendor_id   text,
    remote_addr inet,
    accepted    integer NOT NULL DEFAULT 0 CHECK (accepted >= 0),
    rejected    integer NOT NULL DEFAULT 0 CHECK (rejected >= 0),
    bytes       bigint CHECK (bytes >= 0),
    status      smallint NOT NULL
);
CREATE INDEX ingest_audit_at_idx ON ingest_audit (at);
CREATE INDEX ingest_audit_token_at_idx ON ingest_audit (token_id, at);
