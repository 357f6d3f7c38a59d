-- Leases: the host that may run an execution's activations, until when, and the fencing token
-- every activation's writes are checked against (see store::Lease).
ALTER TABLE executions ADD COLUMN lease_owner TEXT NOT NULL DEFAULT '';
ALTER TABLE executions ADD COLUMN lease_token INTEGER NOT NULL DEFAULT 0;
ALTER TABLE executions ADD COLUMN lease_expires_at INTEGER NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS timers_by_fire_at ON timers (fire_at);
