-- An execution's log: the lines its guest wrote, numbered per execution (`seq`, from 1), and
-- what the log holds (`execution_log_usage`), which bounds it (see aegis_core::store::logs).
CREATE TABLE IF NOT EXISTS execution_logs (
    execution_id TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    at           INTEGER NOT NULL,
    level        TEXT NOT NULL,
    message      TEXT NOT NULL,
    PRIMARY KEY (execution_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS execution_log_usage (
    execution_id TEXT PRIMARY KEY,
    last_seq     INTEGER NOT NULL,
    lines        INTEGER NOT NULL,
    bytes        INTEGER NOT NULL,
    full         INTEGER NOT NULL
) WITHOUT ROWID;
