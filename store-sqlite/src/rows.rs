//! Rows to records, and the small queries several roles share.

use crate::failure::Result;
use aegis_core::ids::*;
use aegis_core::journal::*;
use aegis_core::store::*;
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub(super) fn execution_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionRecord> {
    let status: String = row.get("status")?;
    let error: Option<String> = row.get("error")?;
    Ok(ExecutionRecord {
        id: ExecutionId::from_raw(row.get::<_, String>("id")?),
        tenant: TenantId::from_raw(row.get::<_, String>("tenant_id")?),
        name: row.get("name")?,
        workflow: row.get("workflow")?,
        version: row.get("version")?,
        digest: ComponentDigest::from_raw(row.get::<_, String>("digest")?),
        input: row.get("input")?,
        status: ExecutionStatus::parse(&status).unwrap_or(ExecutionStatus::Failed),
        result: row.get("result")?,
        error: error.and_then(|e| serde_json::from_str(&e).ok()),
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
        timeout_at: row.get("timeout_at")?,
        wake_seq: row.get::<_, i64>("wake_seq")? as u64,
    })
}

pub(super) fn workflow_event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WorkflowEvent> {
    Ok(WorkflowEvent {
        seq: row.get::<_, i64>("seq")? as u64,
        tenant: TenantId::from_raw(row.get::<_, String>("tenant_id")?),
        execution_id: ExecutionId::from_raw(row.get::<_, String>("execution_id")?),
        kind: row.get("kind")?,
        data: row.get("data")?,
        created_at: row.get("created_at")?,
    })
}

pub(super) fn dead_letter_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        event: workflow_event_from_row(row)?,
        sink: row.get("sink")?,
        attempts: row.get::<_, i64>("attempts")? as u32,
        last_error: row.get("last_error")?,
        dead_at: row.get("dead_at")?,
    })
}

pub(super) fn tenant_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TenantRecord> {
    let overrides: String = row.get("overrides")?;
    Ok(TenantRecord {
        id: TenantId::from_raw(row.get::<_, String>("id")?),
        name: row.get("name")?,
        overrides: serde_json::from_str(&overrides).unwrap_or_default(),
        created_at: row.get("created_at")?,
    })
}

pub(super) fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        id: row.get("id")?,
        tenant: TenantId::from_raw(row.get::<_, String>("tenant_id")?),
        hash: row.get("hash")?,
        created_at: row.get("created_at")?,
        revoked_at: row.get("revoked_at")?,
        sealed_secret: row.get("sealed_secret")?,
    })
}

pub(super) fn insert_key(tx: &Transaction<'_>, key: &KeyRecord) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO api_keys (id, tenant_id, hash, created_at, revoked_at, sealed_secret) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        key.id,
        key.tenant.as_str(),
        key.hash,
        key.created_at,
        key.revoked_at,
        key.sealed_secret
    ])?;
    Ok(())
}

pub(super) fn callback_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CallbackRecord> {
    let status: String = row.get("status")?;
    Ok(CallbackRecord {
        id: CallbackId::from_raw(row.get::<_, String>("callback_id")?),
        tenant: TenantId::from_raw(row.get::<_, String>("tenant_id")?),
        execution_id: ExecutionId::from_raw(row.get::<_, String>("execution_id")?),
        op_id: row.get("op_id")?,
        name: row.get("name")?,
        status: serde_json::from_value(serde_json::Value::String(status)).unwrap_or(Status::Failed),
        heartbeat_timeout_ms: row
            .get::<_, Option<i64>>("heartbeat_timeout_ms")?
            .map(|v| v as u64),
        agent: match (
            row.get::<_, Option<String>>("agent")?,
            row.get::<_, Option<String>>("agent_input")?,
        ) {
            (Some(agent), Some(input)) => Some((agent, input)),
            _ => None,
        },
    })
}

pub(super) fn status_str(status: Status) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

pub(super) fn select_execution(conn: &Connection, id: &str) -> Result<Option<ExecutionRecord>> {
    Ok(conn
        .prepare_cached("SELECT * FROM executions WHERE id = ?1")?
        .query_row([id], execution_from_row)
        .optional()?)
}

pub(super) fn lease_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        owner: row.get("lease_owner")?,
        token: row.get::<_, i64>("lease_token")? as u64,
        expires_at: row.get("lease_expires_at")?,
    })
}
