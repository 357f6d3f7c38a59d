-- The embedded store's schema. Records that the host reads whole (operations, events) are kept
-- as JSON documents; columns exist only for what is queried.
CREATE TABLE IF NOT EXISTS components (
    tenant_id  TEXT NOT NULL,
    name       TEXT NOT NULL,
    version    INTEGER NOT NULL,
    digest     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, name, version)
);

CREATE TABLE IF NOT EXISTS executions (
    id            TEXT PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    name          TEXT NOT NULL,
    workflow      TEXT NOT NULL,
    version       INTEGER NOT NULL,
    digest        TEXT NOT NULL,
    input         TEXT NOT NULL,
    status        TEXT NOT NULL,
    result        TEXT,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    timeout_at    INTEGER,
    next_event_id INTEGER NOT NULL,
    wake_seq      INTEGER NOT NULL,
    runnable      INTEGER NOT NULL,
    UNIQUE (tenant_id, name)
);
CREATE INDEX IF NOT EXISTS executions_runnable ON executions (runnable) WHERE runnable = 1;

CREATE TABLE IF NOT EXISTS operations (
    execution_id TEXT NOT NULL,
    op_id        TEXT NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (execution_id, op_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS events (
    execution_id TEXT NOT NULL,
    event_id     INTEGER NOT NULL,
    data         TEXT NOT NULL,
    PRIMARY KEY (execution_id, event_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS timers (
    execution_id TEXT NOT NULL,
    op_id        TEXT NOT NULL,
    kind         TEXT NOT NULL,
    fire_at      INTEGER NOT NULL,
    PRIMARY KEY (execution_id, op_id, kind)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS callbacks (
    callback_id          TEXT PRIMARY KEY,
    tenant_id            TEXT NOT NULL,
    execution_id         TEXT NOT NULL,
    op_id                TEXT NOT NULL,
    name                 TEXT NOT NULL,
    status               TEXT NOT NULL,
    heartbeat_timeout_ms INTEGER
);
CREATE INDEX IF NOT EXISTS callbacks_by_execution ON callbacks (execution_id, status);
