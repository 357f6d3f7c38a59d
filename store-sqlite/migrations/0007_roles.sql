-- Fleet-wide roles that one host at a time holds (the event outbox's delivery), with the same
-- owner, token and expiry as an execution's lease (see store::Store::claim_role).
CREATE TABLE IF NOT EXISTS roles (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    token INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
