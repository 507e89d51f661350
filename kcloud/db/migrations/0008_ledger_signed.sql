-- 0008 the ledger stores what it hashed, covers device_id, and carries the writer's signatures.
-- content: the exact text hashed into `hash` (form 2: compact key-sorted JSON of device_id, device_uuid,
--   event, at, node_id, site_id and details); verify hashes this text and checks that the typed columns say
--   the same. NULL for rows written before this migration (form 1: hash recomputed from the columns,
--   device_id not covered); a form-1 row after the first form-2 row is refused by verify.
-- signature, signed_rows: on the last row of each append, the writer's Ed25519 signature (base64) of that
--   row's hash and the number of rows the append wrote; NULL on the other rows.
ALTER TABLE deployment_events
    ADD COLUMN content     text,
    ADD COLUMN signature   text,
    ADD COLUMN signed_rows integer CHECK (signed_rows >= 1),
    ADD CONSTRAINT deployment_events_signed_together CHECK ((signature IS NULL) = (signed_rows IS NULL)),
    ADD CONSTRAINT deployment_events_signed_form2 CHECK (signature IS NULL OR content IS NOT NULL);
