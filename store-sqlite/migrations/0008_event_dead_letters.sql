-- Agent invocations remember the task the agent created for them (A2A `Task.id`), so that a
-- push naming any other task is refused (see store::Store::bind_agent_task).
ALTER TABLE callbacks ADD COLUMN task_id TEXT;
-- Workflow events a sink refused for good: out of the outbox (`delivered` is set), kept here,
-- listed by tenant (see store::Store::dead_letter).
CREATE TABLE IF NOT EXISTS dead_letters (
    seq          INTEGER PRIMARY KEY,
    tenant_id    TEXT NOT NULL,
    execution_id TEXT NOT NULL,
    kind         TEXT NOT NULL,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    sink         TEXT NOT NULL,
    attempts     INTEGER NOT NULL,
    last_error   TEXT NOT NULL,
    dead_at      INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_by_tenant ON dead_letters (tenant_id, seq);
