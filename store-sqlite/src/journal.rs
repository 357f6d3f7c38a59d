//! The embedded store's Journal role.

use super::SqliteStore;
use super::batch::*;
use super::rows::*;
use aegis_core::ids::*;
use aegis_core::journal::*;
use aegis_core::store::*;
use rusqlite::{OptionalExtension, params};

#[async_trait::async_trait]
impl Journal for SqliteStore {
    async fn create_execution(&self, new: NewExecution) -> Result<Created> {
        self.write(move |tx| {
            if let Some(name) = &new.name {
                let existing = tx
                    .prepare_cached("SELECT * FROM executions WHERE tenant_id = ?1 AND name = ?2")?
                    .query_row(params![new.tenant.as_str(), name], execution_from_row)
                    .optional()?;
                if let Some(existing) = existing {
                    return Ok(Created::NameTaken(existing));
                }
            }
            if let Some(max) = new.max_running {
                let running: i64 = tx
                    .prepare_cached(
                        "SELECT COUNT(*) FROM executions WHERE tenant_id = ?1 AND status = 'RUNNING'",
                    )?
                    .query_row([new.tenant.as_str()], |r| r.get(0))?;
                if running >= i64::from(max) {
                    return Ok(Created::OverQuota(max));
                }
            }
            let name = new.name.clone().unwrap_or_else(|| new.id.to_string());
            tx.prepare_cached(
                "INSERT INTO executions (id, tenant_id, name, workflow, version, digest, input, status,
                    created_at, updated_at, timeout_at, next_event_id, wake_seq, runnable)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'RUNNING', ?8, ?8, ?9, 1, 1, 1)",
            )?
            .execute(params![
                new.id.as_str(),
                new.tenant.as_str(),
                name,
                new.workflow,
                new.version,
                new.digest.as_str(),
                new.input,
                new.now,
                new.timeout_at
            ])?;
            append_events(tx, new.id.as_str(), std::slice::from_ref(&new.started_event))?;
            if let Some(at) = new.timeout_at {
                tx.prepare_cached(
                    "INSERT INTO timers (execution_id, op_id, kind, fire_at) VALUES (?1, '', ?2, ?3)",
                )?
                .execute(params![new.id.as_str(), TimerKind::ExecutionTimeout.as_str(), at])?;
            }
            let record = select_execution(tx, new.id.as_str())?
                .ok_or_else(|| Error::Fatal("execution vanished after insert".into()))?;
            Ok(Created::New(record))
        })
        .await
    }

    async fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>> {
        let id = id.clone();
        self.read(move |conn| select_execution(conn, id.as_str()))
            .await
    }

    async fn list_executions(
        &self,
        tenant: &TenantId,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>> {
        let tenant = tenant.clone();
        let filter = filter.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM executions
                 WHERE tenant_id = ?1
                   AND (?2 IS NULL OR workflow = ?2)
                   AND (?3 IS NULL OR status = ?3)
                   AND (?4 IS NULL OR created_at >= ?4)
                   AND (?5 IS NULL OR created_at < ?5)
                   AND (?6 IS NULL OR created_at < ?6 OR (created_at = ?6 AND id < ?7))
                 ORDER BY created_at DESC, id DESC
                 LIMIT ?8",
            )?;
            let (after_ts, after_id) = match &filter.after {
                Some((ts, id)) => (Some(*ts), Some(id.as_str())),
                None => (None, None),
            };
            let rows = stmt.query_map(
                params![
                    tenant.as_str(),
                    filter.workflow,
                    filter.status.map(ExecutionStatus::as_str),
                    filter.created_after,
                    filter.created_before,
                    after_ts,
                    after_id,
                    filter.limit as i64
                ],
                execution_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn operations(&self, id: &ExecutionId) -> Result<Vec<Operation>> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt =
                conn.prepare_cached("SELECT data FROM operations WHERE execution_id = ?1")?;
            let rows = stmt.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
            let mut ops = Vec::new();
            for row in rows {
                ops.push(serde_json::from_str(&row?)?);
            }
            Ok(ops)
        })
        .await
    }

    async fn operation(&self, id: &ExecutionId, op_id: &str) -> Result<Option<Operation>> {
        let id = id.clone();
        let op_id = op_id.to_string();
        self.read(move |conn| {
            let data: Option<String> = conn
                .prepare_cached(
                    "SELECT data FROM operations WHERE execution_id = ?1 AND op_id = ?2",
                )?
                .query_row([id.as_str(), &op_id], |r| r.get(0))
                .optional()?;
            Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
        })
        .await
    }

    async fn history(
        &self,
        id: &ExecutionId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Event)>> {
        let id = id.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT event_id, data FROM events WHERE execution_id = ?1 AND event_id > ?2
                 ORDER BY event_id LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![id.as_str(), after as i64, limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
            })?;
            let mut events = Vec::new();
            for row in rows {
                let (event_id, data) = row?;
                events.push((event_id as u64, serde_json::from_str(&data)?));
            }
            Ok(events)
        })
        .await
    }

    async fn append_logs(
        &self,
        id: &ExecutionId,
        lines: Vec<LogLine>,
        limits: LogLimits,
    ) -> Result<()> {
        self.append_log_lines(id, lines, limits).await
    }

    async fn logs(&self, id: &ExecutionId, after: u64, limit: usize) -> Result<Vec<LogRecord>> {
        self.log_records(id, after, limit).await
    }

    async fn commit(&self, execution: &ExecutionId, batch: Batch) -> Result<()> {
        let execution = execution.clone();
        self.write(move |tx| apply_batch(tx, execution.as_str(), &batch))
            .await
    }

    async fn runnable(&self) -> Result<Vec<Runnable>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, lease_owner, lease_token, lease_expires_at FROM executions
                 WHERE status = 'RUNNING' AND runnable = 1",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(Runnable {
                    id: ExecutionId::from_raw(r.get::<_, String>("id")?),
                    lease: lease_from_row(r)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        id: &ExecutionId,
        host: &str,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<Claim> {
        let (id, host) = (id.clone(), host.to_string());
        self.write(move |tx| acquire(tx, id.as_str(), &host, now, ttl_ms))
            .await
    }

    async fn renew_lease(
        &self,
        id: &ExecutionId,
        lease: &Lease,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<bool> {
        let (id, token) = (id.clone(), lease.token);
        self.write(move |tx| {
            let changed = tx
                .prepare_cached(
                    "UPDATE executions SET lease_expires_at = ?3
                     WHERE id = ?1 AND lease_token = ?2 AND lease_expires_at != 0",
                )?
                .execute(params![id.as_str(), token as i64, now + ttl_ms as Millis])?;
            Ok(changed == 1)
        })
        .await
    }
}
