-- 0010 what the vendor gateway needs to keep its tokens and its audit trail honest (kcloud.gateway).
-- Tokens may expire (expires_at; NULL: never). Only `vendor` tokens speak for a vendor: a cross-vendor
-- role (program-manager) has no vendor_id, and a vendor token must have one. Existing cross-vendor tokens
-- issued under a vendor lose that vendor, which they never used. Audit rows carry the id of the request they
-- record, so that a row kept on disk while the database was away is stored exactly once when it is replayed.

ALTER TABLE vendor_tokens
    ADD COLUMN expires_at timestamptz,
    ADD CONSTRAINT vendor_tokens_expiry_check CHECK (expires_at IS NULL OR expires_at > created_at),
    ALTER COLUMN vendor_id DROP NOT NULL;

UPDATE vendor_tokens SET vendor_id = NULL WHERE role <> 'vendor';

ALTER TABLE vendor_tokens
    ADD CONSTRAINT vendor_tokens_vendor_scope_check
        CHECK (CASE WHEN role = 'vendor' THEN vendor_id IS NOT NULL ELSE vendor_id IS NULL END);

ALTER TABLE ingest_audit ADD COLUMN request_id uuid;
CREATE UNIQUE INDEX ingest_audit_request_id_key ON ingest_audit (request_id);
