-- 0016 wall-clock arrival of each node's telemetry.
-- nodes.last_received_at: the database's clock when a snapshot of the node was last stored. Event time
-- (last_seen) cannot tell an operator that nothing arrives at all (a paused collector fleet, a dead
-- broker link): the stall watch of the stream workers (streams/stall.py) compares this column with the
-- wall clock and opens `site_stalled` / `fleet_stalled` alerts while a site or the fleet is quiet.
-- NULL for nodes stored before this migration, until their next snapshot.
ALTER TABLE nodes ADD COLUMN last_received_at timestamptz;
