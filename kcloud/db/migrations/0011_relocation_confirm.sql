-- 0011 what the lifecycle needs to confirm and bound relocations (streams.lifecycle).
-- A device reporting from another node is relocated only after `relocate_confirm_intervals` samples in
-- a row from there (move_*), and at most `relocate_max_per_hour` relocations per device per event-time
-- hour are recorded (reloc_*); confirmed moves over the cap are counted in reloc_suppressed and named
-- in the next recorded relocation.

ALTER TABLE devices
    ADD COLUMN move_node        text,
    ADD COLUMN move_site        text,
    ADD COLUMN move_since       timestamptz,
    ADD COLUMN move_seen        integer NOT NULL DEFAULT 0 CHECK (move_seen >= 0),
    ADD COLUMN reloc_hour       timestamptz,
    ADD COLUMN reloc_count      integer NOT NULL DEFAULT 0 CHECK (reloc_count >= 0),
    ADD COLUMN reloc_suppressed integer NOT NULL DEFAULT 0 CHECK (reloc_suppressed >= 0);
