//! The embedded store's Outbox role.

use super::SqliteStore;
use super::rows::*;
use aegis_core::ids::*;
use aegis_core::journal::*;
use aegis_core::store::*;
use rusqlite::{OptionalExtension, params};

#[async_trait::async_trait]
impl Outbox for SqliteStore {
    async fn workflow_events(
        &self,
        tenant: Option<&TenantId>,
        execution: Option<&ExecutionId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<WorkflowEvent>> {
        let tenant = tenant.cloned();
        let execution = execution.cloned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM workflow_events
                 WHERE seq > ?1 AND (?2 IS NULL OR tenant_id = ?2) AND (?3 IS NULL OR execution_id = ?3)
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![after as i64, tenant.as_ref().map(TenantId::as_str), execution.as_ref().map(ExecutionId::as_str), limit as i64],
                workflow_event_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn undelivered_events(&self, after: u64, limit: usize) -> Result<Vec<WorkflowEvent>> {
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM workflow_events WHERE delivered = 0 AND seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(
                params![after as i64, limit as i64],
                workflow_event_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn mark_delivered(&self, seqs: &[u64]) -> Result<()> {
        let seqs = seqs.to_vec();
        self.write(move |tx| {
            let mut update =
                tx.prepare_cached("UPDATE workflow_events SET delivered = 1 WHERE seq = ?1")?;
            for seq in seqs {
                update.execute([seq as i64])?;
            }
            Ok(())
        })
        .await
    }

    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<()> {
        let letters = letters.to_vec();
        self.write(move |tx| {
            let mut insert = tx.prepare_cached(
                "INSERT OR REPLACE INTO dead_letters
                    (seq, tenant_id, execution_id, kind, data, created_at, sink, attempts, last_error, dead_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut out =
                tx.prepare_cached("UPDATE workflow_events SET delivered = 1 WHERE seq = ?1")?;
            for l in &letters {
                let e = &l.event;
                insert.execute(params![
                    e.seq as i64,
                    e.tenant.as_str(),
                    e.execution_id.as_str(),
                    e.kind,
                    e.data,
                    e.created_at,
                    l.sink,
                    i64::from(l.attempts),
                    l.last_error,
                    l.dead_at
                ])?;
                out.execute([e.seq as i64])?;
            }
            Ok(())
        })
        .await
    }

    async fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let tenant = tenant.cloned();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM dead_letters WHERE seq > ?1 AND (?2 IS NULL OR tenant_id = ?2)
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![
                    after as i64,
                    tenant.as_ref().map(TenantId::as_str),
                    limit as i64
                ],
                dead_letter_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
        .await
    }

    async fn claim_role(&self, name: &str, host: &str, now: Millis, ttl_ms: u64) -> Result<bool> {
        let (name, host) = (name.to_string(), host.to_string());
        self.write(move |tx| {
            let held = tx
                .prepare_cached(
                    "SELECT owner AS lease_owner, token AS lease_token,
                            expires_at AS lease_expires_at
                     FROM roles WHERE name = ?1",
                )?
                .query_row([&name], lease_from_row)
                .optional()?
                .unwrap_or_default();
            let Claim::Acquired { lease: taken, .. } = held.claim(true, &host, now, ttl_ms) else {
                return Ok(false);
            };
            tx.prepare_cached(
                "INSERT INTO roles (name, owner, token, expires_at) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name) DO UPDATE SET owner = ?2, token = ?3, expires_at = ?4",
            )?
            .execute(params![
                name,
                taken.owner,
                taken.token as i64,
                taken.expires_at
            ])?;
            Ok(true)
        })
        .await
    }
}
