-- Tenants and their API keys (only hashes of the secrets are kept).
CREATE TABLE IF NOT EXISTS tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    overrides  TEXT NOT NULL,
    created_at INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS api_keys (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX IF NOT EXISTS api_keys_by_tenant ON api_keys (tenant_id);

-- Listing a tenant's executions, newest first, with filters.
CREATE INDEX IF NOT EXISTS executions_by_tenant ON executions (tenant_id, created_at DESC, id DESC);
CREATE INDEX IF NOT EXISTS executions_running ON executions (tenant_id, status);
