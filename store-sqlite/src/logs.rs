//! The embedded store's execution logs: a table of lines and a row of usage per execution,
//! updated together in one write (see `migrations/0010_execution_logs.sql`).

use super::SqliteStore;
use crate::failure::Result;
use aegis_core::ids::ExecutionId;
use aegis_core::store::logs::admit;
use aegis_core::store::{
    Error, LogLevel, LogLimits, LogLine, LogRecord, LogUsage, Result as StoreResult,
};
use rusqlite::{OptionalExtension, Transaction, params};

impl SqliteStore {
    pub(super) async fn append_log_lines(
        &self,
        id: &ExecutionId,
        lines: Vec<LogLine>,
        limits: LogLimits,
    ) -> StoreResult<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let id = id.clone();
        self.write(move |tx| append(tx, id.as_str(), &lines, limits))
            .await
    }

    pub(super) async fn log_records(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<LogRecord>> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT seq, at, level, message FROM execution_logs
                 WHERE execution_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![id.as_str(), after.min(i64::MAX as u64) as i64, limit as i64],
                |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                    ))
                },
            )?;
            let mut records = Vec::new();
            for row in rows {
                let (seq, at, level, message) = row?;
                let level = LogLevel::parse(&level)
                    .ok_or_else(|| Error::corrupt(format!("log level {level:?}")))?;
                records.push(LogRecord {
                    seq: seq as u64,
                    at,
                    level,
                    message,
                });
            }
            Ok(records)
        })
        .await
    }
}

fn append(tx: &Transaction<'_>, id: &str, lines: &[LogLine], limits: LogLimits) -> Result<()> {
    let usage = tx
        .prepare_cached(
            "SELECT last_seq, lines, bytes, full FROM execution_log_usage WHERE execution_id = ?1",
        )?
        .query_row([id], |r| {
            Ok(LogUsage {
                last_seq: r.get::<_, i64>(0)? as u64,
                lines: r.get::<_, i64>(1)? as u64,
                bytes: r.get::<_, i64>(2)? as u64,
                full: r.get(3)?,
            })
        })
        .optional()?
        .unwrap_or_default();
    if usage.full {
        return Ok(());
    }
    let (records, usage) = admit(usage, lines, limits);
    let mut insert = tx.prepare_cached(
        "INSERT INTO execution_logs (execution_id, seq, at, level, message)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for r in &records {
        insert.execute(params![id, r.seq as i64, r.at, r.level.as_str(), r.message])?;
    }
    tx.prepare_cached(
        "INSERT INTO execution_log_usage (execution_id, last_seq, lines, bytes, full)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (execution_id) DO UPDATE SET
            last_seq = excluded.last_seq, lines = excluded.lines, bytes = excluded.bytes,
            full = excluded.full",
    )?
    .execute(params![
        id,
        usage.last_seq as i64,
        usage.lines as i64,
        usage.bytes as i64,
        usage.full
    ])?;
    Ok(())
}
