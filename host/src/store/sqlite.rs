//! The embedded store: SQLite in WAL mode with `synchronous=FULL`, so a commit is on disk before
//! it is acknowledged.
//!
//! One writer thread owns the write connection. It takes every request that is waiting, applies
//! each inside its own savepoint (a failed condition rolls back only that request) and commits
//! them together: concurrent executions share one fsync (group commit). Reads use a small pool of
//! separate connections, which WAL lets run beside the writer.

use super::{
    Batch, CallbackRecord, Claim, ComponentRecord, Condition, Created, DeadLetter, Deleted, Error,
    ExecutionFilter, ExecutionRecord, ExecutionStatus, KeyRecord, Lease, NewExecution, Result,
    Runnable, Store, TenantRecord, Timer, TimerKind, WorkflowEvent,
};
use crate::ids::{CallbackId, ComponentDigest, ExecutionId, TenantId};
use crate::journal::{Event, Millis, Operation, Status};
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, mpsc};

/// Most requests folded into one commit.
const MAX_GROUP: usize = 512;
const READERS: usize = 4;

/// Numbered schema migrations; `PRAGMA user_version` records how many have been applied.
const MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/0001_initial.sql"),
    include_str!("../../migrations/0002_tenants.sql"),
    include_str!("../../migrations/0003_workflow_events.sql"),
    include_str!("../../migrations/0004_callback_dispatch.sql"),
    include_str!("../../migrations/0005_component_tombstones.sql"),
    include_str!("../../migrations/0006_leases.sql"),
    include_str!("../../migrations/0007_roles.sql"),
    include_str!("../../migrations/0008_event_dead_letters.sql"),
];

fn migrate(conn: &mut Connection) -> Result<()> {
    let applied: usize =
        conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(applied) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

type Deliver = Box<dyn FnOnce(Option<Error>) + Send>;
type Job = Box<dyn FnOnce(&Transaction<'_>) -> Deliver + Send>;

pub struct SqliteStore {
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`.
    ///
    /// # Errors
    /// When the file cannot be opened or the schema cannot be applied.
    pub fn open(path: &Path) -> Result<Self> {
        let mut conn = open(path)?;
        migrate(&mut conn)?;
        let readers = (0..READERS)
            .map(|_| open(path).map(Mutex::new))
            .collect::<Result<Vec<_>>>()?;
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("aegis-store-writer".into())
            .spawn(move || writer_loop(&mut conn, rx))
            .map_err(|e| Error::Fatal(format!("spawn writer: {e}")))?;
        Ok(Self {
            writer: Mutex::new(tx),
            readers,
            next_reader: AtomicUsize::new(0),
        })
    }

    /// Runs `work` in the writer thread inside a savepoint and waits until its group is
    /// committed.
    fn write<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply_tx, reply_rx) = mpsc::sync_channel::<Result<T>>(1);
        let job: Job = Box::new(move |tx| {
            let outcome = (|| {
                tx.execute_batch("SAVEPOINT job")?;
                let outcome = work(tx);
                if outcome.is_err() {
                    tx.execute_batch("ROLLBACK TO job")?;
                }
                tx.execute_batch("RELEASE job")?;
                outcome
            })();
            Box::new(move |commit_error| {
                let _ = reply_tx.send(match commit_error {
                    Some(e) => Err(e),
                    None => outcome,
                });
            })
        });
        self.writer
            .lock()
            .map_err(|_| Error::Fatal("writer lock poisoned".into()))?
            .send(job)
            .map_err(|_| Error::Fatal("store writer stopped".into()))?;
        // A job that was dropped unrun (its group could not begin a transaction) leaves no
        // reply: the write did not happen, and may be made again.
        reply_rx
            .recv()
            .map_err(|_| Error::Retriable("the store writer dropped the write".into()))?
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let i = self.next_reader.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        let conn = self.readers[i]
            .lock()
            .map_err(|_| Error::Fatal("reader lock poisoned".into()))?;
        f(&conn)
    }
}

fn writer_loop(conn: &mut Connection, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let tx = match conn.transaction() {
            Ok(tx) => tx,
            Err(e) => {
                let msg = e.to_string();
                for job in jobs {
                    // The job never ran; report the failure through a throwaway transaction-less path.
                    drop(job);
                    tracing::error!(error = %msg, "store: cannot begin transaction");
                }
                continue;
            }
        };
        let delivers: Vec<Deliver> = jobs.into_iter().map(|job| job(&tx)).collect();
        let commit_error = tx.commit().err().map(Error::from);
        if let Some(e) = &commit_error {
            tracing::error!(error = %e, "store: group commit failed");
        }
        for deliver in delivers {
            deliver(commit_error.clone());
        }
    }
}

fn execution_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ExecutionRecord> {
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

fn workflow_event_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<WorkflowEvent> {
    Ok(WorkflowEvent {
        seq: row.get::<_, i64>("seq")? as u64,
        tenant: TenantId::from_raw(row.get::<_, String>("tenant_id")?),
        execution_id: ExecutionId::from_raw(row.get::<_, String>("execution_id")?),
        kind: row.get("kind")?,
        data: row.get("data")?,
        created_at: row.get("created_at")?,
    })
}

fn dead_letter_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<DeadLetter> {
    Ok(DeadLetter {
        event: workflow_event_from_row(row)?,
        sink: row.get("sink")?,
        attempts: row.get::<_, i64>("attempts")? as u32,
        last_error: row.get("last_error")?,
        dead_at: row.get("dead_at")?,
    })
}

fn tenant_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<TenantRecord> {
    let overrides: String = row.get("overrides")?;
    Ok(TenantRecord {
        id: TenantId::from_raw(row.get::<_, String>("id")?),
        name: row.get("name")?,
        overrides: serde_json::from_str(&overrides).unwrap_or_default(),
        created_at: row.get("created_at")?,
    })
}

fn key_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyRecord> {
    Ok(KeyRecord {
        id: row.get("id")?,
        tenant: TenantId::from_raw(row.get::<_, String>("tenant_id")?),
        hash: row.get("hash")?,
        created_at: row.get("created_at")?,
        revoked_at: row.get("revoked_at")?,
    })
}

fn insert_key(tx: &Transaction<'_>, key: &KeyRecord) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO api_keys (id, tenant_id, hash, created_at, revoked_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![key.id, key.tenant.as_str(), key.hash, key.created_at, key.revoked_at])?;
    Ok(())
}

fn callback_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<CallbackRecord> {
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

fn status_str(status: Status) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

fn select_execution(conn: &Connection, id: &str) -> Result<Option<ExecutionRecord>> {
    Ok(conn
        .prepare_cached("SELECT * FROM executions WHERE id = ?1")?
        .query_row([id], execution_from_row)
        .optional()?)
}

fn append_events(tx: &Transaction<'_>, execution: &str, events: &[Event]) -> Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let next: i64 = tx
        .prepare_cached("SELECT next_event_id FROM executions WHERE id = ?1")?
        .query_row([execution], |r| r.get(0))?;
    let mut insert =
        tx.prepare_cached("INSERT INTO events (execution_id, event_id, data) VALUES (?1, ?2, ?3)")?;
    for (i, event) in events.iter().enumerate() {
        insert.execute(params![
            execution,
            next + i as i64,
            serde_json::to_string(event)?
        ])?;
    }
    tx.prepare_cached("UPDATE executions SET next_event_id = ?2 WHERE id = ?1")?
        .execute(params![execution, next + events.len() as i64])?;
    Ok(())
}

fn apply_batch(tx: &Transaction<'_>, execution: &str, batch: &Batch) -> Result<()> {
    let exists = tx
        .prepare_cached("SELECT 1 FROM executions WHERE id = ?1")?
        .query_row([execution], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Err(Error::NotFound(format!("execution {execution}")));
    }
    for condition in &batch.conditions {
        match condition {
            Condition::ExecutionRunning => {
                let status: Option<String> = tx
                    .prepare_cached("SELECT status FROM executions WHERE id = ?1")?
                    .query_row([execution], |r| r.get(0))
                    .optional()?;
                if status.as_deref() != Some("RUNNING") {
                    return Err(Error::ConditionFailed(format!(
                        "execution {execution} is not running"
                    )));
                }
            }
            Condition::Lease(token) => {
                let current: Option<i64> = tx
                    .prepare_cached("SELECT lease_token FROM executions WHERE id = ?1")?
                    .query_row([execution], |r| r.get(0))
                    .optional()?;
                if current != Some(*token as i64) {
                    return Err(Error::ConditionFailed(format!(
                        "the lease of execution {execution} was taken over (token {token} is stale)"
                    )));
                }
            }
            Condition::TimerDue { op_id, kind, now } => {
                let fire_at: Option<i64> = tx
                    .prepare_cached(
                        "SELECT fire_at FROM timers WHERE execution_id = ?1 AND op_id = ?2 AND kind = ?3",
                    )?
                    .query_row(params![execution, op_id, kind.as_str()], |r| r.get(0))
                    .optional()?;
                if fire_at.is_none_or(|at| at > *now) {
                    return Err(Error::ConditionFailed(format!(
                        "timer {kind:?} of operation {op_id} is not due"
                    )));
                }
            }
            Condition::OperationStatus { op_id, status } => {
                let data: Option<String> = tx
                    .prepare_cached(
                        "SELECT data FROM operations WHERE execution_id = ?1 AND op_id = ?2",
                    )?
                    .query_row([execution, op_id.as_str()], |r| r.get(0))
                    .optional()?;
                let current = data
                    .map(|d| serde_json::from_str::<Operation>(&d))
                    .transpose()?
                    .map(|op| op.status);
                if current != Some(*status) {
                    return Err(Error::ConditionFailed(format!(
                        "operation {op_id} is {current:?}, expected {status:?}"
                    )));
                }
            }
        }
    }
    let now = crate::journal::now_ms();
    {
        let mut upsert = tx.prepare_cached(
            "INSERT OR REPLACE INTO operations (execution_id, op_id, data) VALUES (?1, ?2, ?3)",
        )?;
        for op in &batch.operations {
            upsert.execute(params![execution, op.id, serde_json::to_string(op)?])?;
        }
    }
    append_events(tx, execution, &batch.events)?;
    if batch.clear_all_timers {
        tx.prepare_cached("DELETE FROM timers WHERE execution_id = ?1")?
            .execute([execution])?;
    }
    {
        let mut clear = tx.prepare_cached(
            "DELETE FROM timers WHERE execution_id = ?1 AND op_id = ?2 AND kind = ?3",
        )?;
        for (op_id, kind) in &batch.clear_timers {
            clear.execute(params![execution, op_id, kind.as_str()])?;
        }
    }
    {
        let mut set = tx.prepare_cached(
            "INSERT OR REPLACE INTO timers (execution_id, op_id, kind, fire_at) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for timer in &batch.set_timers {
            set.execute(params![
                timer.execution_id.as_str(),
                timer.op_id,
                timer.kind.as_str(),
                timer.fire_at
            ])?;
        }
    }
    {
        // An upsert that leaves `task_id` alone: the task an agent invocation is bound to
        // outlives the record's rewrites (see `bind_agent_task`).
        let mut upsert = tx.prepare_cached(
            "INSERT INTO callbacks
                (callback_id, tenant_id, execution_id, op_id, name, status, heartbeat_timeout_ms, agent, agent_input)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (callback_id) DO UPDATE SET
                tenant_id = excluded.tenant_id, execution_id = excluded.execution_id,
                op_id = excluded.op_id, name = excluded.name, status = excluded.status,
                heartbeat_timeout_ms = excluded.heartbeat_timeout_ms, agent = excluded.agent,
                agent_input = excluded.agent_input",
        )?;
        for cb in &batch.callbacks {
            upsert.execute(params![
                cb.id.as_str(),
                cb.tenant.as_str(),
                cb.execution_id.as_str(),
                cb.op_id,
                cb.name,
                status_str(cb.status),
                cb.heartbeat_timeout_ms.map(|v| v as i64),
                cb.agent.as_ref().map(|(a, _)| a.as_str()),
                cb.agent.as_ref().map(|(_, i)| i.as_str())
            ])?;
        }
    }
    if batch.cancel_open_callbacks {
        tx.prepare_cached(
            "UPDATE callbacks SET status = 'CANCELLED' WHERE execution_id = ?1 AND status = 'STARTED'",
        )?
        .execute([execution])?;
    }
    if let Some(finish) = &batch.finish {
        let error = finish
            .error
            .as_ref()
            .map(serde_json::to_string)
            .transpose()?;
        tx.prepare_cached(
            "UPDATE executions SET status = ?2, result = ?3, error = ?4, updated_at = ?5, runnable = 0 WHERE id = ?1",
        )?
        .execute(params![execution, finish.status.as_str(), finish.result, error, now])?;
    } else {
        tx.prepare_cached("UPDATE executions SET updated_at = ?2 WHERE id = ?1")?
            .execute(params![execution, now])?;
    }
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO workflow_events (tenant_id, execution_id, kind, data, created_at)
             SELECT tenant_id, id, ?2, ?3, ?4 FROM executions WHERE id = ?1",
        )?;
        for (kind, data) in &batch.publish {
            insert.execute(params![execution, kind, data, now])?;
        }
    }
    if batch.wake {
        tx.prepare_cached(
            "UPDATE executions SET runnable = 1, wake_seq = wake_seq + 1 WHERE id = ?1 AND status = 'RUNNING'",
        )?
        .execute([execution])?;
    }
    if let Some(seq) = batch.settle {
        tx.prepare_cached("UPDATE executions SET runnable = 0 WHERE id = ?1 AND wake_seq = ?2")?
            .execute(params![execution, seq as i64])?;
    }
    if batch.release_lease {
        tx.prepare_cached("UPDATE executions SET lease_expires_at = 0 WHERE id = ?1")?
            .execute([execution])?;
    }
    Ok(())
}

fn lease_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Lease> {
    Ok(Lease {
        owner: row.get("lease_owner")?,
        token: row.get::<_, i64>("lease_token")? as u64,
        expires_at: row.get("lease_expires_at")?,
    })
}

fn acquire(tx: &Transaction<'_>, id: &str, host: &str, now: Millis, ttl_ms: u64) -> Result<Claim> {
    let row = tx
        .prepare_cached(
            "SELECT status, runnable, lease_owner, lease_token, lease_expires_at
             FROM executions WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok((
                r.get::<_, String>("status")?,
                r.get::<_, bool>("runnable")?,
                lease_from_row(r)?,
            ))
        })
        .optional()?;
    let Some((status, runnable, lease)) = row else {
        return Ok(Claim::Idle);
    };
    let claim = lease.claim(
        runnable && status == ExecutionStatus::Running.as_str(),
        host,
        now,
        ttl_ms,
    );
    if let Claim::Acquired { lease: taken, .. } = &claim {
        tx.prepare_cached(
            "UPDATE executions SET lease_owner = ?2, lease_token = ?3, lease_expires_at = ?4 WHERE id = ?1",
        )?
        .execute(params![id, taken.owner, taken.token as i64, taken.expires_at])?;
    }
    Ok(claim)
}

impl Store for SqliteStore {
    fn put_component(
        &self,
        tenant: &TenantId,
        name: &str,
        digest: &ComponentDigest,
        size: u64,
        now: Millis,
    ) -> Result<(ComponentRecord, bool)> {
        let (tenant, name, digest) = (tenant.clone(), name.to_string(), digest.clone());
        self.write(move |tx| {
            let existing = tx
                .prepare_cached(
                    "SELECT version, size, created_at FROM components WHERE tenant_id = ?1 AND name = ?2 AND digest = ?3 AND deleted_at IS NULL",
                )?
                .query_row(params![tenant.as_str(), name, digest.as_str()], |r| {
                    Ok((r.get::<_, u32>(0)?, r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
                })
                .optional()?;
            if let Some((version, size, created_at)) = existing {
                let record = ComponentRecord { tenant, name, version, digest, size: size as u64, created_at };
                return Ok((record, false));
            }
            let version: u32 = tx
                .prepare_cached(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM components WHERE tenant_id = ?1 AND name = ?2",
                )?
                .query_row(params![tenant.as_str(), name], |r| r.get(0))?;
            tx.prepare_cached(
                "INSERT INTO components (tenant_id, name, version, digest, size, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![tenant.as_str(), name, version, digest.as_str(), size as i64, now])?;
            let record = ComponentRecord { tenant, name, version, digest, size, created_at: now };
            Ok((record, true))
        })
    }

    fn find_component(
        &self,
        tenant: &TenantId,
        name: &str,
        version: Option<u32>,
    ) -> Result<Option<ComponentRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT version, digest, size, created_at FROM components
                 WHERE tenant_id = ?1 AND name = ?2 AND (?3 IS NULL OR version = ?3) AND deleted_at IS NULL
                 ORDER BY version DESC LIMIT 1",
            )?;
            Ok(stmt
                .query_row(params![tenant.as_str(), name, version], |r| {
                    Ok(ComponentRecord {
                        tenant: tenant.clone(),
                        name: name.to_string(),
                        version: r.get(0)?,
                        digest: ComponentDigest::from_raw(r.get::<_, String>(1)?),
                        size: r.get::<_, i64>(2)? as u64,
                        created_at: r.get(3)?,
                    })
                })
                .optional()?)
        })
    }

    fn components(&self, tenant: &TenantId, name: Option<&str>) -> Result<Vec<ComponentRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT name, version, digest, size, created_at FROM components
                 WHERE tenant_id = ?1 AND (?2 IS NULL OR name = ?2) AND deleted_at IS NULL ORDER BY name, version",
            )?;
            let rows = stmt.query_map(params![tenant.as_str(), name], |r| {
                Ok(ComponentRecord {
                    tenant: tenant.clone(),
                    name: r.get(0)?,
                    version: r.get(1)?,
                    digest: ComponentDigest::from_raw(r.get::<_, String>(2)?),
                    size: r.get::<_, i64>(3)? as u64,
                    created_at: r.get(4)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn delete_component(&self, tenant: &TenantId, name: &str, version: u32) -> Result<Deleted> {
        let (tenant, name) = (tenant.clone(), name.to_string());
        self.write(move |tx| {
            let digest: Option<String> = tx
                .prepare_cached(
                    "SELECT digest FROM components WHERE tenant_id = ?1 AND name = ?2 AND version = ?3 AND deleted_at IS NULL",
                )?
                .query_row(params![tenant.as_str(), name, version], |r| r.get(0))
                .optional()?;
            let Some(digest) = digest else {
                return Ok(Deleted::NotFound);
            };
            let in_use: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM executions WHERE tenant_id = ?1 AND digest = ?2 AND status = 'RUNNING'",
                )?
                .query_row(params![tenant.as_str(), digest], |r| r.get(0))?;
            if in_use > 0 {
                return Ok(Deleted::InUse);
            }
            tx.prepare_cached(
                "UPDATE components SET deleted_at = ?4 WHERE tenant_id = ?1 AND name = ?2 AND version = ?3",
            )?
            .execute(params![tenant.as_str(), name, version, crate::journal::now_ms()])?;
            Ok(Deleted::Deleted)
        })
    }

    fn create_tenant(&self, tenant: &TenantRecord, key: &KeyRecord) -> Result<bool> {
        let (tenant, key) = (tenant.clone(), key.clone());
        self.write(move |tx| {
            let taken: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM tenants WHERE name = ?1")?
                .query_row([&tenant.name], |r| r.get(0))?;
            if taken > 0 {
                return Ok(false);
            }
            tx.prepare_cached(
                "INSERT INTO tenants (id, name, overrides, created_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![
                tenant.id.as_str(),
                tenant.name,
                serde_json::to_string(&tenant.overrides)?,
                tenant.created_at
            ])?;
            insert_key(tx, &key)?;
            Ok(true)
        })
    }

    fn tenant(&self, id: &TenantId) -> Result<Option<TenantRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT * FROM tenants WHERE id = ?1")?
                .query_row([id.as_str()], tenant_from_row)
                .optional()?)
        })
    }

    fn tenants(&self) -> Result<Vec<TenantRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT * FROM tenants ORDER BY created_at, id")?;
            let rows = stmt.query_map([], tenant_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn update_tenant(&self, tenant: &TenantRecord) -> Result<()> {
        let tenant = tenant.clone();
        self.write(move |tx| {
            let updated = tx
                .prepare_cached("UPDATE tenants SET overrides = ?2 WHERE id = ?1")?
                .execute(params![
                    tenant.id.as_str(),
                    serde_json::to_string(&tenant.overrides)?
                ])?;
            if updated == 0 {
                return Err(Error::NotFound(format!("tenant {}", tenant.id)));
            }
            Ok(())
        })
    }

    fn api_key(&self, id: &str) -> Result<Option<KeyRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT * FROM api_keys WHERE id = ?1")?
                .query_row([id], key_from_row)
                .optional()?)
        })
    }

    fn put_api_key(&self, key: &KeyRecord) -> Result<()> {
        let key = key.clone();
        self.write(move |tx| insert_key(tx, &key))
    }

    fn api_keys(&self, tenant: &TenantId) -> Result<Vec<KeyRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM api_keys WHERE tenant_id = ?1 ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([tenant.as_str()], key_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn list_executions(
        &self,
        tenant: &TenantId,
        filter: &ExecutionFilter,
    ) -> Result<Vec<ExecutionRecord>> {
        self.read(|conn| {
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
    }

    fn create_execution(&self, new: NewExecution) -> Result<Created> {
        self.write(move |tx| {
            if let Some(name) = &new.name {
                let existing = tx
                    .prepare_cached("SELECT * FROM executions WHERE tenant_id = ?1 AND name = ?2")?
                    .query_row(params![new.tenant.as_str(), name], execution_from_row)
                    .optional()?;
                if let Some(existing) = existing {
                    return Ok(Created::for_taken_name(existing, &new));
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
    }

    fn execution(&self, id: &ExecutionId) -> Result<Option<ExecutionRecord>> {
        self.read(|conn| select_execution(conn, id.as_str()))
    }

    fn operations(&self, id: &ExecutionId) -> Result<Vec<Operation>> {
        self.read(|conn| {
            let mut stmt =
                conn.prepare_cached("SELECT data FROM operations WHERE execution_id = ?1")?;
            let rows = stmt.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
            let mut ops = Vec::new();
            for row in rows {
                ops.push(serde_json::from_str(&row?)?);
            }
            Ok(ops)
        })
    }

    fn operation(&self, id: &ExecutionId, op_id: &str) -> Result<Option<Operation>> {
        self.read(|conn| {
            let data: Option<String> = conn
                .prepare_cached(
                    "SELECT data FROM operations WHERE execution_id = ?1 AND op_id = ?2",
                )?
                .query_row([id.as_str(), op_id], |r| r.get(0))
                .optional()?;
            Ok(data.map(|d| serde_json::from_str(&d)).transpose()?)
        })
    }

    fn history(&self, id: &ExecutionId, after: u64, limit: usize) -> Result<Vec<(u64, Event)>> {
        self.read(|conn| {
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
    }

    fn callback(&self, id: &CallbackId) -> Result<Option<CallbackRecord>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT * FROM callbacks WHERE callback_id = ?1")?
                .query_row([id.as_str()], callback_from_row)
                .optional()?)
        })
    }

    fn pending_agent_callbacks(&self) -> Result<Vec<CallbackRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM callbacks WHERE status = 'STARTED' AND agent IS NOT NULL",
            )?;
            let rows = stmt.query_map([], callback_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn pending_callbacks(&self, id: &ExecutionId) -> Result<Vec<CallbackRecord>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM callbacks WHERE execution_id = ?1 AND status = 'STARTED' ORDER BY op_id",
            )?;
            let rows = stmt.query_map([id.as_str()], callback_from_row)?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn commit(&self, execution: &ExecutionId, batch: Batch) -> Result<()> {
        let execution = execution.clone();
        self.write(move |tx| apply_batch(tx, execution.as_str(), &batch))
    }

    fn workflow_events(
        &self,
        tenant: Option<&TenantId>,
        execution: Option<&ExecutionId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<WorkflowEvent>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM workflow_events
                 WHERE seq > ?1 AND (?2 IS NULL OR tenant_id = ?2) AND (?3 IS NULL OR execution_id = ?3)
                 ORDER BY seq LIMIT ?4",
            )?;
            let rows = stmt.query_map(
                params![after as i64, tenant.map(TenantId::as_str), execution.map(ExecutionId::as_str), limit as i64],
                workflow_event_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn undelivered_events(&self, after: u64, limit: usize) -> Result<Vec<WorkflowEvent>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM workflow_events WHERE delivered = 0 AND seq > ?1 ORDER BY seq LIMIT ?2",
            )?;
            let rows = stmt.query_map(
                params![after as i64, limit as i64],
                workflow_event_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn dead_letter(&self, letters: &[DeadLetter]) -> Result<()> {
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
    }

    fn dead_letters(
        &self,
        tenant: Option<&TenantId>,
        after: u64,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT * FROM dead_letters WHERE seq > ?1 AND (?2 IS NULL OR tenant_id = ?2)
                 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt.query_map(
                params![after as i64, tenant.map(TenantId::as_str), limit as i64],
                dead_letter_from_row,
            )?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }

    fn bind_agent_task(&self, id: &CallbackId, task_id: &str) -> Result<Option<String>> {
        let (id, task_id) = (id.as_str().to_string(), task_id.to_string());
        self.write(move |tx| {
            tx.prepare_cached(
                "UPDATE callbacks SET task_id = ?2
                 WHERE callback_id = ?1 AND status = 'STARTED' AND task_id IS NULL",
            )?
            .execute(params![id, task_id])?;
            let (status, bound) = tx
                .prepare_cached("SELECT status, task_id FROM callbacks WHERE callback_id = ?1")?
                .query_row([&id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, Option<String>>(1)?))
                })
                .optional()?
                .unwrap_or_default();
            Ok(bound.filter(|_| status == "STARTED"))
        })
    }

    fn agent_task(&self, id: &CallbackId) -> Result<Option<String>> {
        self.read(|conn| {
            Ok(conn
                .prepare_cached("SELECT task_id FROM callbacks WHERE callback_id = ?1")?
                .query_row([id.as_str()], |r| r.get::<_, Option<String>>(0))
                .optional()?
                .flatten())
        })
    }

    fn mark_delivered(&self, seqs: &[u64]) -> Result<()> {
        let seqs = seqs.to_vec();
        self.write(move |tx| {
            let mut update =
                tx.prepare_cached("UPDATE workflow_events SET delivered = 1 WHERE seq = ?1")?;
            for seq in seqs {
                update.execute([seq as i64])?;
            }
            Ok(())
        })
    }

    fn claim_role(&self, name: &str, host: &str, now: Millis, ttl_ms: u64) -> Result<bool> {
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
    }

    fn runnable(&self) -> Result<Vec<Runnable>> {
        self.read(|conn| {
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
    }

    fn timers(&self, before: Millis) -> Result<Vec<Timer>> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT execution_id, op_id, kind, fire_at FROM timers WHERE fire_at <= ?1",
            )?;
            let rows = stmt.query_map([before], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            let mut timers = Vec::new();
            for row in rows {
                let (execution, op_id, kind, fire_at) = row?;
                if let Some(kind) = TimerKind::parse(&kind) {
                    timers.push(Timer {
                        fire_at,
                        execution_id: ExecutionId::from_raw(execution),
                        op_id,
                        kind,
                    });
                }
            }
            Ok(timers)
        })
    }

    fn acquire_lease(
        &self,
        id: &ExecutionId,
        host: &str,
        now: Millis,
        ttl_ms: u64,
    ) -> Result<Claim> {
        let (id, host) = (id.clone(), host.to_string());
        self.write(move |tx| acquire(tx, id.as_str(), &host, now, ttl_ms))
    }

    fn renew_lease(
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
    }
}
