-- Workflow events (published by workflows and by the host): the event stream and the webhook
-- outbox. `delivered` is set once the webhook accepted the event (or none is configured).
CREATE TABLE IF NOT EXISTS workflow_events (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    delivered    INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS workflow_events_by_tenant ON workflow_events (tenant_id, seq);
CREATE INDEX IF NOT EXISTS workflow_events_by_execution ON workflow_events (execution_id, seq);
CREATE INDEX IF NOT EXISTS workflow_events_undelivered ON workflow_events (delivered) WHERE delivered = 0;
