-- 0003 device lifecycle state, kept beside the device so that the deployments processor's state and
-- the ledger rows it appends commit in one transaction (a crash or replay can neither skip nor double
-- a transition). Written only when a device changes state, never per sample.

ALTER TABLE devices
    ADD COLUMN status_since     timestamptz,
    ADD COLUMN util_state       text CHECK (util_state IN ('busy', 'quiet')),
    ADD COLUMN util_state_since timestamptz,
    ADD COLUMN health           smallint CHECK (health BETWEEN 0 AND 3);

UPDATE devices SET status_since = first_seen WHERE status_since IS NULL;

CREATE INDEX nodes_last_seen_idx ON nodes (last_seen);
CREATE INDEX devices_status_idx ON devices (status);
